"""Load on the clinician's main question: the ``insights`` query through the gateway, one run.

Starts the local fleet (broker, issuer, the five back-ends and the gateway as processes on free
loopback ports), loads the two generated demo patients (eight days of minute-level activity counts
each through ``device.readings.v1``, four with ``--quick``, twelve weeks of symptom reports, medications and a
genotype) and waits until the twin holds their PAT analyses. Then, for each scenario

* ``up``: every service running;
* ``forecasting_down``: the forecasting process killed (SIGKILL), so its breaker opens and the
  forecast section comes back null with an error naming the service;

and for 1, 16 and 64 concurrent clients (each a clinician with its own token, sending its next
query as soon as the last is answered, for a fixed time), it reports p50/p99 latency and
throughput of the insights query with every section and the recommendations selected.

Baselines in the same run: the twin's ``GetInsights`` called directly over gRPC at concurrency 1
(what the gateway adds: parsing, validation, auth, audit, rate limiting, the section loader), and
the ``up`` scenario for the degraded one (what a dead service costs once its breaker is open).
Clients run in this process, on the same cores as the fleet: the figures are for one 2-core
machine carrying both the load and the whole fleet.

Usage: ``.venv/bin/python bench/gateway_load.py [--quick] [--seconds S] [--concurrency 1,16,64]``
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx

from novamind.api.common.v1 import common_pb2
from novamind.api.twin.v1 import twin_pb2, twin_pb2_grpc
from novamind.core.config import CoreSettings
from novamind.devtools.broker import EmbeddedBroker
from novamind.devtools.demo import load_demo
from novamind.devtools.fleet import PAT_ARTIFACT, Fleet

INSIGHTS_QUERY = """
query Insights($id: ID!) {
  patient(id: $id) {
    insights {
      twinVersion
      actigraphy { latest { sleep { totalSleepTimeMinutes sleepEfficiencyPercent } } }
      forecast { forecasts { target days { horizonDay quantiles { quantile value } } } }
      correlations { correlations { biometric symptom lagDays coefficient qValue } }
      medicationGuidance { recommendations { drug action } }
      recommendations { id priority text evidence }
      sectionErrors { section code service }
    }
  }
}
"""


@dataclass
class Run:
    scenario: str
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0


async def _client(
    http: httpx.AsyncClient, url: str, token: str, patient: str, stop_at: float, run: Run
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    body = {"query": INSIGHTS_QUERY, "variables": {"id": patient}}
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        response = await http.post(url, json=body, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000.0
        payload = response.json()
        insights = ((payload.get("data") or {}).get("patient") or {}).get("insights")
        if response.status_code != 200 or insights is None:
            run.errors += 1
            continue
        run.latencies_ms.append(elapsed)


async def load(fleet: Fleet, scenario: str, concurrency: int, seconds: float, patients: list[str]) -> Run:
    run = Run(scenario, concurrency)
    tokens = [fleet.mint(f"bench-clinician-{i}", ["clinician"], patients) for i in range(concurrency)]
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
        # one warm-up query per client: connections, loaders, the first breaker trips
        warm = Run(scenario, concurrency)
        await asyncio.gather(
            *(
                _client(http, fleet.graphql_url, t, patients[i % len(patients)], time.perf_counter(), warm)
                for i, t in enumerate(tokens)
            )
        )
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(
            *(
                _client(http, fleet.graphql_url, t, patients[i % len(patients)], stop_at, run)
                for i, t in enumerate(tokens)
            )
        )
        run.seconds = time.perf_counter() - started
    return run


async def direct_twin(fleet: Fleet, patient: str, seconds: float) -> Run:
    """GetInsights straight at the twin over gRPC, one call after another."""
    run = Run("twin_grpc_direct", 1)
    address = f"127.0.0.1:{fleet.services['twin'].grpc_port}"
    async with grpc.aio.insecure_channel(address) as channel:
        stub = twin_pb2_grpc.TwinServiceStub(channel)
        request = twin_pb2.GetInsightsRequest(patient=common_pb2.PatientRef(pseudonym=patient))
        await stub.GetInsights(request, timeout=30.0)
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            t0 = time.perf_counter()
            await stub.GetInsights(request, timeout=30.0)
            run.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
        run.seconds = time.perf_counter() - started
    return run


async def wait_for_analyses(fleet: Fleet, patients: list[str], timeout: float) -> float:
    """Seconds until every patient's twin holds a PAT analysis."""
    started = time.perf_counter()
    address = f"127.0.0.1:{fleet.services['twin'].grpc_port}"
    async with grpc.aio.insecure_channel(address) as channel:
        stub = twin_pb2_grpc.TwinServiceStub(channel)
        pending = set(patients)
        while pending:
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"{len(pending)} patients without an analysis after {timeout:.0f} s")
            for patient in list(pending):
                try:
                    twin = await stub.GetTwin(
                        twin_pb2.GetTwinRequest(patient=common_pb2.PatientRef(pseudonym=patient)), timeout=5.0
                    )
                except grpc.aio.AioRpcError:
                    continue
                if twin.twin.HasField("latest_actigraphy"):
                    pending.discard(patient)
            await asyncio.sleep(0.5)
    return time.perf_counter() - started


async def main_async(args: argparse.Namespace) -> int:
    concurrencies = [int(c) for c in (args.concurrency or ("1,16" if args.quick else "1,16,64")).split(",")]
    seconds = args.seconds or (1.5 if args.quick else 10.0)
    demo_days = 4 if args.quick else 8
    model_dir = Path("models")
    pretrain: tuple[str, ...] = ()
    if not (model_dir / PAT_ARTIFACT / "manifest.json").is_file():
        model_dir = Path(tempfile.mkdtemp(prefix="novamind-bench-models-"))
        pretrain = ("--steps", "2", "--synthetic-recordings", "4")
    broker = EmbeddedBroker()
    await asyncio.to_thread(broker.start)
    data_dir = Path(tempfile.mkdtemp(prefix="novamind-bench-"))
    fleet = Fleet(
        data_dir=data_dir,
        ports="free",
        bootstrap=broker.bootstrap,
        echo=False,
        env={
            "NOVAMIND_ENVIRONMENT": "test",
            "NOVAMIND_LOG_LEVEL": "WARNING",
            # the benchmark measures the query path, not the per-client rate limit
            "NOVAMIND_RATE_LIMIT": "1000000/minute",
        },
        model_dir=model_dir,
        pretrain_args=pretrain,
    )
    runs: list[Run] = []
    try:
        t0 = time.perf_counter()
        await fleet.start()
        print(f"fleet ready in {time.perf_counter() - t0:.1f} s", flush=True)
        t0 = time.perf_counter()
        loaded = await load_demo(
            bootstrap=fleet.bootstrap,
            twin_address=f"127.0.0.1:{fleet.services['twin'].grpc_port}",
            pseudonym_key=CoreSettings().pseudonym_key.get_secret_value(),
            shared_actigraphy=None,
            days=demo_days,
        )
        patients = [pseudonym for _, pseudonym in loaded]
        produced = time.perf_counter() - t0
        waited = await wait_for_analyses(fleet, patients, timeout=600.0)
        print(f"demo data sent in {produced:.1f} s; analyses in the twin {waited:.1f} s later", flush=True)

        baseline = await direct_twin(fleet, patients[0], seconds)
        for scenario in ("up", "forecasting_down"):
            if scenario == "forecasting_down":
                await fleet.stop_service("forecasting", sig=signal.SIGKILL)
            for concurrency in concurrencies:
                run = await load(fleet, scenario, concurrency, seconds, patients)
                runs.append(run)
                print(
                    f"{scenario:<17} c={concurrency:<3} n={len(run.latencies_ms):<6} "
                    f"p50 {run.percentile(50):8.1f} ms  p99 {run.percentile(99):8.1f} ms  "
                    f"{run.throughput:7.1f} req/s  errors {run.errors}",
                    flush=True,
                )
    finally:
        await fleet.stop()
        await asyncio.to_thread(broker.stop)

    by_key = {(r.scenario, r.concurrency): r for r in runs}
    print()
    print(
        f"twin GetInsights over gRPC, c=1: p50 {baseline.percentile(50):.1f} ms "
        f"(n={len(baseline.latencies_ms)})"
    )
    lines = []
    for run in runs:
        key = f"gateway_insights_{run.scenario}_c{run.concurrency}"
        lines += [
            f"BENCH {key}_p50 {run.percentile(50):.1f} ms",
            f"BENCH {key}_p99 {run.percentile(99):.1f} ms",
            f"BENCH {key}_throughput {run.throughput:.1f} req/s",
        ]
    up1 = by_key.get(("up", 1))
    if up1 and baseline.latencies_ms:
        lines.append(
            f"BENCH gateway_overhead_vs_twin_grpc_c1 {up1.percentile(50) / baseline.percentile(50):.2f} x"
        )
    for concurrency in concurrencies:
        up, down = by_key.get(("up", concurrency)), by_key.get(("forecasting_down", concurrency))
        if up and down and up.latencies_ms and down.latencies_ms:
            lines.append(
                f"BENCH gateway_forecasting_down_vs_up_p50_c{concurrency} "
                f"{down.percentile(50) / up.percentile(50):.2f} x"
            )
    print("\n".join(lines))
    errors = sum(r.errors for r in runs)
    if errors:
        print(f"{errors} queries failed outright (no insights object)", file=sys.stderr)
    return 0 if statistics.fmean([len(r.latencies_ms) for r in runs]) > 0 else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="under a minute: 4 days of data, 1.5 s per measurement, 1 and 16 clients",
    )
    parser.add_argument(
        "--seconds", type=float, help="seconds per measurement (default 10; 1.5 with --quick)"
    )
    parser.add_argument("--concurrency", help="comma-separated client counts (default 1,16,64)")
    raise SystemExit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
