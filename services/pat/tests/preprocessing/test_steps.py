"""Irregular step samples are spread uniformly over their intervals into steps per minute."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.domain.preprocessing import steps_to_minutes


def stamps(*values: str, tz: str | None = "UTC") -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(list(values))
    return index.tz_localize(tz) if tz else index


def test_a_sample_is_spread_in_proportion_to_its_overlap_with_each_minute() -> None:
    # 90 steps from 00:00:30 to 00:02:00: 30 s in the first minute, 60 s in the second.
    minutes = steps_to_minutes(stamps("2026-01-05 00:00:30"), stamps("2026-01-05 00:02:00"), [90])

    np.testing.assert_allclose(minutes.counts, [30.0, 60.0])
    assert minutes.start == pd.Timestamp("2026-01-05 00:00", tz="UTC")


def test_overlapping_and_instant_samples_add_up_and_totals_are_kept() -> None:
    start = stamps("2026-01-05 00:00:00", "2026-01-05 00:00:00", "2026-01-05 00:03:10")
    end = stamps("2026-01-05 00:02:00", "2026-01-05 00:01:00", "2026-01-05 00:03:10")

    minutes = steps_to_minutes(start, end, [120, 10, 7])

    np.testing.assert_allclose(minutes.counts, [70.0, 60.0, 0.0, 7.0])


def test_minutes_without_samples_hold_zero_steps() -> None:
    start = stamps("2026-01-05 00:00:00", "2026-01-05 00:05:00")
    end = stamps("2026-01-05 00:01:00", "2026-01-05 00:06:00")

    minutes = steps_to_minutes(start, end, [12, 30])

    np.testing.assert_allclose(minutes.counts, [12, 0, 0, 0, 0, 30])
    assert not np.isnan(minutes.counts).any()


def test_random_samples_conserve_the_total() -> None:
    rng = np.random.default_rng(4)
    base = pd.Timestamp("2026-01-05", tz="UTC")
    offsets = np.sort(rng.integers(0, 86_400, 500))
    durations = rng.integers(0, 900, 500)
    start = pd.DatetimeIndex(base + pd.to_timedelta(offsets, unit="s"))
    end = pd.DatetimeIndex(start + pd.to_timedelta(durations, unit="s"))
    steps = rng.integers(0, 2_000, 500)

    minutes = steps_to_minutes(start, end, steps)

    assert minutes.counts.sum() == pytest.approx(steps.sum(), rel=1e-12)


def test_local_labels_follow_the_requested_zone() -> None:
    minutes = steps_to_minutes(
        stamps("2026-07-01 12:00"), stamps("2026-07-01 12:01"), [5], timezone="Europe/Zurich"
    )

    assert minutes.local_minute_of_day[0] == 14 * 60
    assert minutes.timezone == "Europe/Zurich"


def test_naive_sample_times_are_rejected() -> None:
    with pytest.raises(ValidationError):
        steps_to_minutes(stamps("2026-01-05 00:00", tz=None), stamps("2026-01-05 00:01", tz=None), [5])


def test_a_sample_ending_before_it_starts_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        steps_to_minutes(stamps("2026-01-05 00:01"), stamps("2026-01-05 00:00"), [5])
    assert caught.value.field == "end"


@pytest.mark.parametrize(
    ("n_stamps", "steps"),
    [(0, []), (1, [1, 2]), (1, [-1]), (1, [np.nan]), (1, [np.inf])],
    ids=["empty", "mismatched", "negative", "nan", "infinite"],
)
def test_empty_mismatched_or_invalid_steps_are_rejected(n_stamps: int, steps: list[float]) -> None:
    times = pd.DatetimeIndex([pd.Timestamp("2026-01-05", tz="UTC")] * n_stamps)
    with pytest.raises(ValidationError):
        steps_to_minutes(times, times, steps)
