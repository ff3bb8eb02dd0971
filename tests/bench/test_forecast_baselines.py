"""The accuracy benchmark's baseline adapters and its real data set loader (bench/forecast_baselines.py)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pytest

from novamind.forecasting.domain.series import CovariateSchema, Panel, TargetSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import forecast_baselines as fb

LEVELS = (0.1, 0.5, 0.9)
COUNT_SPEC = TargetSpec(name="count", unit="1", lower=0.0, season=7)


def _panel(key: str, values: np.ndarray, start: dt.date = dt.date(2024, 1, 1)) -> Panel:
    return Panel(
        key=key,
        start=start,
        target=values.astype(np.float64),
        past=np.empty((values.shape[0], 0)),
        future=np.empty((values.shape[0], 0)),
    )


def _weekly_series(rng: np.random.Generator, days: int, slope: float, noise: float) -> np.ndarray:
    t = np.arange(days, dtype=np.float64)
    return 50.0 + slope * t + 6.0 * np.sin(2 * np.pi * t / 7) + rng.normal(0.0, noise, days)


def test_fill_gaps_uses_the_past_only() -> None:
    history = np.array([np.nan, np.nan, 1.0, np.nan, 3.0, np.nan, np.nan])
    filled, mask, offset = fb.fill_gaps(history)
    assert offset == 2
    np.testing.assert_allclose(filled, [1.0, 2.0, 3.0, 3.0, 3.0])
    np.testing.assert_array_equal(mask, [True, False, True, False, False])
    assert fb.fill_gaps(np.full(4, np.nan))[0].size == 0


def test_interval_levels_match_the_quantile_levels() -> None:
    assert fb._interval_levels((0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)) == [90, 80, 50]


def test_local_baselines_return_sorted_bounded_quantiles_despite_gaps() -> None:
    rng = np.random.default_rng(3)
    panels = []
    for i in range(3):
        values = np.maximum(_weekly_series(rng, 120, 0.0, 4.0) - 45.0, 0.0)
        values[rng.random(120) < 0.2] = np.nan  # scattered missing days
        values[30:44] = np.nan  # a dropout run
        panels.append(_panel(f"s{i}", values))
    origins = [90, 100, 105]
    report = fb.EtsReport()
    for forecasts in (
        fb.seasonal_naive_quantiles(panels, origins, 14, LEVELS, COUNT_SPEC),
        fb.auto_ets_quantiles(panels, origins, 14, LEVELS, COUNT_SPEC, report),
    ):
        assert forecasts.shape == (3, 14, 3)
        assert np.isfinite(forecasts).all()
        assert (np.diff(forecasts, axis=-1) >= 0).all()
        assert (forecasts >= 0).all()
    assert report.fitted == 3 and report.fallback == 0


def test_autoets_tracks_a_trend_that_seasonal_naive_lags() -> None:
    rng = np.random.default_rng(11)
    horizon = 14
    panels = [_panel(f"t{i}", _weekly_series(rng, 150, 0.8, 1.0)) for i in range(4)]
    origins = [150 - horizon - 1] * 4
    actual = np.stack([p.target[o + 1 : o + 1 + horizon] for p, o in zip(panels, origins, strict=True)])
    spec = TargetSpec(name="level", unit="1", season=7)
    naive = fb.seasonal_naive_quantiles(panels, origins, horizon, LEVELS, spec)[:, :, 1]
    ets = fb.auto_ets_quantiles(panels, origins, horizon, LEVELS, spec)[:, :, 1]
    # seasonal naive is ~0.8 x 7k behind the trend; a trend model is within the noise
    assert np.abs(ets - actual).mean() < 0.5 * np.abs(naive - actual).mean()


def test_flights_are_real_daily_series_with_a_weekly_pattern() -> None:
    panels = fb.load_flights()
    assert len(panels) >= 20
    assert len({p.key for p in panels}) == len(panels)
    totals = [float(p.target.sum()) for p in panels]
    assert totals == sorted(totals, reverse=True)
    saturday_lower = 0
    for panel in panels:
        assert panel.length == 365 and panel.start == dt.date(2013, 1, 1)
        assert np.isfinite(panel.target).all() and (panel.target >= 0).all()
        assert panel.target.mean() >= fb.FLIGHTS_MIN_DAILY_MEAN
        dow = panel.day_of_week(panel.length)
        saturday_lower += panel.target[dow == 5].mean() < panel.target[dow < 5].mean()
    # airlines fly fewer departures on Saturdays
    assert saturday_lower >= 0.75 * len(panels)


def test_tft_trains_and_forecasts_finite_sorted_quantiles() -> None:
    pytest.importorskip("neuralforecast")
    rng = np.random.default_rng(5)
    train = [_panel(f"s{i}", np.maximum(_weekly_series(rng, 100, 0.1, 3.0), 0)) for i in range(6)]
    test = [_panel(f"x{i}", np.maximum(_weekly_series(rng, 100, 0.1, 3.0), 0)) for i in range(2)]
    test[0].target[60:70] = np.nan
    model = fb.fit_tft(
        train,
        COUNT_SPEC,
        CovariateSchema(),
        7,
        seed=0,
        config=fb.TftConfig(input_size=21, hidden_size=8, max_steps=3, batch_size=6, windows_batch_size=16),
    )
    forecasts = model.predict(test, [80, 85], 7)
    assert forecasts.shape == (2, 7, 3)
    assert np.isfinite(forecasts).all()
    assert (np.diff(forecasts, axis=-1) >= 0).all()
    assert (forecasts >= 0).all()
