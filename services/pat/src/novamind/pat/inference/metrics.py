"""Prometheus metrics of PAT inference; labels carry the model name and the path, never patient data."""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

from novamind.core.telemetry import LATENCY_BUCKETS_SECONDS
from novamind.pat.inference.batcher import BatchObserver

BATCH_SIZE = Histogram(
    "novamind_pat_inference_batch_size",
    "Weeks per micro-batch run by the PAT encoder",
    ["model", "path"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
BATCH_SECONDS = Histogram(
    "novamind_pat_inference_batch_seconds",
    "Seconds the PAT encoder spent on one micro-batch",
    ["model", "path"],
    buckets=LATENCY_BUCKETS_SECONDS,
)
QUEUE_DEPTH = Gauge(
    "novamind_pat_inference_queue_depth",
    "Weeks accepted and waiting for a micro-batch",
    ["model", "path"],
)


def batch_observer(model: str, path: str) -> BatchObserver:
    """A :class:`~novamind.pat.inference.batcher.MicroBatcher` observer recording the metrics above."""
    size, seconds, depth = (
        BATCH_SIZE.labels(model, path),
        BATCH_SECONDS.labels(model, path),
        QUEUE_DEPTH.labels(model, path),
    )

    def observe(batch_size: int, batch_seconds: float, queued: int) -> None:
        size.observe(batch_size)
        seconds.observe(batch_seconds)
        depth.set(queued)

    return observe
