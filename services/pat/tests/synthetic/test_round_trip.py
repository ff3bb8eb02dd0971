"""Round trip: the project's scoring and sleep metrics recover what the generator planted.

Cole-Kripke ("mean" settings, Webster rescoring on) scores each epoch; per-night metrics are
taken over the planted time in bed, as a sleep diary or event marker would give it. Planted
total sleep time and sleep efficiency must be recovered within 3 % on clean weeks.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from novamind.pat.domain.metrics.scoring import score_cole_kripke
from novamind.pat.domain.metrics.sleep import find_rest_periods, night_sleep
from novamind.pat.domain.preprocessing import MINUTES_PER_WEEK, sliding_weeks, to_minutes
from novamind.pat.domain.synthetic import SleepPattern, SyntheticConfig, SyntheticRecording, generate

TOLERANCE = 0.03


def assert_nights_recovered(generated: SyntheticRecording) -> None:
    scoring = score_cole_kripke(generated.recording.activity)
    assert generated.truth.nights
    for night in generated.truth.nights:
        measured = night_sleep(scoring, night.in_bed.start, night.in_bed.end)
        assert measured.time_in_bed_min == night.time_in_bed_minutes
        assert measured.total_sleep_time_min == pytest.approx(night.total_sleep_minutes, rel=TOLERANCE), night
        assert measured.sleep_efficiency_pct == pytest.approx(night.sleep_efficiency, rel=TOLERANCE), night


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("epoch_seconds", [15, 30, 60])
def test_clean_week_total_sleep_time_and_efficiency_are_recovered_within_3_percent(
    epoch_seconds: int, seed: int
) -> None:
    generated = generate(SyntheticConfig(days=7, epoch_seconds=epoch_seconds), seed=seed)

    assert_nights_recovered(generated)


def test_recovery_holds_for_poor_sleep_with_many_awakenings() -> None:
    config = SyntheticConfig(days=7, sleep=SleepPattern(efficiency=0.72, efficiency_sd=0.04, awakenings=5))

    assert_nights_recovered(generate(config, seed=21))


def test_spring_forward_week_is_recovered_and_yields_10080_minutes_of_local_time() -> None:
    generated = generate(SyntheticConfig(start_date=dt.date(2026, 3, 23), days=7), seed=8)

    assert_nights_recovered(generated)
    (week,) = sliding_weeks(to_minutes(generated.recording))
    local = pd.date_range(week.start, periods=MINUTES_PER_WEEK, freq="min")
    np.testing.assert_array_equal(week.local_minute_of_day, local.hour * 60 + local.minute)


def test_fall_back_week_is_recovered() -> None:
    generated = generate(SyntheticConfig(start_date=dt.date(2026, 10, 19), days=7), seed=8)

    assert_nights_recovered(generated)


def test_detected_rest_periods_fall_on_the_planted_nights() -> None:
    generated = generate(SyntheticConfig(days=7), seed=2)

    periods = {p.night: p for p in find_rest_periods(generated.recording.activity)}

    for night in generated.truth.nights:
        period = periods[night.night_of]
        midpoint = period.start + (period.end - period.start) / 2
        assert night.in_bed.start < midpoint < night.in_bed.end
