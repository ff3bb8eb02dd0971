"""A small, deterministic week-embedding model to serve, standing in for the PAT engine.

``LinearWeekEmbedder`` is a real (if tiny) model: the embedding is a fixed linear projection of
the week's counts (missing minutes as 0), the explanation the mean count of each day and hour.
It is wrapped by the production adapter, ``EmbeddingInferenceModel``, exactly as the engine is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from novamind.pat.serving.model import EMBEDDING_DIM, MINUTES_PER_WEEK, EmbeddingInferenceModel

MODEL_NAME = "pat-test"


@dataclass(frozen=True)
class EmbeddedWeek:
    embedding: npt.NDArray[np.float32]
    explanation: npt.NDArray[np.float32] | None


class LinearWeekEmbedder:
    """embedding = W @ counts, W (96, 10080) fixed by a seed; explanation = hourly means (7, 24)."""

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.weights = (rng.standard_normal((EMBEDDING_DIM, MINUTES_PER_WEEK)) / MINUTES_PER_WEEK).astype(
            np.float64
        )
        self.calls = 0
        self.loaded = True

    def expected(self, week: npt.ArrayLike) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        counts = np.nan_to_num(np.asarray(week, dtype=np.float64), nan=0.0)
        embedding = (self.weights @ counts).astype(np.float32)
        explanation = counts.reshape(7, 24, 60).mean(axis=2).astype(np.float32)
        return embedding, explanation

    async def embed(self, week: npt.NDArray[np.float64]) -> EmbeddedWeek:
        self.calls += 1
        embedding, explanation = self.expected(week)
        return EmbeddedWeek(embedding, explanation)


@pytest.fixture
def embedder() -> LinearWeekEmbedder:
    return LinearWeekEmbedder()


@pytest.fixture
def model(embedder: LinearWeekEmbedder) -> EmbeddingInferenceModel:
    return EmbeddingInferenceModel(
        embedder.embed, name=MODEL_NAME, version="1.0.0", platform="pytorch", ready=lambda: embedder.loaded
    )


@pytest.fixture
def weeks() -> npt.NDArray[np.float32]:
    """Two weeks of counts per minute, (2, 10080) float32: a daily rhythm plus noise."""
    rng = np.random.default_rng(3)
    minute_of_day = np.arange(MINUTES_PER_WEEK) % 1440
    awake = (minute_of_day >= 7 * 60) & (minute_of_day < 23 * 60)
    level = np.where(awake, 300.0, 5.0)
    return np.stack([rng.poisson(level * scale) for scale in (1.0, 0.6)]).astype(np.float32)
