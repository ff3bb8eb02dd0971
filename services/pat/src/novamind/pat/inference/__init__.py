"""Serving the PAT encoder: micro-batched async inference, backend choice, and attention maps.

:class:`EmbeddingEngine` is the entry point (``await engine.embed(week)``); :mod:`.runtime`
chooses and runs the backend (PyTorch CPU/GPU, ONNX Runtime), :mod:`.batcher` groups concurrent
requests, :mod:`.explain` turns attention into a 7 x 24 map of the week's hours.
"""

from novamind.pat.inference.batcher import BatcherStats, MicroBatcher
from novamind.pat.inference.engine import (
    EmbeddingEngine,
    InputQuality,
    ModelIdentity,
    PreparedWeek,
    WeekEmbedding,
    prepare_week,
)
from novamind.pat.inference.explain import attention_received, hour_of_week_map
from novamind.pat.inference.runtime import (
    BackendChoice,
    Candidate,
    Hardware,
    InferenceConfig,
    OnnxBackend,
    TorchBackend,
    plan_candidates,
    select_backend,
)

__all__ = [
    "BackendChoice",
    "BatcherStats",
    "Candidate",
    "EmbeddingEngine",
    "Hardware",
    "InferenceConfig",
    "InputQuality",
    "MicroBatcher",
    "ModelIdentity",
    "OnnxBackend",
    "PreparedWeek",
    "TorchBackend",
    "WeekEmbedding",
    "attention_received",
    "hour_of_week_map",
    "plan_candidates",
    "prepare_week",
    "select_backend",
]
