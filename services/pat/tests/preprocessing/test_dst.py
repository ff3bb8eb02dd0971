"""Across daylight saving changes a week is 10,080 elapsed minutes with true local clock labels.

The rule: values are consecutive elapsed minutes. Spring forward skips the labels of the missing
hour (that local day has 1,380 minutes); fall back repeats the labels of the repeated hour, first
at summer then at winter offset (that local day has 1,500 minutes). Aligned weeks start at local
midnight, so a spring week ends at 00:59 on the eighth day and an autumn week at 22:59 on the
seventh.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from novamind.pat.domain.preprocessing import MINUTES_PER_WEEK, sliding_weeks, to_minutes
from novamind.pat.domain.recording import DeviceInfo, Recording

ZURICH = "Europe/Zurich"


def zurich_recording(start: str, days: int, epoch_seconds: int = 30) -> Recording:
    index = pd.date_range(
        start, periods=days * 2_880 * 30 // epoch_seconds, freq=f"{epoch_seconds}s", tz=ZURICH
    )
    values = np.random.default_rng(0).integers(0, 300, index.size).astype(np.float64)
    return Recording(
        pd.Series(values, index=index), float(epoch_seconds), DeviceInfo("test"), timezone=ZURICH
    )


def oracle_minute_of_day(start: pd.Timestamp, n: int) -> np.ndarray:
    index = pd.date_range(start, periods=n, freq="min")  # tz-aware: steps in elapsed time
    return np.asarray(index.hour * 60 + index.minute)


def local_day_lengths(days: np.ndarray) -> dict[dt.date, int]:
    values, counts = np.unique(days, return_counts=True)
    epoch = dt.date(1970, 1, 1)
    return {epoch + dt.timedelta(days=int(v)): int(c) for v, c in zip(values, counts, strict=True)}


def test_spring_forward_week_has_10080_minutes_and_skips_the_missing_hour() -> None:
    minutes = to_minutes(zurich_recording("2026-03-23", days=7))  # Mon; DST starts Sun 29 Mar

    weeks = list(sliding_weeks(minutes))

    assert len(weeks) == 1
    week = weeks[0]
    assert week.values.shape == (MINUTES_PER_WEEK,)
    assert week.start == pd.Timestamp("2026-03-23 00:00", tz=ZURICH)
    assert week.index[-1] == pd.Timestamp("2026-03-30 00:59", tz=ZURICH)
    np.testing.assert_array_equal(
        week.local_minute_of_day, oracle_minute_of_day(week.start, MINUTES_PER_WEEK)
    )
    labels = np.bincount(week.local_minute_of_day, minlength=1440)
    assert set(labels[120:180]) == {6}  # 02:00-02:59 never happens on 29 March
    assert set(labels[0:60]) == {8}  # the week runs into Monday 00:59
    assert set(labels[60:120]) == set(labels[180:]) == {7}
    jumps = np.flatnonzero(np.diff(week.local_minute_of_day.astype(int)) == 61)
    assert week.index[jumps[0] + 1] == pd.Timestamp("2026-03-29 03:00", tz=ZURICH)


def test_fall_back_week_has_10080_minutes_and_repeats_the_extra_hour() -> None:
    minutes = to_minutes(zurich_recording("2026-10-19", days=7))  # Mon; DST ends Sun 25 Oct

    weeks = list(sliding_weeks(minutes))

    assert len(weeks) == 1
    week = weeks[0]
    assert week.values.shape == (MINUTES_PER_WEEK,)
    assert week.index[-1] == pd.Timestamp("2026-10-25 22:59", tz=ZURICH)
    np.testing.assert_array_equal(
        week.local_minute_of_day, oracle_minute_of_day(week.start, MINUTES_PER_WEEK)
    )
    labels = np.bincount(week.local_minute_of_day, minlength=1440)
    assert set(labels[120:180]) == {8}  # 02:00-02:59 happens twice on 25 October
    assert set(labels[1380:]) == {6}  # the week ends at 22:59 on Sunday
    # The repeated labels are distinct instants: first at +02:00, then at +01:00.
    repeated = week.index[(week.index.date == dt.date(2026, 10, 25)) & (week.index.hour == 2)]
    assert repeated.size == 120
    offsets = {ts.utcoffset() for ts in repeated[:60]}, {ts.utcoffset() for ts in repeated[60:]}
    assert offsets == ({dt.timedelta(hours=2)}, {dt.timedelta(hours=1)})


def test_dst_days_have_23_and_25_hours_of_minutes() -> None:
    spring = to_minutes(zurich_recording("2026-03-28", days=3))
    autumn = to_minutes(zurich_recording("2026-10-24", days=3))

    assert local_day_lengths(spring.local_day)[dt.date(2026, 3, 29)] == 23 * 60
    assert local_day_lengths(autumn.local_day)[dt.date(2026, 10, 25)] == 25 * 60
    assert local_day_lengths(spring.local_day)[dt.date(2026, 3, 28)] == 24 * 60


def test_weeks_start_at_every_local_midnight_across_a_dst_change() -> None:
    minutes = to_minutes(zurich_recording("2026-03-23", days=14))  # ends 6 April 01:00 local

    starts = [w.start for w in sliding_weeks(minutes)]

    assert starts == [pd.Timestamp(f"2026-03-{d}", tz=ZURICH) for d in range(23, 31)]
    # Alignment follows the clock: 29 -> 30 March is only 1,380 elapsed minutes.
    assert (starts[-1] - starts[-2]) == pd.Timedelta(minutes=1380)


def test_naive_device_clock_is_read_at_the_start_offset_and_converted_to_local_time() -> None:
    # An actigraph keeps the offset it was initialised with (CET): its 03:00 after spring
    # forward is 04:00 on the wall clock.
    index = pd.date_range("2026-03-23", periods=7 * 1440, freq="60s")
    values = np.ones(index.size)
    device = Recording(pd.Series(values, index=index), 60.0, DeviceInfo("test"))

    minutes = to_minutes(device, timezone=ZURICH)

    assert minutes.n_minutes == MINUTES_PER_WEEK
    assert minutes.start == pd.Timestamp("2026-03-23 00:00", tz=ZURICH)
    at = int(np.flatnonzero(index == pd.Timestamp("2026-03-29 03:00"))[0])
    assert minutes.index[at] == pd.Timestamp("2026-03-29 04:00", tz=ZURICH)
    assert minutes.local_minute_of_day[at] == 4 * 60
