"""Input drift reaches Prometheus: the PSI gauges follow the recent weeks against the stored reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from novamind.core.errors import ModelNotReadyError
from novamind.pat.domain.drift import WEEK_STATISTICS, DriftReference, fit_reference, week_statistics
from novamind.pat.serving.drift_metrics import REFERENCE_FILENAME, DriftMonitor, load_reference

MINUTES = 10_080


def _weeks(n: int, *, activity_scale: float = 1.0, seed: int) -> list[np.ndarray]:
    """Synthetic weeks: a day/night rhythm, each week with its own activity level (counts/min)."""
    rng = np.random.default_rng(seed)
    minute_of_day = np.arange(MINUTES) % 1440
    awake = (minute_of_day >= 7 * 60) & (minute_of_day < 23 * 60)
    weeks = []
    for _ in range(n):
        level = rng.lognormal(mean=np.log(200), sigma=0.3) * activity_scale
        rate = np.where(awake, level, level * 0.02)
        weeks.append(rng.poisson(rate).astype(np.float64))
    return weeks


@pytest.fixture(scope="module")
def reference() -> DriftReference:
    return fit_reference([week_statistics(w) for w in _weeks(800, seed=1)])


def _gauge(statistic: str) -> float | None:
    return REGISTRY.get_sample_value("novamind_pat_input_psi", {"statistic": statistic})


def test_gauges_report_no_drift_for_weeks_like_the_training_weeks(reference: DriftReference) -> None:
    monitor = DriftMonitor(reference, window_weeks=400, min_weeks=100)

    for week in _weeks(400, seed=2):
        monitor.observe(week)

    for statistic in WEEK_STATISTICS:
        value = _gauge(statistic)
        assert value is not None and value < 0.1, statistic
    assert REGISTRY.get_sample_value("novamind_pat_input_drift_window_weeks") == 400


def test_gauges_rise_past_the_alert_threshold_when_activity_halves(reference: DriftReference) -> None:
    monitor = DriftMonitor(reference, window_weeks=400, min_weeks=100)
    for week in _weeks(400, seed=3):
        monitor.observe(week)
    before = _gauge("mean")

    for week in _weeks(400, activity_scale=0.5, seed=4):
        monitor.observe(week)

    after = _gauge("mean")
    assert before is not None and after is not None
    assert before < 0.1 < 0.25 < after
    assert _gauge("log_mean") is not None and _gauge("log_mean") > 0.25  # type: ignore[operator]
    assert monitor.psi()["mean"] == after


def test_the_window_keeps_only_the_most_recent_weeks(reference: DriftReference) -> None:
    monitor = DriftMonitor(reference, window_weeks=30, min_weeks=10)

    for week in _weeks(45, seed=5):
        monitor.observe(week)

    assert len(monitor) == 30


def test_a_reference_is_read_from_the_model_artifact(reference: DriftReference, tmp_path: Path) -> None:
    path = tmp_path / REFERENCE_FILENAME
    path.write_text(json.dumps(reference.to_json()), encoding="utf-8")

    loaded = load_reference(path)

    assert set(loaded.statistics) == set(reference.statistics)
    np.testing.assert_array_equal(
        loaded.statistics["mean"].cut_points, reference.statistics["mean"].cut_points
    )


@pytest.mark.parametrize(
    "content", [None, "{not json", json.dumps({"format": "other"})], ids=["missing", "json", "format"]
)
def test_a_missing_or_malformed_reference_makes_the_model_not_ready(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / REFERENCE_FILENAME
    if content is not None:
        path.write_text(content, encoding="utf-8")

    with pytest.raises(ModelNotReadyError, match=REFERENCE_FILENAME):
        load_reference(path)


def test_window_bounds_are_checked(reference: DriftReference) -> None:
    with pytest.raises(ValueError):
        DriftMonitor(reference, window_weeks=10, min_weeks=20)
