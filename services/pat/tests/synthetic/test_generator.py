"""The synthetic generator is deterministic and plants exactly what its ground truth says."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.domain.preprocessing import MINUTES_PER_WEEK, detect_non_wear, sliding_weeks, to_minutes
from novamind.pat.domain.synthetic import (
    WAKE_IN_BED_COUNTS,
    Anomaly,
    Interval,
    MinuteState,
    SleepPattern,
    Stretch,
    SyntheticConfig,
    SyntheticRecording,
    generate,
)

ZURICH = "Europe/Zurich"


def minute_slice(truth_start: pd.Timestamp, interval: Interval) -> slice:
    lo = int((interval.start - truth_start) // pd.Timedelta(minutes=1))
    return slice(lo, lo + interval.minutes)


def test_the_same_seed_gives_identical_output_and_another_seed_does_not() -> None:
    config = SyntheticConfig(anomalies=(Anomaly("unusual_movement", day=2),))

    first, again, other = generate(config, seed=11), generate(config, seed=11), generate(config, seed=12)

    np.testing.assert_array_equal(first.recording.counts(), again.recording.counts())
    assert first.recording.activity.index.equals(again.recording.activity.index)
    assert first.truth.nights == again.truth.nights
    np.testing.assert_array_equal(first.truth.minute_state, again.truth.minute_state)
    assert not np.array_equal(first.recording.counts(), other.recording.counts())


@pytest.mark.parametrize("epoch_seconds", [1, 15, 30, 60])
def test_epochs_cover_the_days_on_a_local_grid(epoch_seconds: int) -> None:
    generated = generate(SyntheticConfig(days=2, epoch_seconds=epoch_seconds), seed=0)

    recording = generated.recording
    assert recording.epoch_seconds == epoch_seconds
    assert recording.n_epochs == 2 * 1440 * 60 // epoch_seconds
    assert recording.start == pd.Timestamp("2026-01-05", tz=ZURICH)
    assert recording.timezone == ZURICH
    steps = np.diff(pd.DatetimeIndex(recording.activity.index).as_unit("s").asi8)
    assert (steps == epoch_seconds).all()


def test_counts_follow_the_planted_state_at_actiwatch_like_levels() -> None:
    generated = generate(SyntheticConfig(days=7), seed=5)
    counts = to_minutes(generated.recording).counts
    state = generated.truth.minute_state

    up, in_bed, asleep = (counts[state == s] for s in MinuteState)
    assert asleep.max() <= 4 and np.mean(asleep == 0) > 0.7
    assert asleep.size > 7 * 300
    assert in_bed.min() >= WAKE_IN_BED_COUNTS[0] and in_bed.max() <= WAKE_IN_BED_COUNTS[1]
    assert np.median(up) > 150 and np.percentile(up, 99) > 800  # hundreds, with bursts


def test_each_night_s_truth_matches_the_planted_minutes() -> None:
    generated = generate(SyntheticConfig(days=7), seed=2)
    truth = generated.truth

    assert [n.night_of for n in truth.nights] == [
        dt.date(2026, 1, 5) + dt.timedelta(days=d) for d in range(6)
    ]
    for night in truth.nights:
        bed = minute_slice(truth.start, night.in_bed)
        assert night.total_sleep_minutes == int(truth.asleep[bed].sum())
        assert night.sleep_efficiency == pytest.approx(
            100 * night.total_sleep_minutes / night.time_in_bed_minutes
        )
        assert 0.5 * 100 <= night.sleep_efficiency <= 99
        assert night.sleep_onset is not None and night.final_wake is not None
        assert night.in_bed.start <= night.sleep_onset < night.final_wake <= night.in_bed.end
        assert len(night.awakenings) == 2
        for awakening in night.awakenings:
            assert awakening.minutes >= 3
            assert night.sleep_onset < awakening.start and awakening.end < night.final_wake
            assert (
                truth.minute_state[minute_slice(truth.start, awakening)] == MinuteState.AWAKE_IN_BED
            ).all()
        sol = night.sleep_onset_latency_minutes
        assert sol is not None and (truth.minute_state[bed][:sol] == MinuteState.AWAKE_IN_BED).all()


def test_planted_efficiency_centres_on_the_configured_value() -> None:
    config = SyntheticConfig(days=30, sleep=SleepPattern(efficiency=0.80, efficiency_sd=0.02))

    nights = generate(config, seed=9).truth.nights

    assert np.mean([n.sleep_efficiency for n in nights]) == pytest.approx(80, abs=1.5)


def test_missing_stretches_are_nan_and_non_wear_stretches_are_zeros_found_by_choi() -> None:
    config = SyntheticConfig(
        days=4,
        missing=(Stretch(day=1, start="09:30", minutes=45),),
        non_wear=(Stretch(day=2, start="12:00", minutes=120),),
    )
    generated = generate(config, seed=3)
    truth = generated.truth
    counts = to_minutes(generated.recording).counts

    (missing,), (non_wear,) = truth.missing, truth.non_wear
    assert missing.start == pd.Timestamp("2026-01-06 09:30", tz=ZURICH) and missing.minutes == 45
    np.testing.assert_array_equal(np.flatnonzero(np.isnan(counts)), np.arange(1440 + 570, 1440 + 615))
    assert np.isnan(generated.recording.counts()).sum() == 45 * 2
    assert (counts[minute_slice(truth.start, non_wear)] == 0).all()
    np.testing.assert_array_equal(
        np.flatnonzero(detect_non_wear(counts)), np.arange(2 * 1440 + 720, 2 * 1440 + 840)
    )


def test_sleep_alone_never_looks_like_non_wear() -> None:
    generated = generate(SyntheticConfig(days=30), seed=4)

    assert not detect_non_wear(to_minutes(generated.recording).counts).any()


def test_anomalies_are_planted_where_the_truth_says() -> None:
    config = SyntheticConfig(
        days=5,
        anomalies=(
            Anomaly("sleepless_night", day=1),
            Anomaly("low_activity_day", day=3),
            Anomaly("unusual_movement", day=2, start="14:30", minutes=30),
        ),
    )
    generated = generate(config, seed=6)
    truth = generated.truth
    counts = to_minutes(generated.recording).counts
    kinds = {a.kind: a.interval for a in truth.anomalies}

    sleepless = next(n for n in truth.nights if n.night_of == dt.date(2026, 1, 6))
    assert sleepless.sleepless and sleepless.total_sleep_minutes == 0 and sleepless.sleep_onset is None
    assert kinds["sleepless_night"] == sleepless.in_bed
    assert not truth.asleep[minute_slice(truth.start, sleepless.in_bed)].any()
    movement = counts[minute_slice(truth.start, kinds["unusual_movement"])]
    assert kinds["unusual_movement"].start == pd.Timestamp("2026-01-07 14:30", tz=ZURICH)
    assert movement.mean() > 2_000
    up = truth.minute_state == MinuteState.AWAKE_OUT_OF_BED
    low_day = np.zeros(counts.size, dtype=bool)
    low_day[minute_slice(truth.start, kinds["low_activity_day"])] = True
    normal_day = np.zeros(counts.size, dtype=bool)
    normal_day[4 * 1440 :] = True
    assert counts[low_day & up].mean() < 0.3 * counts[normal_day & up].mean()


@pytest.mark.parametrize(
    ("start_date", "last_local", "night_of", "hours_lost"),
    [
        (dt.date(2026, 3, 23), "2026-03-30 00:59:30", dt.date(2026, 3, 28), 1),
        (dt.date(2026, 10, 19), "2026-10-25 22:59:30", dt.date(2026, 10, 24), -1),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_a_dst_week_is_10080_minutes_and_its_dst_night_is_an_hour_shorter_or_longer(
    start_date: dt.date, last_local: str, night_of: dt.date, hours_lost: int
) -> None:
    generated: SyntheticRecording = generate(SyntheticConfig(start_date=start_date, days=7), seed=1)

    assert generated.recording.n_epochs == MINUTES_PER_WEEK * 2
    assert generated.recording.activity.index[-1] == pd.Timestamp(last_local, tz=ZURICH)
    (week,) = sliding_weeks(to_minutes(generated.recording))
    assert week.values.shape == (MINUTES_PER_WEEK,)
    night = next(n for n in generated.truth.nights if n.night_of == night_of)
    wall = night.in_bed.end.tz_localize(None) - night.in_bed.start.tz_localize(None)
    assert night.time_in_bed_minutes == wall // pd.Timedelta(minutes=1) - 60 * hours_lost


@pytest.mark.parametrize(
    "config",
    [
        SyntheticConfig(epoch_seconds=7),
        SyntheticConfig(days=0),
        SyntheticConfig(timezone="Mars/Olympus_Mons"),
        SyntheticConfig(sleep=SleepPattern(efficiency=1.2)),
        SyntheticConfig(sleep=SleepPattern(bedtime="25:00")),
        SyntheticConfig(sleep=SleepPattern(bedtime="06:00", waketime="06:30")),
        SyntheticConfig(anomalies=(Anomaly("sleepless_night", day=30),)),
    ],
    ids=["epoch", "days", "zone", "efficiency", "clock", "time-in-bed", "anomaly-day"],
)
def test_invalid_configs_are_rejected(config: SyntheticConfig) -> None:
    with pytest.raises(ValidationError):
        generate(config, seed=0)
