"""A quick forecasting artifact trained once per test session (the real training path, small)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from novamind.forecasting import artifact
from novamind.forecasting.cli import quick_spec


def quick_train_spec(**changes: Any) -> artifact.TrainSpec:
    return replace(quick_spec(), **changes)


@pytest.fixture(scope="session")
def quick_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a quick artifact for phq9_total and mood_rating."""
    out = tmp_path_factory.mktemp("forecast-artifact") / "forecast-dev"
    artifact.train(quick_train_spec(targets=("phq9_total", "mood_rating")), out)
    return out
