"""Mixed sampling onto a common patient-local day (or hour) timeline, and the overlap rules.

Three steps, all pure Python and numpy:

1. :func:`aggregate_daily` / :func:`aggregate_hourly` turn instant samples (UTC-aware times and
   values: irregular heart rate or HRV readings, minute-level actigraphy metrics) into one value
   per patient-local calendar day or local clock hour, with a named aggregation and a coverage
   rule. A bucket below the coverage rule is *missing* (NaN), never zero.
2. :func:`align_days` lays several named daily series (dates "YYYY-MM-DD" with optional values,
   as in the API's ``DailySeries``) on one dense day grid, NaN for gaps.
3. :func:`lagged_overlap` and :func:`overlap_report` count, for a biometric on day t and a symptom
   on day t + lag, the days on which both are present, so callers skip pairs that overlap too
   little and fail clearly (``OverlapReport.require_any``) when no pair qualifies.

Time rule (daylight saving time)
--------------------------------
A sample belongs to the local calendar day its instant falls in, in the given IANA zone, with the
zone's offset *at that instant*. A local day is therefore the elapsed time between two local
midnights: 24 h usually, 23 h on a spring-forward day and 25 h on a fall-back day
(``DailyAggregates.hours_in_day`` says which). Coverage is counted in samples and in distinct
covered local hours, so a 23-hour day can have at most 23 covered hours.

Hourly buckets are keyed by the **UTC instant at which the local clock hour starts** (the instant
the local clock showed HH:00 with the offset in force for the sample) and *labelled* with local
time. On a fall-back night the repeated hour (02:00-02:59 in Europe/Berlin) therefore gives two
buckets with the same local label, first at the summer offset (``fold`` 0), then at the winter
offset (``fold`` 1): two different physical hours are never merged. On a spring-forward night the
skipped local hour simply has no bucket. For zones with whole-hour offsets the keys are exactly
the UTC hours; for half- or quarter-hour offsets (Asia/Kolkata, Asia/Kathmandu) they are the local
hours, which start at :30 or :45 UTC. Where an offset change is not a whole hour (Australia/
Lord_Howe, 30 min) the hour around the change is split into two buckets whose labels there are
only approximate; daily aggregation is exact in every zone (tested against the zone database).

Offsets are looked up every six hours and each change is located to the second by bisection: the
tz database has no zone with two offset changes less than six hours apart.

Errors name the offending entry (``samples[4].time``, ``biometrics[2].values[5].date``) by
position, never by value: values are PHI.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from novamind.core.daily import DatedValue as DailyValue
from novamind.core.daily import parse_date as parse_date
from novamind.core.errors import ValidationError

FloatArray = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]

#: Sample instants: timezone-aware datetimes, or a numpy datetime64 array read as UTC.
Times = Sequence[dt.datetime] | npt.NDArray[np.datetime64]

Aggregation = Literal["mean", "sum", "min", "max", "last"]
AGGREGATIONS: Final[tuple[Aggregation, ...]] = ("mean", "sum", "min", "max", "last")

#: Longest day grid built by default (about 100 years): guards memory against absurd date spans.
DEFAULT_MAX_DAYS: Final = 36_600

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()
_ONE_US: Final = dt.timedelta(microseconds=1)
_US_PER_S: Final = 1_000_000
_S_PER_HOUR: Final = 3_600
_US_PER_HOUR: Final = _S_PER_HOUR * _US_PER_S
_US_PER_DAY: Final = 24 * _US_PER_HOUR
_OFFSET_SCAN_S: Final = 6 * _S_PER_HOUR
_HOUR_GRID_STEP_S: Final = 15 * 60


# --- Data types ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NamedDailySeries:
    """A named daily series as sent in a request (``DailySeries`` without its unit)."""

    name: str
    values: Sequence[DailyValue]


@dataclass(frozen=True, eq=False)
class DailyAggregates:
    """Samples aggregated per local calendar day, on consecutive days from ``start``.

    ``values`` (n,) float64: the aggregate, NaN where the day has no samples or misses the
    coverage rule. ``n_samples`` and ``covered_hours`` (n,) int64: samples and distinct local clock
    hours with at least one sample, counted before the coverage rule. ``hours_in_day`` (n,)
    float64: the day's elapsed length (24, or 23 / 25 across daylight saving time).
    """

    start: dt.date
    time_zone: str
    aggregation: Aggregation
    values: FloatArray
    n_samples: Int64Array
    covered_hours: Int64Array
    hours_in_day: FloatArray

    @property
    def n_days(self) -> int:
        return int(self.values.size)

    @property
    def dates(self) -> tuple[dt.date, ...]:
        return tuple(self.start + dt.timedelta(days=i) for i in range(self.n_days))

    def to_daily_values(self) -> list[DailyValue]:
        """The days as :class:`DailyValue` entries (None where missing), ready for :func:`align_days`."""
        return [
            DailyValue(day.isoformat(), None if math.isnan(v) else float(v))
            for day, v in zip(self.dates, self.values.tolist(), strict=True)
        ]


@dataclass(frozen=True, eq=False)
class HourlyAggregates:
    """Samples aggregated per local clock hour (see the module's time rule), in time order.

    ``utc_start_s`` (n,) int64: the bucket key, the UTC instant (seconds since 1970-01-01) at which
    the local clock hour starts. ``utc_offset_s`` (n,) int64: the zone's offset in that hour.
    ``values`` (n,) float64: the aggregate, NaN below ``min_samples``; ``n_samples`` (n,) int64.
    The grid is dense: every local hour from the first sample's to the last sample's is present.
    """

    time_zone: str
    aggregation: Aggregation
    utc_start_s: Int64Array
    utc_offset_s: Int64Array
    values: FloatArray
    n_samples: Int64Array

    @property
    def n_hours(self) -> int:
        return int(self.values.size)

    @property
    def local_starts(self) -> tuple[dt.datetime, ...]:
        """Local start of each bucket, aware in the zone; ``fold`` 1 marks a repeated hour's second pass."""
        zone = ZoneInfo(self.time_zone)
        return tuple(dt.datetime.fromtimestamp(int(s), tz=zone) for s in self.utc_start_s.tolist())

    @property
    def local_dates(self) -> tuple[dt.date, ...]:
        return tuple(start.date() for start in self.local_starts)


@dataclass(frozen=True, eq=False)
class AlignedDays:
    """Several named daily series on one dense grid of consecutive days from ``start``.

    ``values`` (n_days, n_series) float64, NaN = no value that day; column j is ``names[j]``.
    """

    start: dt.date
    names: tuple[str, ...]
    values: FloatArray

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names):
            raise ValidationError("values must have shape (n_days, n_series)", field="values")
        if len(set(self.names)) != len(self.names) or not all(self.names):
            raise ValidationError("series names must be non-empty and unique", field="names")

    @property
    def n_days(self) -> int:
        return int(self.values.shape[0])

    @property
    def end(self) -> dt.date:
        """The last day of the grid (inclusive)."""
        return self.start + dt.timedelta(days=self.n_days - 1)

    @property
    def dates(self) -> tuple[dt.date, ...]:
        return tuple(self.start + dt.timedelta(days=i) for i in range(self.n_days))

    def index_of(self, name: str, *, field: str = "series") -> int:
        """Column of the series ``name``; an empty or unknown name is a :class:`ValidationError`."""
        if not name:
            raise ValidationError("series name is empty", field=field)
        try:
            return self.names.index(name)
        except ValueError:
            raise ValidationError("unknown series name", field=field) from None

    def column(self, name: str, *, field: str = "series") -> FloatArray:
        """The values of the series ``name`` (a read-only view), NaN for gaps."""
        view = self.values[:, self.index_of(name, field=field)]
        view.flags.writeable = False
        return view


@dataclass(frozen=True)
class PairOverlap:
    """Days with both the biometric (day t) and the symptom (day t + lag) present."""

    biometric: str
    symptom: str
    lag: int
    overlap_days: int
    sufficient: bool


@dataclass(frozen=True)
class OverlapReport:
    """Overlap of every (biometric, symptom, lag) combination against ``min_overlap_days``."""

    min_overlap_days: int
    pairs: tuple[PairOverlap, ...]

    @property
    def qualifying(self) -> tuple[PairOverlap, ...]:
        return tuple(p for p in self.pairs if p.sufficient)

    @property
    def best_overlap_days(self) -> int:
        return max((p.overlap_days for p in self.pairs), default=0)

    def require_any(self, *, field: str = "min_overlap_days") -> tuple[PairOverlap, ...]:
        """The qualifying combinations; a :class:`ValidationError` when there are none."""
        qualifying = self.qualifying
        if not qualifying:
            raise ValidationError(
                f"too little overlap: no biometric-symptom pair has {self.min_overlap_days} days with "
                f"both present at any tested lag (best: {self.best_overlap_days} days)",
                field=field,
            )
        return qualifying


# --- Time zones ----------------------------------------------------------------------------------


def load_zone(name: str, *, field: str = "time_zone") -> ZoneInfo:
    """The IANA zone ``name``; an empty or unknown name is a :class:`ValidationError`."""
    if not name:
        raise ValidationError(
            "time zone is empty (an IANA name such as Europe/Berlin is needed)", field=field
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError("unknown IANA time zone", field=field) from None


def _offset_s(zone: ZoneInfo, utc_s: int) -> int:
    offset = dt.datetime.fromtimestamp(utc_s, tz=zone).utcoffset()
    return 0 if offset is None else int(offset.total_seconds())


def _offsets_us(utc_us: Int64Array, zone: ZoneInfo) -> Int64Array:
    """The zone's UTC offset (microseconds) at each instant (microseconds since 1970-01-01 UTC)."""
    if utc_us.size == 0:
        return np.zeros(0, dtype=np.int64)
    lo = int(utc_us.min()) // _US_PER_S
    hi = int(utc_us.max()) // _US_PER_S
    lo -= lo % _OFFSET_SCAN_S
    points = [lo]
    offsets = [_offset_s(zone, lo)]
    previous_t = lo
    for t in range(lo + _OFFSET_SCAN_S, hi + _OFFSET_SCAN_S, _OFFSET_SCAN_S):
        offset = _offset_s(zone, t)
        if offset != offsets[-1]:
            before, after = previous_t, t  # offset(before) == offsets[-1] != offset(after)
            while after - before > 1:
                middle = (before + after) // 2
                if _offset_s(zone, middle) == offsets[-1]:
                    before = middle
                else:
                    after = middle
            points.append(after)
            offsets.append(offset)
        previous_t = t
    where = np.searchsorted(np.asarray(points, dtype=np.int64) * _US_PER_S, utc_us, side="right") - 1
    return np.asarray(offsets, dtype=np.int64)[where] * _US_PER_S


def _local_midnight_utc_s(day: dt.date, zone: ZoneInfo) -> int:
    """The first instant of a local calendar day (a midnight skipped by DST starts at 01:00)."""
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
    return int((midnight - _EPOCH) // dt.timedelta(seconds=1))


# --- Samples to buckets --------------------------------------------------------------------------


def _check_aggregation(aggregation: str) -> Aggregation:
    for known in AGGREGATIONS:
        if aggregation == known:
            return known
    raise ValidationError("unknown aggregation (mean, sum, min, max or last)", field="aggregation")


def _samples_us(
    times: Times, values: Sequence[float] | FloatArray, field: str
) -> tuple[Int64Array, FloatArray]:
    """Validated instants (microseconds since 1970-01-01 UTC) and values; NaN readings dropped."""
    if len(times) != len(values):
        raise ValidationError("times and values differ in length", field=field)
    if isinstance(times, np.ndarray):
        if times.dtype.kind != "M":
            raise ValidationError("times must be datetime64 instants (UTC)", field=field)
        not_a_time = np.flatnonzero(np.isnat(times))
        if not_a_time.size:
            raise ValidationError("time is missing (NaT)", field=f"{field}[{int(not_a_time[0])}].time")
        utc_us = times.astype("datetime64[us]").astype(np.int64)
    else:
        utc_us = np.empty(len(times), dtype=np.int64)
        for i, time in enumerate(times):
            if not isinstance(time, dt.datetime) or time.utcoffset() is None:
                raise ValidationError("time must be a timezone-aware instant", field=f"{field}[{i}].time")
            utc_us[i] = (time - _EPOCH) // _ONE_US
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    infinite = np.flatnonzero(np.isinf(array))
    if infinite.size:
        raise ValidationError("value is not a finite number", field=f"{field}[{int(infinite[0])}].value")
    present = ~np.isnan(array)
    return utc_us[present], array[present]


def _reduce(
    keys: Int64Array, utc_us: Int64Array, values: FloatArray, aggregation: Aggregation
) -> tuple[Int64Array, FloatArray, Int64Array, Int64Array]:
    """Per distinct key: the key, the aggregate, the sample count, and the sorted order used."""
    order = np.lexsort((utc_us, keys))  # by key, then time; stable, so ties keep input order
    keys_sorted = keys[order]
    values_sorted = values[order]
    unique, first, counts = np.unique(keys_sorted, return_index=True, return_counts=True)
    if aggregation == "last":
        result = values_sorted[first + counts - 1]
    elif aggregation == "min":
        result = np.minimum.reduceat(values_sorted, first)
    elif aggregation == "max":
        result = np.maximum.reduceat(values_sorted, first)
    else:
        result = np.add.reduceat(values_sorted, first)
        if aggregation == "mean":
            result = result / counts
    return (
        unique.astype(np.int64),
        np.asarray(result, dtype=np.float64),
        counts.astype(np.int64),
        order.astype(np.int64),
    )


def aggregate_daily(
    times: Times,
    values: Sequence[float] | FloatArray,
    time_zone: str,
    *,
    aggregation: Aggregation = "mean",
    min_samples: int = 1,
    min_covered_hours: int = 0,
    start: dt.date | None = None,
    end: dt.date | None = None,
    max_days: int = DEFAULT_MAX_DAYS,
    field: str = "samples",
    zone_field: str = "time_zone",
) -> DailyAggregates:
    """Aggregate instant samples per patient-local calendar day (see the module's time rule).

    ``times`` are timezone-aware instants in any order (or a datetime64 array of UTC instants,
    the fast path for minute-level data); ``values`` the matching readings, NaN for a
    reading that is absent (ignored), infinities are rejected. A day is kept when it has at least
    ``min_samples`` samples and ``min_covered_hours`` distinct local hours with a sample; otherwise
    it is NaN. The grid runs from the first to the last sample's local day, or over ``start`` to
    ``end`` (inclusive local dates) when given, samples outside being ignored.
    """
    agg = _check_aggregation(aggregation)
    if min_samples < 1:
        raise ValidationError("min_samples must be at least 1", field="min_samples")
    if min_covered_hours < 0:
        raise ValidationError("min_covered_hours must not be negative", field="min_covered_hours")
    zone = load_zone(time_zone, field=zone_field)
    utc_us, array = _samples_us(times, values, field)
    local_us = utc_us + _offsets_us(utc_us, zone)
    day_number = local_us // _US_PER_DAY  # days since 1970-01-01, local calendar
    hour_key = utc_us - local_us % _US_PER_HOUR  # UTC instant the local hour starts
    if start is None or end is None:
        if day_number.size == 0:
            raise ValidationError("no samples with a value and no window given", field=field)
        first = dt.date.fromordinal(_EPOCH_ORDINAL + int(day_number.min()))
        last = dt.date.fromordinal(_EPOCH_ORDINAL + int(day_number.max()))
        start = first if start is None else start
        end = last if end is None else end
    n_days = _window_days(start, end, max_days)
    offset = start.toordinal() - _EPOCH_ORDINAL
    inside = (day_number >= offset) & (day_number < offset + n_days)
    day_index = day_number[inside] - offset
    utc_us, array, hour_key = utc_us[inside], array[inside], hour_key[inside]

    result = np.full(n_days, np.nan, dtype=np.float64)
    n_samples = np.zeros(n_days, dtype=np.int64)
    covered = np.zeros(n_days, dtype=np.int64)
    if day_index.size:
        days, aggregated, counts, order = _reduce(day_index, utc_us, array, agg)
        sorted_days = day_index[order]
        sorted_hours = hour_key[order]
        new_hour = np.ones(sorted_days.size, dtype=np.int64)
        new_hour[1:] = (sorted_days[1:] != sorted_days[:-1]) | (sorted_hours[1:] != sorted_hours[:-1])
        first_of_day = np.concatenate(([0], np.cumsum(counts)[:-1]))
        hours = np.add.reduceat(new_hour, first_of_day)
        n_samples[days] = counts
        covered[days] = hours
        keep = (counts >= min_samples) & (hours >= min_covered_hours)
        result[days[keep]] = aggregated[keep]
    midnights = [_local_midnight_utc_s(start + dt.timedelta(days=i), zone) for i in range(n_days + 1)]
    hours_in_day = np.diff(np.asarray(midnights, dtype=np.float64)) / _S_PER_HOUR
    return DailyAggregates(
        start=start,
        time_zone=time_zone,
        aggregation=agg,
        values=result,
        n_samples=n_samples,
        covered_hours=covered,
        hours_in_day=hours_in_day,
    )


def aggregate_hourly(
    times: Times,
    values: Sequence[float] | FloatArray,
    time_zone: str,
    *,
    aggregation: Aggregation = "mean",
    min_samples: int = 1,
    max_hours: int = 24 * DEFAULT_MAX_DAYS,
    field: str = "samples",
    zone_field: str = "time_zone",
) -> HourlyAggregates:
    """Aggregate instant samples per local clock hour, keyed by the hour's UTC start.

    Same inputs as :func:`aggregate_daily`; an hour with fewer than ``min_samples`` samples is NaN.
    A fall-back night's repeated local hour gives two buckets (see the module's time rule).
    """
    agg = _check_aggregation(aggregation)
    if min_samples < 1:
        raise ValidationError("min_samples must be at least 1", field="min_samples")
    zone = load_zone(time_zone, field=zone_field)
    utc_us, array = _samples_us(times, values, field)
    if utc_us.size == 0:
        raise ValidationError("no samples with a value", field=field)
    hour_key = utc_us - (utc_us + _offsets_us(utc_us, zone)) % _US_PER_HOUR
    keys, aggregated, counts, _ = _reduce(hour_key, utc_us, array, agg)
    first, last = int(keys[0]), int(keys[-1])
    if (last - first) // _US_PER_HOUR + 1 > max_hours:
        raise ValidationError(f"samples span more than {max_hours} hours", field=field)
    # Every local hour start in the span: offsets are multiples of 15 minutes, so each local hour
    # contains an instant of this grid; the sample keys are added for any exotic offset.
    probe = np.arange(first, last + 1, _HOUR_GRID_STEP_S * _US_PER_S, dtype=np.int64)
    probe_keys = probe - (probe + _offsets_us(probe, zone)) % _US_PER_HOUR
    grid = np.union1d(probe_keys[(probe_keys >= first) & (probe_keys <= last)], keys).astype(np.int64)
    where = np.searchsorted(grid, keys)
    result = np.full(grid.size, np.nan, dtype=np.float64)
    n_samples = np.zeros(grid.size, dtype=np.int64)
    n_samples[where] = counts
    keep = counts >= min_samples
    result[where[keep]] = aggregated[keep]
    return HourlyAggregates(
        time_zone=time_zone,
        aggregation=agg,
        utc_start_s=grid // _US_PER_S,
        utc_offset_s=_offsets_us(grid, zone) // _US_PER_S,
        values=result,
        n_samples=n_samples,
    )


# --- Daily series to a common grid ---------------------------------------------------------------


def _window_days(start: dt.date, end: dt.date, max_days: int) -> int:
    if end < start:
        raise ValidationError("window ends before it starts", field="window")
    n_days = (end - start).days + 1
    if n_days > max_days:
        raise ValidationError(f"span of {n_days} days exceeds the limit of {max_days} days", field="window")
    return n_days


def _parse_series(series: NamedDailySeries, where: str) -> list[tuple[dt.date, float | None]]:
    out: list[tuple[dt.date, float | None]] = []
    previous: dt.date | None = None
    for i, entry in enumerate(series.values):
        day = parse_date(entry.date, f"{where}.values[{i}].date")
        if previous is not None and day <= previous:
            raise ValidationError(
                "dates must be ascending without duplicates", field=f"{where}.values[{i}].date"
            )
        previous = day
        if entry.value is not None and not math.isfinite(entry.value):
            raise ValidationError("value is not a finite number", field=f"{where}.values[{i}].value")
        out.append((day, entry.value))
    return out


def align_days(
    groups: Mapping[str, Sequence[NamedDailySeries]],
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    max_days: int = DEFAULT_MAX_DAYS,
) -> AlignedDays:
    """Lay every series of every group on one dense day grid, NaN for gaps.

    ``groups`` maps the request field (``"biometrics"``, ``"symptoms"``) to its series; errors
    name entries as ``biometrics[2].values[5].date``. Dates must parse, ascend without duplicates,
    and values be finite; names must be non-empty and unique across all groups. The grid runs from
    the earliest to the latest date of any entry (with or without a value), or over ``start`` to
    ``end`` (inclusive) when given, entries outside being ignored.
    """
    names: list[str] = []
    parsed: list[list[tuple[dt.date, float | None]]] = []
    for group, series_list in groups.items():
        for s, series in enumerate(series_list):
            where = f"{group}[{s}]"
            if not series.name:
                raise ValidationError("series name is empty", field=f"{where}.name")
            if series.name in names:
                raise ValidationError("series name sent twice", field=f"{where}.name")
            names.append(series.name)
            parsed.append(_parse_series(series, where))
    if not names:
        raise ValidationError("no series given", field=next(iter(groups), "series"))
    if start is None or end is None:
        dated = [day for entries in parsed for day, _ in entries]
        if not dated:
            raise ValidationError("no dated entries and no window given", field=next(iter(groups)))
        start = min(dated) if start is None else start
        end = max(dated) if end is None else end
    n_days = _window_days(start, end, max_days)
    values = np.full((n_days, len(names)), np.nan, dtype=np.float64)
    for column, entries in enumerate(parsed):
        for day, value in entries:
            index = (day - start).days
            if value is not None and 0 <= index < n_days:
                values[index, column] = value
    return AlignedDays(start=start, names=tuple(names), values=values)


# --- Overlap -------------------------------------------------------------------------------------


def _lagged(x: FloatArray, y: FloatArray, lag: int) -> tuple[FloatArray, FloatArray]:
    """``x[t]`` against ``y[t + lag]`` over every t where both indices exist."""
    n = min(x.size, y.size)
    if abs(lag) >= n:
        empty = np.zeros(0, dtype=np.float64)
        return empty, empty
    if lag >= 0:
        return x[: n - lag], y[lag:n]
    return x[-lag:n], y[: n + lag]


def lagged_overlap(x: FloatArray, y: FloatArray, lag: int) -> int:
    """Days t with both ``x[t]`` and ``y[t + lag]`` present (not NaN) on the same day grid."""
    a, b = _lagged(x, y, lag)
    return int(np.count_nonzero(~np.isnan(a) & ~np.isnan(b)))


def lagged_pairs(
    aligned: AlignedDays, biometric: str, symptom: str, lag: int
) -> tuple[FloatArray, FloatArray]:
    """The paired values (biometric on day t, symptom on day t + lag) where both are present."""
    a, b = _lagged(aligned.column(biometric), aligned.column(symptom), lag)
    both = ~np.isnan(a) & ~np.isnan(b)
    return a[both].copy(), b[both].copy()


def overlap_report(
    aligned: AlignedDays,
    biometrics: Sequence[str],
    symptoms: Sequence[str],
    lags: Sequence[int],
    *,
    min_overlap_days: int,
) -> OverlapReport:
    """Overlap of every (biometric, symptom, lag), each marked sufficient at ``min_overlap_days``."""
    if min_overlap_days < 1:
        raise ValidationError("min_overlap_days must be at least 1", field="min_overlap_days")
    pairs: list[PairOverlap] = []
    for b, biometric in enumerate(biometrics):
        x = aligned.column(biometric, field=f"biometrics[{b}].name")
        for s, symptom in enumerate(symptoms):
            y = aligned.column(symptom, field=f"symptoms[{s}].name")
            for lag in lags:
                days = lagged_overlap(x, y, lag)
                pairs.append(PairOverlap(biometric, symptom, lag, days, days >= min_overlap_days))
    return OverlapReport(min_overlap_days=min_overlap_days, pairs=tuple(pairs))
