"""PAT inference: our EmbeddingEngine against the Keras reference, same weights and weeks, one run.

For each PAT size the Keras 3 reference (``novamind.pat.model.keras_reference``, official layer
names) gets seeded random weights, which are saved in the official ``.h5`` layout and loaded into
our PyTorch encoder with ``load_official_h5``, so both sides compute the same function. Inputs are
the real weeks of the example Actiwatch recordings, tiled to the count needed. Reported:

* throughput, weeks/s: Keras called one request at a time with ``model.predict`` (how the
  published notebooks serve a week) vs our engine with every week submitted concurrently;
* latency of a single request, p50/p99 ms, at concurrency 1 (one request after another) and
  32 (32 clients, each sending its next week when the last is answered);
* a batch of 100 weeks: the engine (100 concurrent requests), Keras ``model.predict`` on the
  (100, 10080) array, and naive PyTorch (the encoder called once on all 100, fp32);
* peak resident memory of each side's phase (VmHWM, reset between phases).

The engine's numbers include its whole request path: validation, imputation and standardisation
of every week, queueing and batching. Keras gets the standardised weeks ready-made.

Usage: ``.venv/bin/python bench/pat_inference.py [--quick] [--sizes S,M,L,H]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import torch

from novamind.pat.domain.preprocessing import Week, sliding_weeks, standardise, to_minutes
from novamind.pat.inference import EmbeddingEngine, InferenceConfig, ModelIdentity
from novamind.pat.model.pat import PATConfig
from novamind.pat.model.weights import load_official_h5
from novamind.pat.readers import read_recording

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "actigraphy"
SEED = 2411_15240


@dataclass(frozen=True)
class Plan:
    """How much to measure for one size (the larger sizes cost up to 40x more per week)."""

    keras_requests: int
    engine_weeks: int
    latency_requests: int
    concurrent_requests: int
    batch_repeats: int
    keras_predict_batch: int = 32  # Keras' default batch_size
    selection_rows: int = 4
    selection_repeats: int = 3


FULL = {
    "S": Plan(60, 600, 100, 640, 2),
    "M": Plan(40, 400, 100, 480, 2),
    "L": Plan(12, 120, 30, 128, 1, selection_rows=2, selection_repeats=2),
    "H": Plan(4, 40, 8, 64, 1, keras_predict_batch=8, selection_rows=2, selection_repeats=1),
}
QUICK = {
    "S": Plan(10, 100, 20, 64, 1, selection_rows=2, selection_repeats=1),
    "M": Plan(10, 100, 20, 64, 1, selection_rows=2, selection_repeats=1),
}


# --- Measuring helpers ---------------------------------------------------------------------------


def _status_kib(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


@contextmanager
def peak_rss(into: dict[str, float], key: str) -> Iterator[None]:
    """Peak resident memory (MiB) of the process during the block, and its growth over the
    resident memory at the start (what the block itself added); the peak is reset first."""
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _status_kib("VmRSS") / 1024
    yield
    into[key] = _status_kib("VmHWM") / 1024
    into[f"{key}_growth"] = into[key] - before


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


@dataclass
class SizeResult:
    name: str
    backend: str = ""
    startup_s: float = 0.0
    parity_fp32: float = 0.0
    engine_vs_keras: float = 0.0
    keras_throughput: float = 0.0
    engine_throughput: float = 0.0
    keras_latency_ms: list[float] = field(default_factory=list)
    c1_latency_ms: list[float] = field(default_factory=list)
    c32_latency_ms: list[float] = field(default_factory=list)
    batch100_engine_s: float = 0.0
    batch100_keras_s: float = 0.0
    batch100_torch_s: float = 0.0
    rss_mib: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def load_weeks() -> list[Week]:
    files = sorted(DATA_DIR.glob("example_0*.AWD"))
    if not files:
        sys.exit(f"no example recordings in {DATA_DIR}")
    return [week for file in files for week in sliding_weeks(to_minutes(read_recording(file)))]


def tiled(weeks: list[Week], n: int) -> list[Week]:
    return [weeks[i % len(weeks)] for i in range(n)]


def best_of(repeats: int, run: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


# --- One size ------------------------------------------------------------------------------------


def build_models(config: PATConfig, folder: Path) -> tuple[Any, torch.nn.Module, Path]:
    """The Keras reference with seeded random weights, and our encoder loaded from its .h5 file."""
    import keras

    from novamind.pat.model import keras_reference as kr

    encoder = kr.build_encoder(config, return_attention=False)
    kr.randomize_weights(encoder, SEED)
    front = kr.build_embedding_model(encoder)
    keras_model = keras.Model(inputs=front.inputs, outputs=front.outputs[1], name="pat_embedding")
    weights = folder / f"{config.name}_bench_weights.h5"
    kr.save_official_weights(encoder, weights)
    return keras_model, load_official_h5(weights, config), weights


async def measure_engine(engine: EmbeddingEngine, weeks: list[Week], plan: Plan, result: SizeResult) -> None:
    await asyncio.gather(*(engine.embed(w) for w in weeks[:8]))  # warm

    started = time.perf_counter()
    await asyncio.gather(*(engine.embed(w) for w in tiled(weeks, plan.engine_weeks)))
    result.engine_throughput = plan.engine_weeks / (time.perf_counter() - started)

    for week in tiled(weeks, plan.latency_requests):
        began = time.perf_counter()
        await engine.embed(week)
        result.c1_latency_ms.append((time.perf_counter() - began) * 1000)

    queue = list(tiled(weeks, plan.concurrent_requests))

    async def client() -> None:
        while queue:
            week = queue.pop()
            began = time.perf_counter()
            await engine.embed(week)
            result.c32_latency_ms.append((time.perf_counter() - began) * 1000)

    await asyncio.gather(*(client() for _ in range(32)))

    hundred = tiled(weeks, 100)
    best = float("inf")
    for _ in range(plan.batch_repeats):
        began = time.perf_counter()
        await asyncio.gather(*(engine.embed(w) for w in hundred))
        best = min(best, time.perf_counter() - began)
    result.batch100_engine_s = best


def measure_keras(
    keras_model: Any, standardised: np.ndarray, x100: np.ndarray, plan: Plan, result: SizeResult
) -> None:
    """Keras one request at a time with ``model.predict``, then ``predict`` on the batch of 100."""
    keras_model.predict(standardised[:1], verbose=0)
    for i in range(plan.keras_requests):
        began = time.perf_counter()
        keras_model.predict(standardised[i % len(standardised)][None], verbose=0)
        result.keras_latency_ms.append((time.perf_counter() - began) * 1000)
    result.keras_throughput = 1000 * len(result.keras_latency_ms) / sum(result.keras_latency_ms)
    keras_model.predict(x100[:8], verbose=0, batch_size=plan.keras_predict_batch)
    result.batch100_keras_s = best_of(
        plan.batch_repeats, lambda: keras_model.predict(x100, verbose=0, batch_size=plan.keras_predict_batch)
    )
    if plan.keras_predict_batch != 32:
        result.notes.append(
            f"Keras predict on 100 weeks ran with batch_size={plan.keras_predict_batch}: at its default "
            "of 32 the attention scores of PAT-H need about 6 GB per layer"
        )


def run_size(size: str, plan: Plan, weeks: list[Week], folder: Path) -> SizeResult:
    config = PATConfig.for_size(size)
    result = SizeResult(config.name)
    keras_model, encoder, weights_file = build_models(config, folder)
    standardised = np.stack([standardise(w).astype(np.float32) for w in weeks])
    x100 = np.resize(standardised, (100, standardised.shape[1])).astype(np.float32)

    # Fidelity first: both sides must compute the same function on the same weeks.
    keras_out = keras_model.predict(standardised[:2], verbose=0)
    with torch.inference_mode():
        torch_out = encoder(torch.from_numpy(standardised[:2])).embedding.numpy()
    result.parity_fp32 = float(np.abs(keras_out - torch_out).max())

    with peak_rss(result.rss_mib, "keras"):
        measure_keras(keras_model, standardised, x100, plan, result)
    del keras_model

    # Naive PyTorch: the encoder on all 100 weeks at once, fp32.
    with peak_rss(result.rss_mib, "torch_naive"):
        torch.set_num_threads(os.cpu_count() or 1)

        def naive(batch: np.ndarray = x100) -> None:
            with torch.inference_mode():
                encoder(torch.from_numpy(batch)).embedding.numpy()

        naive(x100[:2])  # warm
        result.batch100_torch_s = best_of(plan.batch_repeats, naive)

    # Our engine.
    config_ = InferenceConfig(selection_rows=plan.selection_rows, selection_repeats=plan.selection_repeats)
    identity = ModelIdentity.of_file(weights_file, name=config.name, version=f"bench-seed-{SEED}")
    engine = EmbeddingEngine(encoder, identity, config=config_, probe=standardised[: plan.selection_rows])

    async def serve() -> None:
        began = time.perf_counter()
        choice = await engine.start()
        result.startup_s = time.perf_counter() - began
        result.backend = choice.describe()
        try:
            answer = await engine.embed(weeks[0])
            result.engine_vs_keras = float(
                np.linalg.norm(answer.embedding - keras_out[0]) / np.linalg.norm(keras_out[0])
            )
            await measure_engine(engine, weeks, plan, result)
        finally:
            await engine.close()

    with peak_rss(result.rss_mib, "engine"):
        asyncio.run(serve())
    return result


# --- Report --------------------------------------------------------------------------------------


def print_size(r: SizeResult) -> None:
    def ms(values: list[float], q: float) -> str:
        return f"{percentile(values, q):8.1f}" if values else "       -"

    print(f"\n{r.name}: engine backend {r.backend}")
    print(
        f"  start-up {r.startup_s:.1f} s; same weights: Keras vs our fp32 encoder "
        f"max-abs {r.parity_fp32:.1e}, "
        f"Keras vs engine answer relative error {r.engine_vs_keras:.1e}"
    )
    speedup = r.engine_throughput / r.keras_throughput
    rows = [
        (
            "throughput, weeks/s",
            f"{r.keras_throughput:10.1f}",
            f"{r.engine_throughput:10.1f}",
            f"{speedup:7.1f}x",
        ),
        ("latency p50, c=1, ms", ms(r.keras_latency_ms, 50), ms(r.c1_latency_ms, 50), ""),
        ("latency p99, c=1, ms", ms(r.keras_latency_ms, 99), ms(r.c1_latency_ms, 99), ""),
        ("latency p50, c=32, ms", "       -", ms(r.c32_latency_ms, 50), ""),
        ("latency p99, c=32, ms", "       -", ms(r.c32_latency_ms, 99), ""),
        (
            "batch of 100, s",
            f"{r.batch100_keras_s:10.2f}",
            f"{r.batch100_engine_s:10.2f}",
            f"{r.batch100_keras_s / r.batch100_engine_s:7.1f}x",
        ),
        ("peak RSS, MiB", f"{r.rss_mib.get('keras', 0):10.0f}", f"{r.rss_mib.get('engine', 0):10.0f}", ""),
        (
            "  of which the phase's",
            f"{r.rss_mib.get('keras_growth', 0):+10.0f}",
            f"{r.rss_mib.get('engine_growth', 0):+10.0f}",
            "",
        ),
    ]
    print(f"  {'':24s} {'Keras':>10s} {'engine':>10s} {'ratio':>8s}")
    for label, keras_value, engine_value, ratio in rows:
        print(f"  {label:24s} {keras_value:>10s} {engine_value:>10s} {ratio:>8s}")
    print(
        f"  naive PyTorch (fp32, one call) on the batch of 100: {r.batch100_torch_s:.2f} s, "
        f"peak RSS {r.rss_mib.get('torch_naive', 0):.0f} MiB ({r.rss_mib.get('torch_naive_growth', 0):+.0f})"
    )
    for note in r.notes:
        print(f"  note: {note}")


def bench_lines(r: SizeResult) -> list[str]:
    key = r.name.lower().replace("-", "_")
    return [
        f"BENCH {key}_engine_throughput {r.engine_throughput:.1f} weeks/s",
        f"BENCH {key}_keras_throughput {r.keras_throughput:.1f} weeks/s",
        f"BENCH {key}_speedup_vs_keras {r.engine_throughput / r.keras_throughput:.1f} x",
        f"BENCH {key}_batch100 {r.batch100_engine_s:.2f} s",
        f"BENCH {key}_keras_batch100 {r.batch100_keras_s:.2f} s",
        f"BENCH {key}_torch_naive_batch100 {r.batch100_torch_s:.2f} s",
        f"BENCH {key}_p50_c1 {percentile(r.c1_latency_ms, 50):.1f} ms",
        f"BENCH {key}_p99_c1 {percentile(r.c1_latency_ms, 99):.1f} ms",
        f"BENCH {key}_p50_c32 {percentile(r.c32_latency_ms, 50):.1f} ms",
        f"BENCH {key}_p99_c32 {percentile(r.c32_latency_ms, 99):.1f} ms",
        f"BENCH {key}_peak_rss_engine {r.rss_mib.get('engine', 0):.0f} MiB",
        f"BENCH {key}_peak_rss_keras {r.rss_mib.get('keras', 0):.0f} MiB",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="PAT-S and PAT-M, fewer requests (under a minute)"
    )
    parser.add_argument("--sizes", help="comma-separated sizes to run, e.g. M or S,M,L,H")
    args = parser.parse_args()
    plans = QUICK if args.quick else FULL
    sizes = [s.strip().upper() for s in args.sizes.split(",")] if args.sizes else list(plans)
    unknown = [s for s in sizes if s not in FULL]
    if unknown:
        parser.error(f"unknown sizes {unknown}; choose from {', '.join(FULL)}")

    import tensorflow as tf

    print(
        f"PAT inference benchmark ({'quick' if args.quick else 'full'}): {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}, tensorflow {tf.__version__}; random weights (seed {SEED}) shared "
        "by both sides; real weeks from the example Actiwatch recordings"
    )
    weeks = load_weeks()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            results.append(run_size(size, plans.get(size, FULL[size]), weeks, Path(folder)))
            print_size(results[-1])
    print()
    for r in results:
        print("\n".join(bench_lines(r)))


if __name__ == "__main__":
    main()
