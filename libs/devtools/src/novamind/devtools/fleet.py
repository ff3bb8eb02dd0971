"""The local fleet: broker, every service and the gateway as processes on loopback.

``novamind-dev`` (what ``make dev`` runs) starts the embedded broker unless
``NOVAMIND_KAFKA_BOOTSTRAP`` names a cluster, creates the topics, migrates the twin's database,
starts the six processes with their output prefixed by name, waits until each reports ready,
prints the URLs, and on Ctrl-C (SIGINT) or SIGTERM stops them all gracefully.

Tests drive the same :class:`Fleet` on free ports, and stop and restart single services.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from novamind.core.config import BACKEND_SERVICES, LOCAL_PORTS, CoreSettings
from novamind.core.kafka import FLEET_TOPICS, ensure_topics
from novamind.devtools.broker import EmbeddedBroker
from novamind.devtools.net import free_port

#: The PAT artifact the fleet serves (the pat service's default ``NOVAMIND_PAT_ARTIFACT``).
PAT_ARTIFACT = "pat-s-dev"
#: Device files the development artifact also learns from, when the checkout has them beside it.
SHARED_ACTIGRAPHY = Path("..") / "shared" / "data" / "actigraphy"

#: Start order: the gateway last, so its first health report finds the back-ends up.
FLEET_SERVICES: tuple[str, ...] = (*BACKEND_SERVICES, "gateway")
_COLOURS = ("36", "33", "35", "32", "34", "31")


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

    def __post_init__(self) -> None:
        self.broker: EmbeddedBroker | None = None
        self.bootstrap = self.bootstrap or os.environ.get("NOVAMIND_KAFKA_BOOTSTRAP", "")
        self.services: dict[str, ServiceProcess] = {}
        for name in FLEET_SERVICES:
            if self.ports == "free":
                grpc_port, http_port = (free_port() if name != "gateway" else 0), free_port()
            else:
                grpc_port, http_port = LOCAL_PORTS[name]
            self.services[name] = ServiceProcess(name, grpc_port, http_port)

    # ---- addresses -------------------------------------------------------------------------

    def http_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.services[name].http_port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.http_url('gateway')}/graphql"

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
        await self._run_once("twin-migrate", [sys.executable, "-m", "novamind.twin", "migrate"], "twin")
        await self._ensure_pat_artifact()
        for name in FLEET_SERVICES:
            await self.start_service(name, wait=False)
        await asyncio.gather(*(self.wait_ready(name) for name in FLEET_SERVICES))

    async def _ensure_pat_artifact(self) -> None:
        """Train the development PAT artifact when none is present (a few minutes on a CPU)."""
        artifact = self.model_dir / PAT_ARTIFACT
        if (artifact / "manifest.json").is_file():
            return
        if self.echo:
            print(f"no PAT weights in {artifact}: pretraining the development artifact ...", flush=True)
        argv = [sys.executable, "-m", "novamind.pat", "pretrain", "--out", str(artifact), *self.pretrain_args]
        await self._run_once("pat-pretrain", argv, "pat")

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
        service.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"novamind.{name}",
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
        colour = _COLOURS[FLEET_SERVICES.index(service.name) % len(_COLOURS)]
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
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if not service.running:
                    code = service.process.returncode if service.process else None
                    raise RuntimeError(f"{name} exited with code {code} before becoming ready")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.http_url(name)}/readyz")).status_code == 200:
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
        for name in reversed(FLEET_SERVICES):
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
            f"  Kafka bootstrap      {self.bootstrap}" + ("  (embedded Tansu)" if self.broker else ""),
        ]
        for name in BACKEND_SERVICES:
            s = self.services[name]
            lines.append(f"  {name:<20} grpc 127.0.0.1:{s.grpc_port}   {self.http_url(name)}/readyz /metrics")
        lines.append("Press Ctrl-C to stop.")
        return "\n".join(lines)


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
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        failed = False
        try:
            await fleet.start()
            print(fleet.describe(), flush=True)
            waiters = [asyncio.create_task(stop.wait())] + [
                asyncio.create_task(s.process.wait()) for s in fleet.services.values() if s.process
            ]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for task in waiters:
                task.cancel()
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
