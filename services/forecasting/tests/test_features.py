"""Tabular forecasting features: exact values on a hand-made panel and no look-ahead."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest

from novamind.forecasting.domain.features import build_features, feature_names
from novamind.forecasting.domain.series import CovariateSchema, Panel

SCHEMA = CovariateSchema(past=("sleep", "steps"), future=("med",))
NAN = np.nan


def hand_panel() -> Panel:
    # 2024-01-01 is a Monday.
    target = np.array([1.0, NAN, 3.0, 4.0, NAN, 6.0, 7.0, 8.0, NAN, 10.0, 11.0, 12.0])
    sleep = np.arange(12, dtype=np.float64) * 10.0
    sleep[7] = NAN
    steps = np.full(12, NAN)  # no wearable
    # med: off, off, on, on, unknown, off, on, on, ... (future is 5 days longer than target)
    med = np.array([0, 0, 1, 1, NAN, 0, 1, 1, 1, NAN, NAN, 1, 1, 0, 0, 1, 1], dtype=np.float64)
    return Panel(
        key="hand",
        start=dt.date(2024, 1, 1),
        target=target,
        past=np.stack([sleep, steps], axis=1),
        future=med[:, None],
    )


def row(panel: Panel, origin: int, horizon: int, normalize: bool = False) -> dict[str, float]:
    matrix = build_features([panel], [0], [origin], [horizon], "phq", SCHEMA, normalize=normalize)
    return dict(zip(matrix.names, matrix.values[0].astype(np.float64).tolist(), strict=True))


def test_names_are_readable_and_ordered() -> None:
    names = feature_names("phq", SCHEMA)
    assert names[:3] == ("phq_lag_1", "phq_lag_2", "phq_lag_3")
    for expected in (
        "phq_lag_28",
        "phq_last_observed",
        "phq_days_since_observed",
        "phq_rolling_mean_14",
        "phq_rolling_std_28",
        "phq_observed_fraction_28",
        "sleep_lag_2",
        "steps_rolling_mean_7",
        "med_at_target",
        "med_days_since_on",
    ):
        assert expected in names
    assert names[-2:] == ("day_of_week", "horizon")
    assert len(set(names)) == len(names)
    with pytest.raises(ValueError):
        feature_names("phq", CovariateSchema(past=("phq",)))


def test_exact_values_on_a_hand_made_panel() -> None:
    panel = hand_panel()
    # Origin 8 (missing day), forecasting day 11 (h = 3).
    f = row(panel, 8, 3)
    history = panel.target[:9]
    assert np.isnan(f["phq_lag_1"])  # day 8 is missing
    assert f["phq_lag_2"] == 8.0 and f["phq_lag_3"] == 7.0 and f["phq_lag_7"] == 3.0
    assert np.isnan(f["phq_lag_14"])  # before the series start
    assert f["phq_last_observed"] == 8.0
    assert f["phq_days_since_observed"] == 1.0
    last7 = history[2:9]
    assert f["phq_rolling_mean_7"] == pytest.approx(np.nanmean(last7), rel=1e-6)
    assert f["phq_rolling_std_7"] == pytest.approx(np.nanstd(last7), rel=1e-5)
    assert f["phq_rolling_mean_28"] == pytest.approx(np.nanmean(history), rel=1e-6)
    assert f["phq_observed_fraction_28"] == pytest.approx(6 / 9)
    assert f["phq_history_mean"] == pytest.approx(np.nanmean(history), rel=1e-6)
    assert f["phq_level"] == pytest.approx(np.nanmean(history), rel=1e-6)
    assert f["phq_scale"] == pytest.approx(np.nanstd(history), rel=1e-5)
    # Past covariates read up to the origin only; sleep day 7 is missing.
    assert f["sleep_lag_1"] == 80.0 and np.isnan(f["sleep_lag_2"]) and f["sleep_lag_3"] == 60.0
    assert f["sleep_rolling_mean_7"] == pytest.approx(np.mean([20, 30, 40, 50, 60, 80]), rel=1e-6)
    assert np.isnan(f["steps_lag_1"]) and np.isnan(f["steps_rolling_mean_28"])
    # Known future at day 11: on; it switched on at day 6 (day 4 unknown keeps "on", day 5 is off;
    # days 9 and 10 unknown keep "on").
    assert f["med_at_target"] == 1.0
    assert f["med_days_since_on"] == 5.0
    assert f["day_of_week"] == 4.0  # day 11 = 2024-01-12, a Friday (Monday = 0)
    assert f["horizon"] == 3.0


def test_calendar_and_switch_on_details() -> None:
    panel = hand_panel()
    # Day 3: switched on at day 2.
    assert row(panel, 0, 3)["med_days_since_on"] == 1.0
    # Day 5 is off after an unknown day: still counts from the day-2 switch-on.
    f = row(panel, 0, 5)
    assert f["med_at_target"] == 0.0 and f["med_days_since_on"] == 3.0
    # Never on before day 2.
    assert np.isnan(row(panel, 0, 1)["med_days_since_on"])
    # Beyond the known-future array: unknown.
    assert np.isnan(row(panel, 11, 6)["med_at_target"])


def test_normalised_columns_are_centred_and_scaled() -> None:
    panel = hand_panel()
    raw = row(panel, 9, 2)
    norm = row(panel, 9, 2, normalize=True)
    level, scale = raw["phq_level"], raw["phq_scale"]
    assert norm["phq_level"] == pytest.approx(level) and norm["phq_scale"] == pytest.approx(scale)
    for name in ("phq_lag_1", "phq_lag_3", "phq_last_observed", "phq_rolling_mean_7", "phq_history_mean"):
        assert norm[name] == pytest.approx((raw[name] - level) / scale, rel=1e-5, abs=1e-6)
    assert norm["phq_rolling_std_14"] == pytest.approx(raw["phq_rolling_std_14"] / scale, rel=1e-5)
    for name in ("sleep_lag_1", "med_at_target", "day_of_week", "phq_days_since_observed"):
        assert norm[name] == raw[name]


def random_panel(rng: np.random.Generator, length: int, extra_future: int) -> Panel:
    target = rng.normal(10, 3, length)
    target[rng.random(length) < 0.2] = NAN
    past = rng.normal(size=(length, 2))
    past[rng.random(past.shape) < 0.2] = NAN
    future = (rng.random((length + extra_future, 1)) < 0.5).astype(np.float64)
    return Panel(key="r", start=dt.date(2024, 3, 5), target=target, past=past, future=future)


def test_features_do_not_read_beyond_the_origin() -> None:
    rng = np.random.default_rng(3)
    panel = random_panel(rng, 80, 20)
    for origin, horizon in ((0, 1), (20, 1), (40, 7), (60, 19), (79, 14)):
        base = build_features([panel], [0], [origin], [horizon], "y", SCHEMA)
        changed_target = panel.target.copy()
        changed_target[origin + 1 :] = rng.normal(50, 10, panel.length - origin - 1)
        changed_past = panel.past.copy()
        changed_past[origin + 1 :] = rng.normal(50, 10, changed_past[origin + 1 :].shape)
        changed_future = panel.future.copy()
        changed_future[origin + 1 + horizon :] = 1.0 - changed_future[origin + 1 + horizon :]
        altered = dataclasses.replace(panel, target=changed_target, past=changed_past, future=changed_future)
        after = build_features([altered], [0], [origin], [horizon], "y", SCHEMA)
        np.testing.assert_array_equal(base.values, after.values)
        np.testing.assert_array_equal(base.level, after.level)
        np.testing.assert_array_equal(base.scale, after.scale)

        # The test is sensitive: the known future inside the horizon and the origin day count.
        inside = panel.future.copy()
        inside[origin + horizon] = 1.0 - inside[origin + horizon]
        moved = build_features(
            [dataclasses.replace(panel, future=inside)], [0], [origin], [horizon], "y", SCHEMA
        )
        column = base.names.index("med_at_target")
        assert moved.values[0, column] != base.values[0, column]
        at_origin = panel.target.copy()
        at_origin[origin] = 99.0
        shifted = build_features(
            [dataclasses.replace(panel, target=at_origin)], [0], [origin], [horizon], "y", SCHEMA
        )
        assert not np.array_equal(shifted.values, base.values)


def test_batched_rows_equal_single_rows_across_panels() -> None:
    rng = np.random.default_rng(5)
    panels = [random_panel(rng, int(rng.integers(30, 90)), 30) for _ in range(6)]
    which = rng.integers(0, 6, 200)
    origins = np.array([rng.integers(0, panels[i].length) for i in which])
    horizons = rng.integers(1, 31, 200)
    batch = build_features(panels, which, origins, horizons, "y", SCHEMA)
    assert batch.values.shape == (200, len(feature_names("y", SCHEMA)))
    assert batch.values.dtype == np.float32
    for i in range(0, 200, 17):
        single = build_features([panels[which[i]]], [0], [origins[i]], [horizons[i]], "y", SCHEMA)
        np.testing.assert_array_equal(single.values[0], batch.values[i])
        assert single.level[0] == batch.level[i] and single.scale[0] == batch.scale[i]


def test_scale_floor_and_rejections() -> None:
    flat = Panel(
        key="f",
        start=dt.date(2024, 1, 1),
        target=np.full(10, 5.0),
        past=np.zeros((10, 2)),
        future=np.zeros((12, 1)),
    )
    matrix = build_features([flat], [0], [9], [1], "y", SCHEMA, scale_floor=0.5)
    assert matrix.scale[0] == 0.5 and matrix.level[0] == 5.0
    with pytest.raises(ValueError):
        build_features([flat], [0], [10], [1], "y", SCHEMA)
    with pytest.raises(ValueError):
        build_features([flat], [0], [3], [0], "y", SCHEMA)
    with pytest.raises(ValueError):
        build_features([flat], [0], [3], [1], "y", CovariateSchema(past=("a",)))
