"""Per-night sleep outcomes, timing variability, regularity and wear time on plain inputs."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.domain.metrics import sleep


def _night_scoring() -> pd.Series:
    """22:00-06:00 at 1 min: 20 min awake, sleep with 5- and 3-min awakenings, 10 min awake."""
    scores = [0] * 20 + [1] * 100 + [0] * 5 + [1] * 200 + [0] * 3 + [1] * 142 + [0] * 10
    return pd.Series(scores, index=pd.date_range("2024-03-04 22:00", periods=480, freq="1min"))


def _days(days: int, asleep: tuple[int, int] = (23, 7), start: str = "2024-03-04") -> pd.Series:
    index = pd.date_range(start, periods=days * 1440, freq="1min")
    hour = index.hour.to_numpy()
    first, last = asleep
    inside = (hour >= first) & (hour < last) if first < last else (hour >= first) | (hour < last)
    return pd.Series(inside.astype(np.int8), index=index)


def test_night_outcomes_follow_the_standard_definitions() -> None:
    night = sleep.night_sleep(
        _night_scoring(), pd.Timestamp("2024-03-04 22:00"), pd.Timestamp("2024-03-05 06:00")
    )

    assert night.time_in_bed_min == 480
    assert night.total_sleep_time_min == 442
    assert night.sleep_efficiency_pct == pytest.approx(442 / 480 * 100)
    assert night.sleep_onset_latency_min == 20
    assert night.waso_min == 8
    assert night.n_awakenings == 2
    assert night.mean_awakening_min == 4
    assert night.sleep_onset == pd.Timestamp("2024-03-04 22:20")
    assert night.final_awakening == pd.Timestamp("2024-03-05 05:50")
    assert night.sleep_midpoint == pd.Timestamp("2024-03-05 02:05")


def test_a_window_without_sleep_has_no_onset_and_undefined_latency() -> None:
    awake = pd.Series(0, index=pd.date_range("2024-03-04 22:00", periods=60, freq="1min"))

    night = sleep.night_sleep(awake, awake.index[0], awake.index[-1] + pd.Timedelta(minutes=1))

    assert night.total_sleep_time_min == 0
    assert night.sleep_onset is None
    assert night.sleep_midpoint is None
    assert math.isnan(night.sleep_onset_latency_min)


def test_a_window_outside_the_scoring_is_rejected() -> None:
    with pytest.raises(ValidationError):
        sleep.night_sleep(_night_scoring(), pd.Timestamp("2024-04-01"), pd.Timestamp("2024-04-02"))


def test_clock_time_variability_is_circular_across_midnight() -> None:
    assert sleep.circular_sd_minutes([23 * 60 + 50, 10]) == pytest.approx(10, abs=0.01)
    assert sleep.circular_sd_minutes([120, 120, 120]) == pytest.approx(0, abs=1e-6)
    assert math.isnan(sleep.circular_sd_minutes([60]))


def test_sleep_timing_variability_across_nights() -> None:
    scoring = _days(3)
    nights = [
        sleep.night_sleep(
            scoring, pd.Timestamp(f"2024-03-0{d} 22:00"), pd.Timestamp(f"2024-03-0{d + 1} 08:00")
        )
        for d in (4, 5)
    ]

    variability = sleep.sleep_timing_variability(nights)

    assert variability.n_nights == 2
    assert variability.onset_sd_min == pytest.approx(0, abs=1e-6)
    assert variability.midpoint_sd_min == pytest.approx(0, abs=1e-6)


def test_sleep_regularity_index_is_100_for_identical_days_and_minus_100_for_alternating_ones() -> None:
    identical = _days(5)
    alternating = identical.copy()
    day = pd.DatetimeIndex(alternating.index).day.to_numpy()
    alternating[day % 2 == 0] = 1 - alternating[day % 2 == 0]

    assert sleep.sleep_regularity_index(identical) == pytest.approx(100)
    assert sleep.sleep_regularity_index(alternating) == pytest.approx(-100)
    assert math.isnan(sleep.sleep_regularity_index(identical.iloc[:600]))


def test_sleep_midpoint_is_the_circular_mean_clock_time_of_sleep() -> None:
    # Sleep 23:00-06:59 every day: clock times average to 02:59:30.
    assert sleep.sleep_midpoint(_days(4)) == pytest.approx(179.5)
    assert math.isnan(sleep.sleep_midpoint(_days(1) * 0))


def test_percent_scored_sleep_and_daytime_sleep_fraction() -> None:
    scoring = _days(2, asleep=(13, 15))  # a two-hour nap after lunch

    assert sleep.percent_scored_sleep(scoring) == pytest.approx(2 / 24 * 100)
    # 12:00-17:00 inclusive of both ends: 120 of the 301 clock minutes.
    assert sleep.fraction_sleep_over_daytime(scoring) == pytest.approx(120 / 301)
    assert sleep.fraction_sleep_over_daytime(scoring, dt.time(22), hours=4) == 0


def test_rest_bouts_and_main_rest_period_per_night() -> None:
    index = pd.date_range("2024-03-04 12:00", periods=2 * 1440, freq="1min")
    rng = np.random.default_rng(5)
    hour = index.hour.to_numpy()
    quiet = ((hour >= 23) | (hour < 7)) | ((index.day == 5) & (hour == 14))  # nights and a nap
    counts = pd.Series(np.where(quiet, rng.poisson(2, index.size), rng.poisson(200, index.size)), index=index)

    periods = sleep.find_rest_periods(counts, "roenneberg")

    assert [p.night for p in periods] == [dt.date(2024, 3, 4), dt.date(2024, 3, 5)]
    for period, night_start in zip(periods, ("2024-03-04 23:00", "2024-03-05 23:00"), strict=True):
        assert abs(period.start - pd.Timestamp(night_start)) <= pd.Timedelta(minutes=30)
        assert period.minutes == pytest.approx(480, abs=60)
    assert all(b.minutes > 0 for b in sleep.rest_bouts(sleep.detect_rest_roenneberg(counts)))


def test_unknown_rest_detection_method_is_rejected() -> None:
    counts = pd.Series(np.zeros(10), index=pd.date_range("2024-03-04", periods=10, freq="1min"))
    method: Any = "sadeh"

    with pytest.raises(ValidationError):
        sleep.find_rest_periods(counts, method)


def test_daily_totals_wear_time_and_valid_days() -> None:
    index = pd.date_range("2024-03-04", periods=3 * 1440, freq="1min")
    counts = pd.Series(10.0, index=index)
    counts["2024-03-05 00:00":"2024-03-05 09:59"] = 0.0  # 10 h off the wrist
    counts["2024-03-06 12:00":"2024-03-06 12:29"] = 0.0  # 30 min of stillness: still worn
    counts["2024-03-06 20:00":"2024-03-06 20:09"] = np.nan  # no data

    days = sleep.daily_activity(counts)

    assert days["wear_min"].tolist() == [1440, 840, 1430]
    assert days["valid"].tolist() == [True, False, True]
    assert days["total_counts"].tolist() == [14400, 8400, 14000]
    assert sleep.daily_activity(counts, min_wear=pd.Timedelta(hours=14))["valid"].tolist() == [True] * 3
    assert sleep.nonwear(counts, pd.Timedelta(minutes=20))["2024-03-06 12:00":"2024-03-06 12:29"].all()
