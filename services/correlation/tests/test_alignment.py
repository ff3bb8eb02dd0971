"""Alignment onto the patient-local day grid: DST days, coverage, gaps, lag overlap, validation."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from novamind.core.errors import ValidationError
from novamind.correlation.domain.alignment import (
    AlignedDays,
    DailyValue,
    NamedDailySeries,
    aggregate_daily,
    aggregate_hourly,
    align_days,
    lagged_overlap,
    lagged_pairs,
    overlap_report,
)

BERLIN = "Europe/Berlin"
UTC = dt.UTC


def hourly_utc(start: dt.datetime, hours: int, minute: int = 30) -> list[dt.datetime]:
    return [start + dt.timedelta(hours=h, minutes=minute) for h in range(hours)]


def series(name: str, *entries: tuple[str, float | None]) -> NamedDailySeries:
    return NamedDailySeries(name, [DailyValue(d, v) for d, v in entries])


# --- Samples to local days and hours -------------------------------------------------------------


def test_spring_forward_day_has_23_hourly_samples() -> None:
    # Local 2026-03-28 00:00 CET = 2026-03-27T23:00Z; three local days need 24 + 23 + 24 hours.
    times = hourly_utc(dt.datetime(2026, 3, 27, 23, tzinfo=UTC), 24 + 23 + 24)
    daily = aggregate_daily(times, [1.0] * len(times), BERLIN, aggregation="sum")
    assert daily.dates == (dt.date(2026, 3, 28), dt.date(2026, 3, 29), dt.date(2026, 3, 30))
    assert daily.values.tolist() == [24.0, 23.0, 24.0]
    assert daily.hours_in_day.tolist() == [24.0, 23.0, 24.0]
    assert daily.covered_hours.tolist() == [24, 23, 24]


def test_fall_back_day_has_25_hourly_samples() -> None:
    # Local 2026-10-24 00:00 CEST = 2026-10-23T22:00Z.
    times = hourly_utc(dt.datetime(2026, 10, 23, 22, tzinfo=UTC), 24 + 25 + 24)
    values = np.arange(len(times), dtype=np.float64)
    daily = aggregate_daily(times, values, BERLIN, aggregation="sum")
    assert daily.dates[1] == dt.date(2026, 10, 25)
    assert daily.n_samples.tolist() == [24, 25, 24]
    assert daily.hours_in_day.tolist() == [24.0, 25.0, 24.0]
    assert daily.values.tolist() == [sum(range(24)), sum(range(24, 49)), sum(range(49, 73))]
    last = aggregate_daily(times, values, BERLIN, aggregation="last")
    assert last.values.tolist() == [23.0, 48.0, 72.0]


def test_sample_at_local_midnight_belongs_to_the_new_day() -> None:
    # 2026-10-25T22:59Z is 23:59 CET on the 25th; 23:00Z is midnight of the 26th.
    times = [dt.datetime(2026, 10, 25, 22, 59, tzinfo=UTC), dt.datetime(2026, 10, 25, 23, 0, tzinfo=UTC)]
    daily = aggregate_daily(times, [1.0, 5.0], BERLIN, aggregation="max")
    assert daily.start == dt.date(2026, 10, 25)
    assert daily.values.tolist() == [1.0, 5.0]


def test_hourly_buckets_keep_the_repeated_fall_back_hour_apart() -> None:
    # 00:10Z = 02:10 CEST (first 02:00 hour), 01:10Z = 02:10 CET (second 02:00 hour).
    times = [
        dt.datetime(2026, 10, 25, 0, 10, tzinfo=UTC),
        dt.datetime(2026, 10, 25, 0, 50, tzinfo=UTC),
        dt.datetime(2026, 10, 25, 1, 10, tzinfo=UTC),
    ]
    hourly = aggregate_hourly(times, [2.0, 4.0, 10.0], BERLIN, aggregation="mean")
    assert hourly.n_hours == 2
    assert hourly.values.tolist() == [3.0, 10.0]
    starts = hourly.local_starts
    assert [(s.hour, s.minute, s.fold) for s in starts] == [(2, 0, 0), (2, 0, 1)]
    assert hourly.utc_offset_s.tolist() == [7200, 3600]
    assert [dt.datetime.fromtimestamp(s, UTC).hour for s in hourly.utc_start_s.tolist()] == [0, 1]


def test_hourly_grid_is_dense_and_skips_the_spring_forward_hour() -> None:
    # 00:30Z = 01:30 CET and 01:30Z = 03:30 CEST: consecutive local hours, no 02:00 bucket.
    times = [dt.datetime(2026, 3, 29, 0, 30, tzinfo=UTC), dt.datetime(2026, 3, 29, 3, 30, tzinfo=UTC)]
    hourly = aggregate_hourly(times, [1.0, 2.0], BERLIN)
    assert [s.hour for s in hourly.local_starts] == [1, 3, 4, 5]
    assert hourly.n_samples.tolist() == [1, 0, 0, 1]
    assert np.isnan(hourly.values[1:3]).all()


def test_hourly_keys_follow_local_hours_in_a_half_hour_zone() -> None:
    # Asia/Kolkata is UTC+05:30: local hours start at :30 UTC.
    times = [dt.datetime(2026, 1, 1, 0, 20, tzinfo=UTC), dt.datetime(2026, 1, 1, 0, 40, tzinfo=UTC)]
    hourly = aggregate_hourly(times, [1.0, 2.0], "Asia/Kolkata")
    assert [(s.hour, s.minute) for s in hourly.local_starts] == [(5, 0), (6, 0)]


def test_day_below_coverage_is_missing_not_zero() -> None:
    day1 = hourly_utc(dt.datetime(2026, 5, 31, 22, tzinfo=UTC), 20)  # 20 hours of 2026-06-01
    day2 = hourly_utc(dt.datetime(2026, 6, 1, 22, tzinfo=UTC), 3)  # 3 hours of 2026-06-02
    times = day1 + day2
    daily = aggregate_daily(times, [1.0] * len(times), BERLIN, aggregation="sum", min_covered_hours=16)
    assert daily.values[0] == 20.0
    assert math.isnan(daily.values[1])
    assert daily.covered_hours.tolist() == [20, 3]
    by_count = aggregate_daily(times, [1.0] * len(times), BERLIN, aggregation="sum", min_samples=4)
    assert by_count.values[0] == 20.0 and math.isnan(by_count.values[1])


def test_covered_hours_count_distinct_hours_not_samples() -> None:
    start = dt.datetime(2026, 6, 1, 8, tzinfo=UTC)
    times = [start + dt.timedelta(minutes=m) for m in range(120)]  # 120 minute samples in 2 hours
    daily = aggregate_daily(times, [1.0] * 120, BERLIN, min_covered_hours=3)
    assert daily.n_samples.tolist() == [120]
    assert daily.covered_hours.tolist() == [2]
    assert math.isnan(daily.values[0])


def test_daily_window_gaps_and_nan_readings() -> None:
    times = [dt.datetime(2026, 6, 1, 12, tzinfo=UTC), dt.datetime(2026, 6, 3, 12, tzinfo=UTC)]
    daily = aggregate_daily(
        [*times, dt.datetime(2026, 6, 3, 13, tzinfo=UTC)],
        [60.0, 70.0, float("nan")],
        BERLIN,
        aggregation="min",
        start=dt.date(2026, 5, 31),
        end=dt.date(2026, 6, 4),
    )
    assert daily.n_days == 5
    np.testing.assert_array_equal(daily.values, [np.nan, 60.0, np.nan, 70.0, np.nan])
    assert daily.n_samples.tolist() == [0, 1, 0, 1, 0]
    assert [v.value for v in daily.to_daily_values()] == [None, 60.0, None, 70.0, None]


def test_unsorted_samples_and_other_offsets_give_the_same_days() -> None:
    berlin = dt.timezone(dt.timedelta(hours=2))
    times = [dt.datetime(2026, 6, 2, 0, 30, tzinfo=berlin), dt.datetime(2026, 6, 1, 21, 0, tzinfo=UTC)]
    # Both are on 2026-06-02 local (23:00Z is 01:00 CEST); the later instant wins for "last".
    daily = aggregate_daily(times, [1.0, 2.0], BERLIN, aggregation="last")
    assert daily.dates == (dt.date(2026, 6, 1), dt.date(2026, 6, 2))
    assert daily.values.tolist() == [2.0, 1.0]


@pytest.mark.parametrize(
    "zone", ["Australia/Lord_Howe", "America/Sao_Paulo", "Pacific/Apia", "Asia/Kathmandu"]
)
def test_days_and_hours_match_the_zone_database(zone: str) -> None:
    # Half-hour DST (Lord Howe), midnight transitions (Sao Paulo), a skipped day (Apia 2011-12-30).
    rng = np.random.default_rng(7)
    seconds = rng.integers(0, 10 * 365 * 86_400, size=300)
    times = [dt.datetime(2010, 1, 1, tzinfo=UTC) + dt.timedelta(seconds=int(s)) for s in seconds]
    tz = ZoneInfo(zone)
    expected: dict[dt.date, int] = {}
    for time in times:
        day = time.astimezone(tz).date()
        expected[day] = expected.get(day, 0) + 1
    daily = aggregate_daily(times, [1.0] * len(times), zone, aggregation="sum")
    got = {day: n for day, n in zip(daily.dates, daily.n_samples.tolist(), strict=True) if n}
    assert got == expected
    for day, hours in list(zip(daily.dates, daily.hours_in_day.tolist(), strict=True))[::97]:
        next_day = day + dt.timedelta(days=1)
        begin = dt.datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
        finish = dt.datetime(next_day.year, next_day.month, next_day.day, tzinfo=tz).astimezone(UTC)
        assert hours == (finish - begin).total_seconds() / 3600
    if zone == "Pacific/Apia":  # 2011-12-30 never happened there: a day of zero hours
        assert daily.hours_in_day[(dt.date(2011, 12, 30) - daily.start).days] == 0.0
    hourly = aggregate_hourly(times, [1.0] * len(times), zone)
    starts = hourly.local_starts
    for time in times:
        i = int(np.searchsorted(hourly.utc_start_s, int(time.timestamp()), side="right")) - 1
        local = time.astimezone(tz)
        assert (starts[i].date(), starts[i].hour, starts[i].minute) == (local.date(), local.hour, 0)


def test_datetime64_times_match_aware_datetimes() -> None:
    times = hourly_utc(dt.datetime(2026, 10, 23, 22, tzinfo=UTC), 24 + 25 + 24)
    as_numpy = np.array([t.replace(tzinfo=None) for t in times], dtype="datetime64[us]")
    values = np.arange(len(times), dtype=np.float64)
    a = aggregate_daily(times, values, BERLIN, aggregation="sum")
    b = aggregate_daily(as_numpy, values, BERLIN, aggregation="sum")
    np.testing.assert_array_equal(a.values, b.values)
    with pytest.raises(ValidationError) as nat:
        aggregate_daily(np.array(["2026-01-01", "NaT"], dtype="datetime64[s]"), [1.0, 2.0], BERLIN)
    assert nat.value.field == "samples[1].time"


# --- Daily series on a common grid ---------------------------------------------------------------


def test_align_days_builds_one_dense_grid_with_gaps() -> None:
    aligned = align_days(
        {
            "biometrics": [
                series("steps", ("2026-01-02", 100.0), ("2026-01-04", None), ("2026-01-05", 50.0))
            ],
            "symptoms": [series("mood", ("2026-01-01", 3.0), ("2026-01-03", 4.0))],
        }
    )
    assert aligned.start == dt.date(2026, 1, 1) and aligned.end == dt.date(2026, 1, 5)
    assert aligned.names == ("steps", "mood")
    np.testing.assert_array_equal(aligned.column("steps"), [np.nan, 100.0, np.nan, np.nan, 50.0])
    np.testing.assert_array_equal(aligned.column("mood"), [3.0, np.nan, 4.0, np.nan, np.nan])


def test_align_days_with_an_explicit_window_drops_outside_entries() -> None:
    aligned = align_days(
        {"symptoms": [series("mood", ("2026-01-01", 3.0), ("2026-01-03", 4.0))]},
        start=dt.date(2026, 1, 2),
        end=dt.date(2026, 1, 4),
    )
    np.testing.assert_array_equal(aligned.column("mood"), [np.nan, 4.0, np.nan])


def test_unknown_or_empty_series_name_is_an_error() -> None:
    aligned = align_days({"symptoms": [series("mood", ("2026-01-01", 3.0))]})
    with pytest.raises(ValidationError) as unknown:
        aligned.column("sleep", field="biometrics[0].name")
    assert unknown.value.field == "biometrics[0].name"
    with pytest.raises(ValidationError):
        aligned.column("")


@pytest.mark.parametrize(
    ("groups", "message", "field"),
    [
        (
            {
                "biometrics": [
                    series("a", ("2026-01-01", 1.0)),
                    series("b", ("2026-01-02", 1.0), ("2026-01-01", 1.0)),
                ]
            },
            "ascending",
            "biometrics[1].values[1].date",
        ),
        (
            {"symptoms": [series("a", ("2026-01-01", 1.0), ("2026-01-01", 2.0))]},
            "duplicates",
            "symptoms[0].values[1].date",
        ),
        (
            {"biometrics": [series("a", ("2026-01-01", 1.0), ("2026-01-02", float("inf")))]},
            "finite",
            "biometrics[0].values[1].value",
        ),
        (
            {"biometrics": [series("a", ("2026-01-01", float("nan")))]},
            "finite",
            "biometrics[0].values[0].value",
        ),
        (
            {"biometrics": [series("a", ("2026-01-01", 1.0), ("2026-02-30", 1.0))]},
            "calendar date",
            "biometrics[0].values[1].date",
        ),
        (
            {"biometrics": [series("a", ("20260101", 1.0))]},
            "calendar date",
            "biometrics[0].values[0].date",
        ),
        (
            {
                "biometrics": [series("a", ("2026-01-01", 1.0))],
                "symptoms": [series("a", ("2026-01-01", 1.0))],
            },
            "twice",
            "symptoms[0].name",
        ),
        ({"biometrics": [series("", ("2026-01-01", 1.0))]}, "empty", "biometrics[0].name"),
        ({"biometrics": [series("a")]}, "no dated entries", "biometrics"),
    ],
)
def test_align_days_validation_names_the_field(
    groups: dict[str, list[NamedDailySeries]], message: str, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        align_days(groups)
    assert message in caught.value.message
    assert caught.value.field == field


def test_window_validation() -> None:
    groups = {"symptoms": [series("mood", ("2026-01-01", 3.0))]}
    with pytest.raises(ValidationError) as reversed_window:
        align_days(groups, start=dt.date(2026, 1, 5), end=dt.date(2026, 1, 1))
    assert reversed_window.value.field == "window"
    with pytest.raises(ValidationError) as too_long:
        align_days(groups, start=dt.date(2000, 1, 1), end=dt.date(2026, 1, 1), max_days=365)
    assert too_long.value.field == "window"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "Europe", "../etc/passwd"])
def test_unknown_time_zone_is_an_error(zone: str) -> None:
    with pytest.raises(ValidationError) as caught:
        aggregate_daily([dt.datetime(2026, 1, 1, tzinfo=UTC)], [1.0], zone)
    assert caught.value.field == "time_zone"


def test_sample_validation_names_the_field() -> None:
    good = dt.datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError) as naive:
        aggregate_daily([good, dt.datetime(2026, 1, 1)], [1.0, 2.0], BERLIN, field="heart_rate")
    assert naive.value.field == "heart_rate[1].time"
    with pytest.raises(ValidationError) as infinite:
        aggregate_hourly([good, good], [1.0, float("-inf")], BERLIN)
    assert infinite.value.field == "samples[1].value"
    with pytest.raises(ValidationError) as lengths:
        aggregate_daily([good], [1.0, 2.0], BERLIN)
    assert lengths.value.field == "samples"
    with pytest.raises(ValidationError) as aggregation:
        aggregate_daily([good], [1.0], BERLIN, aggregation="median")  # type: ignore[arg-type]
    assert aggregation.value.field == "aggregation"
    with pytest.raises(ValidationError) as empty:
        aggregate_daily([], [], BERLIN)
    assert empty.value.field == "samples"


# --- Overlap -------------------------------------------------------------------------------------


def test_lagged_overlap_matches_a_hand_count() -> None:
    nan = np.nan
    x = np.array([1.0, 2.0, nan, 4.0, 5.0, nan, 7.0])
    y = np.array([nan, 1.0, 1.0, nan, 1.0, 1.0, 1.0])
    # lag 0: days 1, 4, 6 -> 3.
    # lag 1 (x[t], y[t+1]): t=0, 1, 3, 4 both present; t=2 and t=5 have no x -> 4.
    # lag 2 (x[t], y[t+2]): t=0, 3, 4 both present; t=1 meets y[3] missing, t=2 no x -> 3.
    # lag 3 (x[t], y[t+3]): t=1 (y4), t=3 (y6); t=0 meets y[3] missing -> 2.
    assert [lagged_overlap(x, y, lag) for lag in range(4)] == [3, 4, 3, 2]
    assert lagged_overlap(x, y, 7) == 0
    # lag -1 (x[t], y[t-1]): t=3 (y2) and t=6 (y5); t=1, 4 meet a missing y, t=2, 5 have no x -> 2.
    assert lagged_overlap(x, y, -1) == 2


def test_lagged_pairs_and_overlap_report() -> None:
    values = np.array(
        [
            [1.0, np.nan, 10.0],
            [2.0, 5.0, 20.0],
            [3.0, 6.0, np.nan],
            [np.nan, 7.0, 40.0],
        ]
    )
    aligned = AlignedDays(start=dt.date(2026, 1, 1), names=("hrv", "sleep", "mood"), values=values)
    x, y = lagged_pairs(aligned, "hrv", "mood", 1)
    # hrv on day t against mood on day t + 1: t=0 (1, 20) and t=2 (3, 40); t=1 meets a missing mood.
    assert x.tolist() == [1.0, 3.0] and y.tolist() == [20.0, 40.0]
    report = overlap_report(aligned, ["hrv", "sleep"], ["mood"], range(3), min_overlap_days=2)
    counts = {(p.biometric, p.lag): p.overlap_days for p in report.pairs}
    assert counts == {
        ("hrv", 0): 2,
        ("hrv", 1): 2,
        ("hrv", 2): 1,
        ("sleep", 0): 2,
        ("sleep", 1): 1,
        ("sleep", 2): 1,
    }
    assert [(p.biometric, p.lag) for p in report.require_any()] == [("hrv", 0), ("hrv", 1), ("sleep", 0)]
    strict = overlap_report(aligned, ["hrv", "sleep"], ["mood"], range(3), min_overlap_days=3)
    with pytest.raises(ValidationError) as caught:
        strict.require_any()
    assert caught.value.message.startswith("too little overlap")
    assert "best: 2 days" in caught.value.message
    assert caught.value.field == "min_overlap_days"
    with pytest.raises(ValidationError) as unknown:
        overlap_report(aligned, ["hrv"], ["phq9"], [0], min_overlap_days=2)
    assert unknown.value.field == "symptoms[0].name"
