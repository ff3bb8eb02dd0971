"""The local fleet: broker, every service and the gateway as processes on loopback.

``novamind-dev`` (what ``make dev`` runs) starts the embedded broker unless
``NOVAMIND_KAFKA_BOOTSTRAP`` names a cluster, creates the topics, migrates the twin's and the
gateway's databases, starts the local OpenID issuer and the six processes with their output
prefixed by name, waits until each reports ready, loads the demo patients, prints the URLs and a
development token per role, and on Ctrl-C (SIGINT) or SIGTERM stops them all gracefully.

Tests drive the same :class:`Fleet` on free ports, and stop and restart single services.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from novamind.core.config import BACKEND_SERVICES, LOCAL_PORTS, CoreSettings
from novamind.core.kafka import FLEET_TOPICS, ensure_topics
from novamind.devtools.broker import EmbeddedBroker
from novamind.devtools.dev_issuer import DEFAULT_KEY_DIR, DevIssuer
from novamind.devtools.net import free_port

#: The PAT artifact the fleet serves (the pat service's default ``NOVAMIND_PAT_ARTIFACT``).
PAT_ARTIFACT = "pat-s-dev"
#: The forecasting artifact the fleet serves (the forecasting service's default
#: ``NOVAMIND_FORECAST_ARTIFACT``).
FORECAST_ARTIFACT = "forecast-dev"
#: Device files the development artifact also learns from, when the checkout has them beside it.
SHARED_ACTIGRAPHY = Path("..") / "shared" / "data" / "actigraphy"

#: Start order: the issuer first (services verify tokens against it), the gateway last, so its
#: first health report finds the back-ends up.
ISSUER = "issuer"
FLEET_SERVICES: tuple[str, ...] = (*BACKEND_SERVICES, "gateway")
_PROCESSES: tuple[str, ...] = (ISSUER, *FLEET_SERVICES)
_COLOURS = ("37", "36", "33", "35", "32", "34", "31")
#: Local port of the development issuer (NOVAMIND_OIDC_ISSUER's default).
ISSUER_PORT = 8090


@dataclass
class ServiceProcess:
    name: str
    grpc_port: int
    http_port: int
    process: asyncio.subprocess.Process | None = None
    pump: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


@dataclass
class Fleet:
    """Supervises the local fleet's processes.

    ``ports``: ``"local"`` uses the documented local ports (50051-50055, 8081-8085, 8000);
    ``"free"`` picks free loopback ports (tests). ``env`` adds variables to every process.
    """

    data_dir: Path
    ports: str = "local"
    env: Mapping[str, str] = field(default_factory=dict)
    echo: bool = True
    ready_timeout: float = 60.0
    #: Kafka bootstrap servers; empty means NOVAMIND_KAFKA_BOOTSTRAP, else an embedded broker.
    bootstrap: str = ""
    #: Where model artifacts live (NOVAMIND_MODEL_DIR of every process).
    model_dir: Path = Path("models")
    #: Extra ``novamind-pat pretrain`` arguments used when the PAT artifact is missing.
    pretrain_args: tuple[str, ...] = ()
    #: Extra ``novamind-forecasting train`` arguments used when the forecasting artifact is missing.
    forecast_train_args: tuple[str, ...] = ()
    #: Signing key of the development issuer; default ``<data_dir>/dev-issuer``.
    issuer_key_dir: Path | None = None

    def __post_init__(self) -> None:
        self.broker: EmbeddedBroker | None = None
        self.bootstrap = self.bootstrap or os.environ.get("NOVAMIND_KAFKA_BOOTSTRAP", "")
        self.issuer_key_dir = self.issuer_key_dir or self.data_dir / "dev-issuer"
        self.services: dict[str, ServiceProcess] = {}
        for name in _PROCESSES:
            if self.ports == "free":
                grpc_port = free_port() if name in BACKEND_SERVICES else 0
                http_port = free_port()
            elif name == ISSUER:
                grpc_port, http_port = 0, ISSUER_PORT
            else:
                grpc_port, http_port = LOCAL_PORTS[name]
            self.services[name] = ServiceProcess(name, grpc_port, http_port)
        self._issuer: DevIssuer | None = None

    # ---- addresses -------------------------------------------------------------------------

    def http_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.services[name].http_port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.http_url('gateway')}/graphql"

    @property
    def issuer_url(self) -> str:
        return self.http_url(ISSUER)

    def mint(
        self, subject: str, roles: list[str], patients: Sequence[str] = (), ttl_seconds: float = 3600
    ) -> str:
        """A token from the fleet's development issuer (``patients``: identifiers or pseudonyms)."""
        if self._issuer is None:
            assert self.issuer_key_dir is not None
            self._issuer = DevIssuer(self.issuer_key_dir, self.issuer_url)
        return self._issuer.mint(subject, roles, patients, ttl_seconds)

    def _process_env(self, name: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "NOVAMIND_KAFKA_BOOTSTRAP": self.bootstrap,
                "NOVAMIND_DATA_DIR": str(self.data_dir),
                "NOVAMIND_MODEL_DIR": str(self.model_dir),
                "NOVAMIND_GRPC_HOST": "127.0.0.1",
                "NOVAMIND_HTTP_HOST": "127.0.0.1",
                "NOVAMIND_GRPC_PORT": str(self.services[name].grpc_port),
                "NOVAMIND_HTTP_PORT": str(self.services[name].http_port),
                "NOVAMIND_OIDC_ISSUER": self.issuer_url,
                "PYTHONUNBUFFERED": "1",
            }
        )
        for other in BACKEND_SERVICES:
            env[f"NOVAMIND_{other.upper()}_ADDRESS"] = f"127.0.0.1:{self.services[other].grpc_port}"
        env.update(self.env)
        return env

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Broker, topics, migrations, then every service; returns once all are ready."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.bootstrap:
            self.broker = EmbeddedBroker()
            await asyncio.to_thread(self.broker.start)
            self.bootstrap = self.broker.bootstrap
        await ensure_topics(self.bootstrap, FLEET_TOPICS)
        for name in ("twin", "gateway"):
            await self._run_once(
                f"{name}-migrate", [sys.executable, "-m", f"novamind.{name}", "migrate"], name
            )
        # the development artifacts, trained when missing (a few minutes each on a CPU, once)
        await self._ensure_artifact("pat", PAT_ARTIFACT, "pretrain", self.pretrain_args)
        await self._ensure_artifact("forecasting", FORECAST_ARTIFACT, "train", self.forecast_train_args)
        for name in _PROCESSES:
            await self.start_service(name, wait=False)
        await asyncio.gather(*(self.wait_ready(name) for name in _PROCESSES))

    async def _ensure_artifact(
        self, service: str, artifact_name: str, command: str, extra: tuple[str, ...]
    ) -> None:
        """Run ``novamind-<service> <command> --out <artifact>`` when the artifact has no manifest."""
        artifact = self.model_dir / artifact_name
        if (artifact / "manifest.json").is_file():
            return
        if self.echo:
            print(f"no {service} model in {artifact}: {command}ing the development artifact ...", flush=True)
        argv = [sys.executable, "-m", f"novamind.{service}", command, "--out", str(artifact), *extra]
        await self._run_once(f"{service}-{command}", argv, service)

    async def _run_once(self, label: str, argv: list[str], env_of: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=self._process_env(env_of),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(
                f"{label} failed with exit code {proc.returncode}:\n{output.decode(errors='replace')}"
            )

    async def start_service(self, name: str, *, wait: bool = True) -> None:
        """Start (or restart) one service process."""
        service = self.services[name]
        if service.running:
            return
        if name == ISSUER:
            argv = ["-m", "novamind.devtools.dev_issuer", "serve", "--host", "127.0.0.1"]
            argv += ["--port", str(service.http_port), "--key-dir", str(self.issuer_key_dir)]
        else:
            argv = ["-m", f"novamind.{name}"]
        service.process = await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            env=self._process_env(name),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops children in order
        )
        service.pump = asyncio.create_task(self._pump(service))
        if wait:
            await self.wait_ready(name)

    async def _pump(self, service: ServiceProcess) -> None:
        assert service.process is not None and service.process.stdout is not None
        colour = _COLOURS[_PROCESSES.index(service.name) % len(_COLOURS)]
        prefix = (
            f"\033[{colour}m{service.name:>16} |\033[0m " if sys.stdout.isatty() else f"{service.name:>16} | "
        )
        async for line in service.process.stdout:
            if self.echo:
                sys.stdout.write(prefix + line.decode(errors="replace"))
                sys.stdout.flush()

    async def wait_ready(self, name: str) -> None:
        """Poll ``/readyz`` until the service is ready; fail fast if its process exits."""
        service = self.services[name]
        deadline = time.monotonic() + self.ready_timeout
        probe = "/.well-known/openid-configuration" if name == ISSUER else "/readyz"
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if not service.running:
                    code = service.process.returncode if service.process else None
                    raise RuntimeError(f"{name} exited with code {code} before becoming ready")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.http_url(name)}{probe}")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{name} not ready after {self.ready_timeout:.0f} s")

    async def stop_service(
        self, name: str, *, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0
    ) -> int:
        """Stop one service (SIGTERM drains gracefully; SIGKILL simulates a crash); its exit code."""
        service = self.services[name]
        if service.process is None:
            return 0
        if service.running:
            service.process.send_signal(sig)
            try:
                await asyncio.wait_for(service.process.wait(), timeout)
            except TimeoutError:
                service.process.kill()
                await service.process.wait()
        if service.pump is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await service.pump
        code = service.process.returncode
        service.process = None
        return int(code or 0)

    async def stop(self) -> dict[str, int]:
        """Stop the gateway first, then the back-ends, then the broker; the exit codes."""
        codes = {}
        for name in reversed(_PROCESSES):
            codes[name] = await self.stop_service(name)
        if self.broker is not None:
            await asyncio.to_thread(self.broker.stop)
            self.broker = None
        return codes

    def describe(self) -> str:
        lines = [
            "",
            "Novamind is running:",
            f"  GraphQL (GraphiQL)   {self.graphql_url}",
            f"  OpenID issuer (dev)  {self.issuer_url}",
            f"  Kafka bootstrap      {self.bootstrap}" + ("  (embedded Tansu)" if self.broker else ""),
        ]
        for name in BACKEND_SERVICES:
            s = self.services[name]
            lines.append(f"  {name:<20} grpc 127.0.0.1:{s.grpc_port}   {self.http_url(name)}/readyz /metrics")
        lines.append("Press Ctrl-C to stop.")
        return "\n".join(lines)


async def _load_demo(fleet: Fleet, days: int) -> None:
    """Load the demo patients and print a development token per role."""
    from novamind.devtools.demo import load_demo

    settings = CoreSettings()
    try:
        loaded = await load_demo(
            bootstrap=fleet.bootstrap,
            twin_address=f"127.0.0.1:{fleet.services['twin'].grpc_port}",
            pseudonym_key=settings.pseudonym_key.get_secret_value(),
            shared_actigraphy=SHARED_ACTIGRAPHY if SHARED_ACTIGRAPHY.is_dir() else None,
            days=days,
        )
    except Exception as exc:  # the fleet stays up without demo data
        print(f"demo data not loaded: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return
    identifiers = [patient.identifier for patient, _ in loaded]
    tokens = {
        "clinician": fleet.mint("dev-clinician", ["clinician"], identifiers, ttl_seconds=12 * 3600),
        "patient": fleet.mint(identifiers[0], ["patient"], identifiers[:1], ttl_seconds=12 * 3600),
        "ops": fleet.mint("dev-ops", ["ops"], ttl_seconds=12 * 3600),
        "service": fleet.mint("dev-service", ["service"], ttl_seconds=12 * 3600),
    }
    token_file = fleet.data_dir / "dev-tokens.json"
    token_file.write_text(json.dumps(tokens, indent=2))
    token_file.chmod(0o600)
    lines = ["", f"Demo patients ({len(loaded)}), their wearable data streaming into the twin:"]
    lines += [
        f"  {patient.identifier:<16} {pseudonym}  {patient.description}" for patient, pseudonym in loaded
    ]
    lines += [
        f"Development tokens (12 h) for each role are in {token_file}; the clinician's, for GraphiQL's",
        "Headers tab:",
        f'  {{"Authorization": "Bearer {tokens["clinician"]}"}}',
        "More: novamind-token mint --role clinician --patient demo-awd-01",
    ]
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="novamind-dev", description="Run the whole Novamind fleet locally")
    parser.add_argument(
        "--data-dir", type=Path, default=Path("var/dev"), help="databases and state (default var/dev)"
    )
    parser.add_argument(
        "--free-ports", action="store_true", help="pick free ports instead of the documented ones"
    )
    parser.add_argument("--model-dir", type=Path, help="model artifacts (default: NOVAMIND_MODEL_DIR)")
    parser.add_argument(
        "--pretrain-steps", type=int, help="steps for a missing development PAT artifact (default 400)"
    )
    parser.add_argument(
        "--forecast-quick",
        action="store_true",
        help="train a quick forecasting artifact when it is missing (under a minute; default: the full one)",
    )
    parser.add_argument("--no-demo", action="store_true", help="do not load the demo patients")
    parser.add_argument(
        "--demo-days", type=int, default=14, help="days of wearable data per demo patient (default 14)"
    )
    args = parser.parse_args(argv)
    pretrain_args: list[str] = []
    if args.pretrain_steps is not None:
        pretrain_args += ["--steps", str(args.pretrain_steps)]
    if SHARED_ACTIGRAPHY.is_dir():
        pretrain_args += ["--data-dir", str(SHARED_ACTIGRAPHY)]

    async def run() -> int:
        fleet = Fleet(
            data_dir=args.data_dir,
            ports="free" if args.free_ports else "local",
            model_dir=args.model_dir or CoreSettings().model_dir,
            pretrain_args=tuple(pretrain_args),
            forecast_train_args=("--quick",) if args.forecast_quick else (),
            issuer_key_dir=DEFAULT_KEY_DIR,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        failed = False
        try:
            await fleet.start()
            print(fleet.describe(), flush=True)
            demo = None if args.no_demo else asyncio.create_task(_load_demo(fleet, args.demo_days))
            waiters = [asyncio.create_task(stop.wait())] + [
                asyncio.create_task(s.process.wait()) for s in fleet.services.values() if s.process
            ]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for task in waiters:
                task.cancel()
            if demo is not None and not demo.done():
                demo.cancel()
            if not stop.is_set():
                print("a service exited; stopping the fleet", file=sys.stderr, flush=True)
                failed = True
        finally:
            print("\nstopping Novamind ...", flush=True)
            codes = await fleet.stop()
            print("stopped: " + ", ".join(f"{n}={c}" for n, c in codes.items()), flush=True)
        return 1 if failed or any(codes.values()) else 0

    raise SystemExit(asyncio.run(run()))


if __name__ == "__main__":
    main()
