"""Choi non-wear detection, the missing-data mask and clock-minute imputation."""

from __future__ import annotations

import numpy as np
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.domain.preprocessing import detect_non_wear, impute, missing_mask


def active_day(n: int = 1440, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(50, 400, n).astype(np.float64)


def test_a_two_hour_zero_stretch_is_non_wear_and_exactly_that() -> None:
    counts = active_day()
    counts[600:720] = 0

    non_wear = detect_non_wear(counts)

    assert non_wear[600:720].all()
    assert non_wear.sum() == 120


def test_a_thirty_minute_still_nap_is_not_non_wear() -> None:
    counts = active_day()
    counts[800:830] = 0

    assert not detect_non_wear(counts).any()


def test_a_run_just_under_ninety_minutes_is_wear_and_at_ninety_is_non_wear() -> None:
    short, exact = active_day(), active_day()
    short[100:189] = 0
    exact[100:190] = 0

    assert not detect_non_wear(short).any()
    assert detect_non_wear(exact).sum() == 90


def test_a_two_minute_spike_inside_quiet_windows_is_tolerated() -> None:
    # 50 zero, 2 moving, 50 zero: only with the spike tolerated is this one 102-minute run.
    counts = active_day()
    counts[300:402] = 0
    counts[350:352] = 5

    non_wear = detect_non_wear(counts)

    assert non_wear[300:402].all() and non_wear.sum() == 102


def test_a_spike_without_thirty_quiet_minutes_on_each_side_breaks_the_run() -> None:
    counts = active_day()
    counts[300:402] = 0
    counts[325:327] = 5  # 25 quiet minutes upstream: not tolerated, leaving runs of 25 and 75

    assert not detect_non_wear(counts).any()


def test_more_than_two_minutes_of_movement_breaks_the_run() -> None:
    counts = active_day()
    counts[300:500] = 0
    counts[350:353] = 5  # three minutes: 50 zero minutes before, 147 after

    non_wear = detect_non_wear(counts)

    assert not non_wear[300:353].any()
    assert non_wear[353:500].all()


def test_missing_minutes_break_a_zero_run_and_are_never_non_wear() -> None:
    counts = active_day()
    counts[100:250] = 0
    counts[170:175] = np.nan

    non_wear = detect_non_wear(counts)

    assert not non_wear.any()
    np.testing.assert_array_equal(np.flatnonzero(missing_mask(counts)), np.arange(170, 175))


def test_imputation_never_changes_observed_values_and_marks_what_it_filled() -> None:
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 300, 3 * 1440).astype(np.float64)
    counts[rng.random(counts.size) < 0.1] = np.nan
    clock = np.tile(np.arange(1440), 3)

    values, imputed = impute(counts, clock)

    observed = ~np.isnan(counts)
    np.testing.assert_array_equal(values[observed], counts[observed])
    np.testing.assert_array_equal(imputed, ~observed)
    assert not np.isnan(values).any()


def test_a_filled_minute_is_the_mean_of_its_clock_minute_on_other_days_else_zero() -> None:
    counts = np.array([10.0, 20.0, 30.0, np.nan, 40.0, np.nan])
    clock = np.array([0, 1, 0, 1, 0, 2])
    non_wear = np.array([False, False, False, False, True, False])

    values, imputed = impute(counts, clock, non_wear)

    # Minute 3 (clock 1): mean of the observed clock-1 minutes = 20. Minute 4 (clock 0, non-wear):
    # mean of the kept clock-0 minutes = 20. Minute 5 (clock 2): never observed -> 0.
    np.testing.assert_array_equal(values, [10.0, 20.0, 30.0, 20.0, 20.0, 0.0])
    np.testing.assert_array_equal(imputed, [False, False, False, True, True, True])


def test_impute_rejects_clock_labels_outside_a_day() -> None:
    with pytest.raises(ValidationError, match="0-1439"):
        impute(np.array([1.0]), np.array([1440]))
