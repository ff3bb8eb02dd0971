"""Epochs of 1-60 s become counts per minute, exactly, with a documented missing-data rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.domain.preprocessing import to_minutes
from novamind.pat.domain.recording import DeviceInfo, Recording


def recording(
    values: np.ndarray,
    epoch_seconds: float,
    start: str = "2026-01-05 00:00",
    tz: str | None = "Europe/Zurich",
    timezone: str | None = None,
    index: pd.DatetimeIndex | None = None,
) -> Recording:
    if index is None:
        index = pd.date_range(start, periods=values.size, freq=pd.Timedelta(seconds=epoch_seconds), tz=tz)
    return Recording(
        activity=pd.Series(values, index=index, dtype=np.float64),
        epoch_seconds=epoch_seconds,
        device=DeviceInfo(format="test"),
        timezone=timezone,
    )


@pytest.mark.parametrize("epoch_seconds", [1, 2, 5, 15, 20, 30, 60])
def test_sub_minute_epochs_sum_exactly_to_minutes(epoch_seconds: int) -> None:
    per_minute = 60 // epoch_seconds
    rng = np.random.default_rng(epoch_seconds)
    values = rng.integers(0, 500, size=per_minute * 180).astype(np.float64)

    minutes = to_minutes(recording(values, epoch_seconds))

    assert minutes.n_minutes == 180
    np.testing.assert_array_equal(minutes.counts, values.reshape(-1, per_minute).sum(axis=1))
    assert minutes.start == pd.Timestamp("2026-01-05 00:00", tz="Europe/Zurich")
    np.testing.assert_array_equal(minutes.local_minute_of_day, np.arange(180))


def test_thirty_second_epochs_hand_example() -> None:
    minutes = to_minutes(recording(np.array([1.0, 2.0, 0.0, 0.0, 7.0, 3.0]), 30))

    np.testing.assert_array_equal(minutes.counts, [3.0, 0.0, 10.0])


def test_a_minute_with_any_missing_epoch_is_missing() -> None:
    values = np.arange(16, dtype=np.float64)  # 4 minutes of 15-s epochs
    values[5] = np.nan

    minutes = to_minutes(recording(values, 15))

    np.testing.assert_array_equal(np.isnan(minutes.counts), [False, True, False, False])
    assert minutes.counts[2] == values[8:12].sum()


def test_partly_covered_edge_minutes_are_missing() -> None:
    # Starts at 00:00:30 and ends at 00:02:30: the first and last minutes are half covered.
    minutes = to_minutes(recording(np.ones(4), 30, start="2026-01-05 00:00:30"))

    assert minutes.n_minutes == 3
    np.testing.assert_array_equal(minutes.counts, [np.nan, 2.0, np.nan])
    assert minutes.start == pd.Timestamp("2026-01-05 00:00", tz="Europe/Zurich")


def test_naive_index_without_zone_stays_on_the_device_clock() -> None:
    minutes = to_minutes(recording(np.ones(4), 30, start="2026-01-05 23:59", tz=None))

    assert minutes.start == pd.Timestamp("2026-01-05 23:59")
    assert minutes.timezone is None
    np.testing.assert_array_equal(minutes.local_minute_of_day, [1439, 0])
    assert minutes.local_day[1] - minutes.local_day[0] == 1


def test_zone_argument_relabels_an_aware_index_in_local_time() -> None:
    utc = pd.date_range("2026-01-05 00:00", periods=2, freq="60s", tz="UTC")

    minutes = to_minutes(recording(np.ones(2), 60, index=utc), timezone="America/New_York")

    assert minutes.timezone == "America/New_York"
    assert minutes.start == pd.Timestamp("2026-01-04 19:00", tz="America/New_York")
    np.testing.assert_array_equal(minutes.local_minute_of_day, [19 * 60, 19 * 60 + 1])


@pytest.mark.parametrize("epoch_seconds", [0, 7, 45, 90, 0.5, 30.5, float("nan")])
def test_epochs_that_do_not_divide_a_minute_are_rejected(epoch_seconds: float) -> None:
    index = pd.date_range("2026-01-05", periods=4, freq="30s", tz="UTC")
    with pytest.raises(ValidationError) as caught:
        to_minutes(recording(np.ones(4), epoch_seconds, index=index))
    assert caught.value.field == "epoch_seconds"


def test_empty_recording_is_rejected() -> None:
    index = pd.DatetimeIndex([], tz="UTC")
    with pytest.raises(ValidationError):
        to_minutes(recording(np.array([]), 30, index=index))


@pytest.mark.parametrize(
    "stamps",
    [
        ["2026-01-05 00:01:00", "2026-01-05 00:00:30", "2026-01-05 00:00:00"],  # unsorted
        ["2026-01-05 00:00:00", "2026-01-05 00:00:00", "2026-01-05 00:00:30"],  # duplicate
        ["2026-01-05 00:00:00", "2026-01-05 00:00:30", "2026-01-05 00:01:30"],  # irregular
    ],
)
def test_unsorted_duplicate_or_irregular_index_is_rejected(stamps: list[str]) -> None:
    index = pd.DatetimeIndex(stamps).tz_localize("UTC")
    with pytest.raises(ValidationError) as caught:
        to_minutes(recording(np.ones(3), 30, index=index))
    assert caught.value.field == "activity.index"


@pytest.mark.parametrize("bad", [-1.0, np.inf])
def test_negative_or_infinite_counts_are_rejected(bad: float) -> None:
    with pytest.raises(ValidationError):
        to_minutes(recording(np.array([1.0, bad]), 30))


def test_unknown_time_zone_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        to_minutes(recording(np.ones(2), 30), timezone="Europe/Atlantis")
    assert caught.value.field == "timezone"
