"""Sliding weeks: count, stride, alignment, masks, and streaming equal to the whole-recording result."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.domain.preprocessing import (
    MINUTES_PER_WEEK,
    MinuteSeries,
    Week,
    detect_non_wear,
    sliding_weeks,
    stream_minutes,
    stream_weeks,
    to_minutes,
)
from novamind.pat.domain.recording import Recording
from novamind.pat.domain.synthetic import Stretch, SyntheticConfig, generate


def month(
    epoch_seconds: int = 30, *, missing: tuple[Stretch, ...] = (), non_wear: tuple[Stretch, ...] = ()
) -> Recording:
    config = SyntheticConfig(
        start_date=dt.date(2026, 3, 2),
        days=30,
        epoch_seconds=epoch_seconds,
        missing=missing,
        non_wear=non_wear,
    )
    return generate(config, seed=7).recording


def chunks(recording: Recording, size: int) -> Iterator[Recording]:
    for lo in range(0, recording.n_epochs, size):
        yield Recording(
            activity=recording.activity.iloc[lo : lo + size],
            epoch_seconds=recording.epoch_seconds,
            device=recording.device,
            timezone=recording.timezone,
        )


def position(week: Week, minutes: MinuteSeries) -> int:
    return int((week.start - minutes.start) // pd.Timedelta(minutes=1))


def assert_same_weeks(left: list[Week], right: list[Week]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert a.start == b.start
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.local_minute_of_day, b.local_minute_of_day)
        np.testing.assert_array_equal(a.mask_missing, b.mask_missing)
        np.testing.assert_array_equal(a.mask_non_wear, b.mask_non_wear)


def test_a_month_gives_one_week_per_local_midnight_that_fits() -> None:
    minutes = to_minutes(month())  # 30 days from a local midnight (DST starts 29 March)

    weeks = list(sliding_weeks(minutes))

    # Starts on days 0..23: day 23 + 7 days still ends inside the 30 elapsed days.
    assert len(weeks) == 24
    assert all(w.values.shape == (MINUTES_PER_WEEK,) for w in weeks)
    assert all(w.start.hour == 0 and w.start.minute == 0 for w in weeks)
    assert [w.start.date() for w in weeks] == [dt.date(2026, 3, 2) + dt.timedelta(days=d) for d in range(24)]


@pytest.mark.parametrize(("stride", "expected"), [(1440, 24), (2880, 12), (10_080, 4)])
def test_aligned_stride_in_whole_days(stride: int, expected: int) -> None:
    weeks = list(sliding_weeks(to_minutes(month()), stride_minutes=stride))

    assert len(weeks) == expected
    assert weeks[1].start.date() - weeks[0].start.date() == dt.timedelta(days=stride // 1440)


def test_unaligned_stride_counts_elapsed_minutes_from_the_first_minute() -> None:
    minutes = to_minutes(month())

    weeks = list(sliding_weeks(minutes, stride_minutes=720, align_to_local_midnight=False))

    assert len(weeks) == (minutes.n_minutes - MINUTES_PER_WEEK) // 720 + 1
    assert [position(w, minutes) for w in weeks[:3]] == [0, 720, 1440]


def test_an_unaligned_series_starts_its_first_week_at_the_next_local_midnight() -> None:
    recording = month()
    late = Recording(recording.activity.iloc[2 * 60 * 10 :], 30.0, recording.device, timezone="Europe/Zurich")

    weeks = list(sliding_weeks(to_minutes(late)))

    assert weeks[0].start == pd.Timestamp("2026-03-03 00:00", tz="Europe/Zurich")


def test_week_values_are_imputed_where_missing_or_not_worn_and_kept_elsewhere() -> None:
    recording = month(
        missing=(Stretch(day=1, start="10:00", minutes=30),),
        non_wear=(Stretch(day=2, start="13:00", minutes=120),),
    )
    minutes = to_minutes(recording)

    week = next(sliding_weeks(minutes))

    raw = minutes.counts[:MINUTES_PER_WEEK]
    assert week.mask_missing.sum() == 30 and np.isnan(raw[week.mask_missing]).all()
    assert week.mask_non_wear.sum() == 120 and (raw[week.mask_non_wear] == 0).all()
    kept = ~week.mask_imputed
    np.testing.assert_array_equal(week.values[kept], raw[kept])
    assert not np.isnan(week.values).any()
    assert week.values[week.mask_non_wear].mean() > 50  # daytime counts from the other days
    assert week.wear_fraction == pytest.approx(1 - 150 / MINUTES_PER_WEEK)


def test_week_non_wear_equals_the_mask_of_the_whole_recording() -> None:
    # Non-wear runs that cross week boundaries, and zero runs with spikes near them.
    stretches = tuple(Stretch(day=d, start=t, minutes=m) for d, t, m in [
        (0, "22:30", 200), (1, "23:10", 95), (6, "23:00", 150), (7, "00:00", 91), (9, "23:50", 400),
    ])  # fmt: skip
    minutes = to_minutes(month(non_wear=stretches))
    counts = minutes.counts.copy()
    rng = np.random.default_rng(3)
    for start in rng.integers(0, counts.size - 400, 40):
        counts[start : start + rng.integers(60, 300)] = 0
        counts[start + rng.integers(0, 60)] = 3
    minutes = MinuteSeries(counts, minutes.local_minute_of_day, minutes.local_day, minutes.start)
    whole = detect_non_wear(counts)

    for week in sliding_weeks(minutes):
        at = position(week, minutes)
        np.testing.assert_array_equal(week.mask_non_wear, whole[at : at + MINUTES_PER_WEEK])


@pytest.mark.parametrize(("epoch_seconds", "chunk_epochs"), [(30, 777), (15, 5_000), (60, 7), (1, 86_399)])
def test_streaming_chunks_gives_exactly_the_whole_recording_weeks(
    epoch_seconds: int, chunk_epochs: int
) -> None:
    recording = month(
        epoch_seconds,
        missing=(Stretch(day=3, start="11:11", minutes=47),),
        non_wear=(Stretch(day=6, start="23:00", minutes=180),),
    )

    streamed = list(stream_weeks(chunks(recording, chunk_epochs)))
    whole = list(sliding_weeks(to_minutes(recording)))

    assert_same_weeks(streamed, whole)


def test_streamed_minute_blocks_concatenate_to_the_whole_series() -> None:
    recording = month()
    whole = to_minutes(recording)

    blocks = list(stream_minutes(chunks(recording, 1_001)))

    np.testing.assert_array_equal(np.concatenate([b.counts for b in blocks]), whole.counts)
    np.testing.assert_array_equal(np.concatenate([b.local_day for b in blocks]), whole.local_day)
    assert blocks[0].start == whole.start


def test_a_gap_between_chunks_becomes_missing_minutes() -> None:
    recording = month()
    first, second = recording.activity.iloc[:2_000], recording.activity.iloc[2_100:4_000]
    parts = [Recording(p, 30.0, recording.device, timezone="Europe/Zurich") for p in (first, second)]

    counts = np.concatenate([b.counts for b in stream_minutes(parts)])

    assert counts.size == 2_000
    np.testing.assert_array_equal(np.flatnonzero(np.isnan(counts)), np.arange(1_000, 1_050))


def test_overlapping_chunks_are_rejected() -> None:
    recording = month()
    parts = [
        Recording(recording.activity.iloc[a:b], 30.0, recording.device, timezone="Europe/Zurich")
        for a, b in ((0, 100), (90, 200))
    ]
    with pytest.raises(ValidationError):
        list(stream_minutes(parts))


def test_no_chunks_is_rejected() -> None:
    with pytest.raises(ValidationError):
        list(stream_weeks([]))


@pytest.mark.parametrize(("stride", "aligned"), [(0, False), (720, True), (-1440, True)])
def test_invalid_strides_are_rejected(stride: int, aligned: bool) -> None:
    with pytest.raises(ValidationError) as caught:
        list(sliding_weeks(to_minutes(month()), stride_minutes=stride, align_to_local_midnight=aligned))
    assert caught.value.field == "stride_minutes"


def test_non_contiguous_minute_blocks_are_rejected() -> None:
    minutes = to_minutes(month())
    later = MinuteSeries(
        minutes.counts[10:], minutes.local_minute_of_day[10:], minutes.local_day[10:], minutes.index[10]
    )
    with pytest.raises(ValidationError):
        list(sliding_weeks([minutes, later]))
