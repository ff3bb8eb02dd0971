"""Fixtures for the inference tests: seeded encoders, synthetic and real weeks, a fast config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from novamind.pat.domain.preprocessing import Week, sliding_weeks, to_minutes
from novamind.pat.inference import InferenceConfig, ModelIdentity
from novamind.pat.model.pat import PATConfig, PATEncoder

REPO_ROOT = Path(__file__).resolve().parents[4]
DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "actigraphy"


@pytest.fixture
def fast_config() -> InferenceConfig:
    """Starts in well under a second: PyTorch only, one-week timing probe, no sub-batch search."""
    return InferenceConfig(
        cpu_backend="torch", selection_rows=1, selection_repeats=1, sub_batch=2, max_wait_ms=2.0
    )


@pytest.fixture
def identity() -> ModelIdentity:
    return ModelIdentity(name="PAT-S", version="test-1", sha256="ab" * 32)


@pytest.fixture(scope="session")
def make_encoder() -> Callable[..., PATEncoder]:
    def make(size: str = "S", seed: int = 0) -> PATEncoder:
        torch.manual_seed(seed)
        return PATEncoder(PATConfig.for_size(size)).eval()

    return make


@pytest.fixture
def encoder_s(make_encoder: Callable[..., PATEncoder]) -> PATEncoder:
    return make_encoder("S")


@pytest.fixture
def active_week() -> np.ndarray:
    """Counts per minute: busy 07:00-23:00 and quiet at night on all seven days."""
    rng = np.random.default_rng(1)
    hour = (np.arange(10_080) % 1_440) / 60
    return np.where((hour > 7) & (hour < 23), rng.poisson(80, 10_080), rng.poisson(2, 10_080)).astype(float)


@pytest.fixture(scope="session")
def real_weeks() -> list[Week]:
    """Every week aligned to local midnight in the three AWD example recordings (real Actiwatch data)."""
    from novamind.pat.readers import read_recording

    files = sorted(DATA_DIR.glob("example_0*.AWD"))
    if not files:
        pytest.skip(f"example recordings not found in {DATA_DIR}")
    return [week for file in files for week in sliding_weeks(to_minutes(read_recording(file)))]
