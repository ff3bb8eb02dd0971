"""From device epochs to the model's week: minute counts on the local clock, masks, imputation, scaling.

The Pretrained Actigraphy Transformer (PAT; Ruan et al. 2024, "AI Foundation Models for Wearable
Movement Data in Mental Health Research", arXiv:2411.15240) reads one week as 10,080 minute-level
activity values. This module turns a :class:`Recording` (any epoch from 1 s to 60 s that divides a
minute) or irregular step samples into that input, one week at a time and in bounded memory.

Time rule (daylight saving time)
--------------------------------
Minutes are *elapsed* minutes: consecutive values are 60 s apart in physical time, whatever the
wall clock does. Each value carries its local clock label (``local_minute_of_day``, 0-1439) and
local calendar date (``local_day``), which is what clock-time (circadian) features use.

* On a spring-forward night the local clock skips an hour: that local day has 23 h = 1,380
  minutes and the labels of the skipped hour (02:00-02:59 in Europe/Zurich) never occur.
* On a fall-back night the local clock repeats an hour: that local day has 25 h = 1,500 minutes
  and the labels of the repeated hour occur twice, first at the summer offset, then at the
  winter offset. Nothing is dropped, duplicated or averaged.
* A week is 10,080 consecutive elapsed minutes. With ``align_to_local_midnight`` (the default)
  each week starts at the first minute of a local calendar day, so a week that crosses spring
  forward ends at 00:59 local on the eighth day, and one that crosses fall back ends at 22:59
  local on the seventh day.

Clock sources: a timezone-aware index is an exact instant. A naive index is the device's clock,
which actigraphs set once at initialisation and never move for daylight saving time; with a zone
given, that clock is read as the zone's UTC offset at the first epoch and converted to true local
time from there. A naive index with no zone stays on its own clock (no DST handling is possible).

Missing data
------------
A minute's count is the sum of the epochs that start in it. It is NaN (missing) unless every
constituent epoch is present and not NaN: a partial sum would understate activity and scaling it
up would invent data. Minutes at the edges of a recording or of a gap that are only partly covered
are therefore missing.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
import pandas as pd

from novamind.core.errors import ValidationError
from novamind.pat.domain.recording import Recording

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Int16Array = npt.NDArray[np.int16]
Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]

#: Minutes in one PAT input (7 x 24 x 60); the model's input length (arXiv:2411.15240, sec. 2).
MINUTES_PER_WEEK: Final = 10_080
MINUTES_PER_DAY: Final = 1_440

#: Choi et al. 2011 non-wear parameters (Med Sci Sports Exerc 43(2):357-364,
#: doi:10.1249/MSS.0b013e3181ed61a3): at least 90 consecutive minutes of zero counts, allowing
#: up to 2 minutes of non-zero counts when the 30 minutes up- and downstream are all zero.
CHOI_NON_WEAR_MINUTES: Final = 90
CHOI_SPIKE_TOLERANCE_MINUTES: Final = 2
CHOI_SPIKE_WINDOW_MINUTES: Final = 30

# A week's non-wear mask is computed on the week plus this many minutes each side. A non-wear
# run reaching into the week is then seen over at least CONTEXT - SPIKE_WINDOW + 1 >= 90 of its
# minutes, so the mask equals the one computed on the whole recording (tested).
_NON_WEAR_CONTEXT_MINUTES: Final = (
    CHOI_NON_WEAR_MINUTES + CHOI_SPIKE_WINDOW_MINUTES + CHOI_SPIKE_TOLERANCE_MINUTES + 1
)

_NS_PER_SECOND: Final = 1_000_000_000
_NS_PER_MINUTE: Final = 60 * _NS_PER_SECOND
_NS_PER_DAY: Final = MINUTES_PER_DAY * _NS_PER_MINUTE


# --- Data types ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MinuteSeries:
    """Counts per minute on consecutive elapsed minutes, each with its local clock label.

    ``counts`` (n,) float64: activity counts (or steps) per minute, NaN = missing.
    ``local_minute_of_day`` (n,) int16: local clock minute of each value, 0-1439.
    ``local_day`` (n,) int32: local calendar date of each value, days since 1970-01-01.
    ``start``: local start of the first minute; timezone-aware when the zone is known, naive
    (the device's clock) otherwise.
    """

    counts: FloatArray
    local_minute_of_day: Int16Array
    local_day: Int32Array
    start: pd.Timestamp

    def __post_init__(self) -> None:
        n = self.counts.shape
        if len(n) != 1 or self.local_minute_of_day.shape != n or self.local_day.shape != n:
            raise ValidationError("minute arrays must be one-dimensional and of equal length", field="counts")

    @property
    def n_minutes(self) -> int:
        return int(self.counts.size)

    @property
    def end(self) -> pd.Timestamp:
        """Exclusive end: the start of the minute after the last one."""
        return self.start + pd.Timedelta(minutes=self.n_minutes)

    @property
    def index(self) -> pd.DatetimeIndex:
        """Local start of every minute (elapsed spacing: labels repeat or skip across DST)."""
        return pd.date_range(self.start, periods=self.n_minutes, freq="min")

    @property
    def timezone(self) -> str | None:
        """IANA zone of the local labels, None for a fixed offset or a naive clock."""
        tz = self.start.tz
        return tz.key if isinstance(tz, ZoneInfo) else None


@dataclass(frozen=True, eq=False)
class Week:
    """One PAT input window: 10,080 consecutive elapsed minutes (see the module's time rule).

    ``values`` (10080,) float64: counts per minute after :func:`impute`, not yet standardised.
    ``start``: local start of the first minute (a local midnight when windows are aligned).
    ``local_minute_of_day`` (10080,) int16: local clock minute of each value, 0-1439.
    ``mask_missing`` (10080,) bool: no complete data was recorded for the minute.
    ``mask_non_wear`` (10080,) bool: Choi et al. 2011 non-wear (zero counts off the wrist).
    Minutes under either mask were replaced by imputation (``mask_imputed``).
    """

    values: FloatArray
    start: pd.Timestamp
    local_minute_of_day: Int16Array
    mask_missing: BoolArray
    mask_non_wear: BoolArray

    @property
    def mask_imputed(self) -> BoolArray:
        return np.asarray(self.mask_missing | self.mask_non_wear)

    @property
    def index(self) -> pd.DatetimeIndex:
        """Local start of every minute of the week."""
        return pd.date_range(self.start, periods=MINUTES_PER_WEEK, freq="min")

    @property
    def wear_fraction(self) -> float:
        """Fraction (0-1) of the week's minutes that were recorded and worn."""
        return float(1.0 - self.mask_imputed.mean())


@dataclass(frozen=True, eq=False)
class StandardScalerParameters:
    """Per-minute-index standardisation fitted on a cohort of weeks, shipped with a PAT model.

    ``mean`` and ``scale`` (10080,) float64 are in counts per minute: sklearn ``StandardScaler``'s
    ``mean_`` and ``scale_`` for an (n_weeks, 10080) matrix.
    """

    mean: FloatArray
    scale: FloatArray

    def __post_init__(self) -> None:
        if self.mean.shape != (MINUTES_PER_WEEK,) or self.scale.shape != (MINUTES_PER_WEEK,):
            raise ValidationError("scaler parameters must have shape (10080,)", field="scaler")
        if not (
            np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.scale)) and np.all(self.scale > 0)
        ):
            raise ValidationError("scaler parameters must be finite with a positive scale", field="scaler")


# --- Time zones ----------------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError("unknown IANA time zone", field="timezone") from exc


def _local_labels(
    first_minute: int, n: int, tz: tzinfo | None
) -> tuple[Int16Array, Int32Array, pd.Timestamp]:
    """Local clock labels for ``n`` minutes starting ``first_minute`` minutes after 1970-01-01 UTC.

    With ``tz`` None the minutes are on a naive clock and label themselves.
    """
    ns = (first_minute + np.arange(n, dtype=np.int64)) * _NS_PER_MINUTE
    if tz is None:
        wall = ns
        start = pd.Timestamp(int(ns[0]), unit="ns")
    else:
        index = pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC").tz_convert(tz)
        wall = index.tz_localize(None).as_unit("ns").asi8
        start = index[0]
    minute_of_day = ((wall // _NS_PER_MINUTE) % MINUTES_PER_DAY).astype(np.int16)
    day = (wall // _NS_PER_DAY).astype(np.int32)
    return minute_of_day, day, start


# --- Epochs to minutes ---------------------------------------------------------------------------


def _validated_epoch_ns(epoch_seconds: float) -> int:
    if not (
        math.isfinite(epoch_seconds)
        and float(epoch_seconds).is_integer()
        and 1 <= epoch_seconds <= 60
        and 60 % int(epoch_seconds) == 0
    ):
        raise ValidationError(
            "epoch must be a whole number of seconds from 1 to 60 that divides 60", field="epoch_seconds"
        )
    return int(epoch_seconds) * _NS_PER_SECOND


class _EpochBinner:
    """Sums consecutive chunks of epochs into whole minutes, carrying an unfinished minute over."""

    def __init__(self, timezone: str | None) -> None:
        self._zone = _zone(timezone) if timezone is not None else None
        self._tz: tzinfo | None = None
        self._naive: bool | None = None
        self._naive_offset_ns = 0
        self._epoch_ns: int | None = None
        self._last_epoch_ns: int | None = None
        self._next_minute: int | None = None
        self._carry_ns: Int64Array = np.empty(0, dtype=np.int64)
        self._carry_values: FloatArray = np.empty(0, dtype=np.float64)

    def _epoch_starts(self, recording: Recording) -> Int64Array:
        index = recording.activity.index
        if not isinstance(index, pd.DatetimeIndex):
            raise ValidationError("activity must be indexed by epoch start times", field="activity.index")
        naive = index.tz is None
        if self._naive is None:
            self._naive = naive
            zone = self._zone or (_zone(recording.timezone) if recording.timezone else None)
            if naive and zone is not None:
                offset = zone.utcoffset(index[0].to_pydatetime())
                self._naive_offset_ns = int(offset.total_seconds() * _NS_PER_SECOND) if offset else 0
            self._tz = zone if zone is not None else (None if naive else index.tz)
        elif naive != self._naive:
            raise ValidationError("chunks mix naive and timezone-aware indexes", field="activity.index")
        if naive:
            return index.as_unit("ns").asi8 - self._naive_offset_ns
        return index.tz_convert("UTC").as_unit("ns").asi8

    def push(self, recording: Recording, *, final: bool) -> MinuteSeries | None:
        """Minutes completed by this chunk (all remaining ones when ``final``); None if none."""
        epoch_ns = _validated_epoch_ns(recording.epoch_seconds)
        if self._epoch_ns is not None and epoch_ns != self._epoch_ns:
            raise ValidationError("chunks must share one epoch length", field="epoch_seconds")
        self._epoch_ns = epoch_ns
        if recording.activity.size == 0:
            if self._next_minute is None and final:
                raise ValidationError("the recording holds no epochs", field="activity")
            return self._flush() if final else None

        ns = self._epoch_starts(recording)
        steps = np.diff(ns)
        if np.any(steps <= 0):
            raise ValidationError("epoch start times must be strictly increasing", field="activity.index")
        if np.any(steps != epoch_ns):
            raise ValidationError(
                "epochs must lie on a regular grid of epoch_seconds", field="activity.index"
            )
        if self._last_epoch_ns is not None and ns[0] < self._last_epoch_ns + epoch_ns:
            raise ValidationError("a chunk overlaps or precedes the previous one", field="activity.index")
        values = recording.activity.to_numpy(dtype=np.float64)
        if np.any(np.isinf(values)) or np.any(values < 0):
            raise ValidationError("counts must be finite and non-negative (NaN = missing)", field="activity")
        self._last_epoch_ns = int(ns[-1])

        ns = np.concatenate([self._carry_ns, ns])
        values = np.concatenate([self._carry_values, values])
        minute = ns // _NS_PER_MINUTE
        first = int(minute[0]) if self._next_minute is None else self._next_minute
        per_minute = _NS_PER_MINUTE // epoch_ns
        last = int(minute[-1])
        # The last minute stays open for the next chunk unless it is already full (or this is the end).
        if not final and np.count_nonzero(minute == last) < per_minute:
            last -= 1
        done = minute <= last
        self._carry_ns, self._carry_values = ns[~done], values[~done]
        if last < first:
            return None
        return self._emit(minute[done], values[done], first, last)

    def _flush(self) -> MinuteSeries | None:
        if self._carry_ns.size == 0:
            return None
        minute = self._carry_ns // _NS_PER_MINUTE
        first = self._next_minute if self._next_minute is not None else int(minute[0])
        values = self._carry_values
        self._carry_ns, self._carry_values = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        return self._emit(minute, values, first, int(minute[-1]))

    def finish(self) -> MinuteSeries | None:
        """The minute left open by the last chunk, if any (missing unless it was complete)."""
        return self._flush()

    def _emit(self, minute: Int64Array, values: FloatArray, first: int, last: int) -> MinuteSeries:
        assert self._epoch_ns is not None
        n = last - first + 1
        slot = minute - first
        observed = ~np.isnan(values)
        sums = np.bincount(slot, weights=np.where(observed, values, 0.0), minlength=n)
        n_epochs = np.bincount(slot, minlength=n)
        n_observed = np.bincount(slot, weights=observed, minlength=n)
        complete = (n_epochs == _NS_PER_MINUTE // self._epoch_ns) & (n_observed == n_epochs)
        counts = np.where(complete, sums, np.nan)
        self._next_minute = last + 1
        minute_of_day, day, start = _local_labels(first, n, self._tz)
        return MinuteSeries(counts=counts, local_minute_of_day=minute_of_day, local_day=day, start=start)


def to_minutes(recording: Recording, *, timezone: str | None = None) -> MinuteSeries:
    """Activity counts per minute, in elapsed minutes with local clock labels.

    Epochs of 1-60 s that divide 60 s are summed into the minute in which they start; a minute
    is NaN unless all of its epochs are present and not NaN (see the module docstring).
    ``timezone`` (IANA name) overrides ``recording.timezone``; without either, an aware index
    keeps its own zone and a naive one its own clock.

    Raises ``ValidationError`` for an epoch outside 1-60 s or not dividing 60 s, an empty or
    unsorted index, an irregular grid, negative or infinite counts, or an unknown zone.
    """
    binner = _EpochBinner(timezone)
    if recording.activity.size == 0:
        raise ValidationError("the recording holds no epochs", field="activity")
    minutes = binner.push(recording, final=True)
    assert minutes is not None
    return minutes


def stream_minutes(chunks: Iterable[Recording], *, timezone: str | None = None) -> Iterator[MinuteSeries]:
    """:func:`to_minutes` over consecutive chunks of one recording, in bounded memory.

    Each yielded block holds the minutes that the chunks so far complete; blocks are contiguous
    (a gap between chunks becomes missing minutes) and concatenate to what :func:`to_minutes`
    returns for the whole recording. Chunks must share the epoch length and must not overlap.
    Raises ``ValidationError`` as :func:`to_minutes` does, when the offending chunk is reached.
    """
    binner = _EpochBinner(timezone)
    seen = False
    for chunk in chunks:
        seen = seen or chunk.activity.size > 0
        block = binner.push(chunk, final=False)
        if block is not None:
            yield block
    if not seen:
        raise ValidationError("the recording holds no epochs", field="activity")
    tail = binner.finish()
    if tail is not None:
        yield tail


def steps_to_minutes(
    start: pd.DatetimeIndex,
    end: pd.DatetimeIndex,
    steps: npt.ArrayLike,
    *,
    timezone: str | None = None,
) -> MinuteSeries:
    """Steps per minute from irregular samples, each spread uniformly over its interval.

    Sample ``i`` counted ``steps[i]`` steps between the instants ``start[i]`` and ``end[i]``
    (timezone-aware); minute ``m`` receives the share of each sample that overlaps it, so the
    minute totals sum to the sample totals. A zero-length sample lands in the minute of its
    start. Minutes covered by no sample hold 0 steps (step sources write samples only while
    steps happen), so the result has no missing minutes; overlapping samples add up, so pass
    de-duplicated samples of one source. Local labels use ``timezone`` (IANA), else the zone
    of ``start``.

    Raises ``ValidationError`` on empty, unequal-length or naive inputs, negative or non-finite
    steps, an end before its start, or an unknown zone.
    """
    if not isinstance(start, pd.DatetimeIndex) or not isinstance(end, pd.DatetimeIndex):
        raise ValidationError("sample start and end must be DatetimeIndex values", field="start")
    counts = np.asarray(steps, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or start.size != counts.size or end.size != counts.size:
        raise ValidationError("start, end and steps must be non-empty and of equal length", field="steps")
    if start.tz is None or end.tz is None:
        raise ValidationError("step sample times must be timezone-aware", field="start")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValidationError("steps must be finite and non-negative", field="steps")
    s = start.tz_convert("UTC").as_unit("ns").asi8
    e = end.tz_convert("UTC").as_unit("ns").asi8
    if np.any(e < s):
        raise ValidationError("a step sample ends before it starts", field="end")
    tz: tzinfo | None = _zone(timezone) if timezone is not None else start.tz

    first = int(s.min() // _NS_PER_MINUTE)
    last = int(np.maximum(e - 1, s).max() // _NS_PER_MINUTE)
    n = last - first + 1
    origin = first * _NS_PER_MINUTE
    # Times relative to the first minute keep float64 exact to well under a nanosecond.
    rs, re = (s - origin).astype(np.float64), (e - origin).astype(np.float64)
    timed = e > s
    # Cumulative steps F(t) is piecewise linear: the rate of each sample switches on at its start
    # and off at its end. F at the minute boundaries gives each minute's steps as a difference.
    rate = counts[timed] / (re[timed] - rs[timed])
    knots = np.concatenate([rs[timed], re[timed]])
    slope_change = np.concatenate([rate, -rate])
    order = np.argsort(knots, kind="stable")
    knots, slope_change = knots[order], slope_change[order]
    slope = np.cumsum(slope_change)
    cumulative = np.concatenate([[0.0], np.cumsum(slope[:-1] * np.diff(knots))]) if knots.size else knots
    boundaries = np.arange(n + 1, dtype=np.float64) * _NS_PER_MINUTE
    per_minute = np.diff(np.interp(boundaries, knots, cumulative)) if knots.size else np.zeros(n)
    instant = ~timed
    per_minute += np.bincount((s[instant] // _NS_PER_MINUTE - first).astype(np.int64), counts[instant], n)
    minute_of_day, day, first_start = _local_labels(first, n, tz)
    return MinuteSeries(
        counts=np.maximum(per_minute, 0.0),
        local_minute_of_day=minute_of_day,
        local_day=day,
        start=first_start,
    )


# --- Non-wear, missing data and imputation --------------------------------------------------------


def _runs(mask: BoolArray) -> tuple[Int64Array, Int64Array]:
    """Start (inclusive) and end (exclusive) positions of the runs of True in ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def detect_non_wear(
    counts: npt.ArrayLike,
    *,
    min_minutes: int = CHOI_NON_WEAR_MINUTES,
    spike_tolerance_minutes: int = CHOI_SPIKE_TOLERANCE_MINUTES,
    spike_window_minutes: int = CHOI_SPIKE_WINDOW_MINUTES,
) -> BoolArray:
    """Non-wear minutes by the Choi algorithm: True where the device was off the body.

    ``counts`` are counts per minute (NaN = missing). Non-wear is a run of at least
    ``min_minutes`` (90) zero-count minutes, in which a stretch of at most
    ``spike_tolerance_minutes`` (2) non-zero minutes is tolerated as artefactual movement when
    the ``spike_window_minutes`` (30) before and after it are all zero. Choi L, Liu Z, Matthews
    CE, Buchowski MS. Med Sci Sports Exerc 2011;43(2):357-364, doi:10.1249/MSS.0b013e3181ed61a3.
    Missing minutes are neither zero nor movement: they break a run and are never non-wear (the
    missing-data mask covers them). Defaults are the published parameters.
    """
    values = np.asarray(counts, dtype=np.float64)
    if values.ndim != 1:
        raise ValidationError("counts must be one-dimensional", field="counts")
    zero = values == 0
    n = values.size
    zeros_before = np.concatenate([[0], np.cumsum(zero)])
    starts, ends = _runs(values > 0)
    w = spike_window_minutes
    short = (ends - starts) <= spike_tolerance_minutes
    room = (starts >= w) & (ends + w <= n)
    lo, hi = np.clip(starts - w, 0, n), np.clip(ends + w, 0, n)
    quiet = ((zeros_before[starts] - zeros_before[lo]) == w) & ((zeros_before[hi] - zeros_before[ends]) == w)
    tolerated = short & room & quiet
    # Mark tolerated spikes as zero with a difference array: +1 at each start, -1 at each end.
    marks = np.zeros(n + 1, dtype=np.int64)
    np.add.at(marks, starts[tolerated], 1)
    np.add.at(marks, ends[tolerated], -1)
    quiet_minutes = zero | (np.cumsum(marks[:n]) > 0)
    run_starts, run_ends = _runs(quiet_minutes)
    long = (run_ends - run_starts) >= min_minutes
    flags = np.zeros(n + 1, dtype=np.int64)
    np.add.at(flags, run_starts[long], 1)
    np.add.at(flags, run_ends[long], -1)
    return np.asarray(np.cumsum(flags[:n]) > 0)


def missing_mask(counts: npt.ArrayLike) -> BoolArray:
    """True where a minute holds no (complete) data: its count is NaN."""
    return np.asarray(np.isnan(np.asarray(counts, dtype=np.float64)))


def impute(
    counts: npt.ArrayLike,
    local_minute_of_day: npt.ArrayLike,
    replace: npt.ArrayLike | None = None,
) -> tuple[FloatArray, BoolArray]:
    """Fill minutes to replace with the mean of the same local clock minute on the other days.

    ``counts`` are counts per minute (NaN = missing); ``local_minute_of_day`` (0-1439) labels
    each; ``replace`` marks the minutes to fill (default: the missing ones; windows pass
    missing | non-wear). A replaced minute gets the mean count of the minutes with the same
    local clock label that are not replaced (in practice the same clock minute on the other
    days of the series given); where there is none, it gets 0 counts. Values not replaced are
    returned unchanged. Returns ``(values, imputed)``: float64 counts per minute without NaN and
    the boolean mask of replaced minutes, which callers keep so models and metrics know.
    """
    values = np.asarray(counts, dtype=np.float64)
    labels = np.asarray(local_minute_of_day, dtype=np.int64)
    fill = np.isnan(values) if replace is None else np.asarray(replace, dtype=bool) | np.isnan(values)
    if labels.shape != values.shape or fill.shape != values.shape:
        raise ValidationError("counts, clock labels and mask must have one shape", field="counts")
    if values.size and (labels.min() < 0 or labels.max() >= MINUTES_PER_DAY):
        raise ValidationError("local clock minutes must lie in 0-1439", field="local_minute_of_day")
    kept = ~fill
    totals = np.bincount(labels[kept], weights=values[kept], minlength=MINUTES_PER_DAY)
    seen = np.bincount(labels[kept], minlength=MINUTES_PER_DAY)
    clock_mean = np.divide(totals, seen, out=np.zeros(MINUTES_PER_DAY), where=seen > 0)
    return np.where(fill, clock_mean[labels], values), np.asarray(fill)


# --- Weeks ---------------------------------------------------------------------------------------


class _WeekWindower:
    """Cuts weeks from contiguous minute blocks, keeping only what the next windows still need."""

    def __init__(self, stride_minutes: int, align_to_local_midnight: bool) -> None:
        if stride_minutes < 1:
            raise ValidationError("the stride must be at least one minute", field="stride_minutes")
        if align_to_local_midnight and stride_minutes % MINUTES_PER_DAY:
            raise ValidationError(
                "a stride aligned to local midnight must be whole days (a multiple of 1440 minutes)",
                field="stride_minutes",
            )
        self._stride = stride_minutes
        self._align = align_to_local_midnight
        self._counts: FloatArray = np.empty(0, dtype=np.float64)
        self._minute_of_day: Int16Array = np.empty(0, dtype=np.int16)
        self._buffer_pos = 0  # absolute position (minutes since the first block) of buffer[0]
        self._buffer_start: pd.Timestamp | None = None
        self._total = 0
        self._expected: pd.Timestamp | None = None
        self._last_day: int | None = None
        self._day_starts_seen = 0
        self._pending: deque[int] = deque()

    def push(self, block: MinuteSeries) -> Iterator[Week]:
        if block.n_minutes == 0:
            return
        if self._expected is not None and block.start != self._expected:
            raise ValidationError("minute blocks must be contiguous and in time order", field="minutes")
        self._expected = block.end
        if self._buffer_start is None:
            self._buffer_start = block.start
        self._find_starts(block)
        self._counts = np.concatenate([self._counts, block.counts])
        self._minute_of_day = np.concatenate([self._minute_of_day, block.local_minute_of_day])
        self._total += block.n_minutes
        while (
            self._pending and self._pending[0] + MINUTES_PER_WEEK + _NON_WEAR_CONTEXT_MINUTES <= self._total
        ):
            yield self._week(self._pending.popleft())
        self._trim()

    def finish(self) -> Iterator[Week]:
        while self._pending and self._pending[0] + MINUTES_PER_WEEK <= self._total:
            yield self._week(self._pending.popleft())

    def _find_starts(self, block: MinuteSeries) -> None:
        positions = self._total + np.arange(block.n_minutes, dtype=np.int64)
        if not self._align:
            self._pending.extend(int(p) for p in positions[positions % self._stride == 0])
            return
        day = block.local_day
        previous = np.concatenate([[day[0] - 1 if self._last_day is None else self._last_day], day[:-1]])
        is_start = day != previous
        if self._last_day is None:
            # The first minute opens a day only if the local clock reads 00:00 there.
            is_start[0] = bool(block.local_minute_of_day[0] == 0)
        self._last_day = int(day[-1])
        every = self._stride // MINUTES_PER_DAY
        ordinal = self._day_starts_seen + np.arange(int(is_start.sum()))
        self._pending.extend(int(p) for p in positions[is_start][ordinal % every == 0])
        self._day_starts_seen += int(is_start.sum())

    def _week(self, start: int) -> Week:
        assert self._buffer_start is not None
        lo = max(start - _NON_WEAR_CONTEXT_MINUTES, self._buffer_pos)
        hi = min(start + MINUTES_PER_WEEK + _NON_WEAR_CONTEXT_MINUTES, self._total)
        context = self._counts[lo - self._buffer_pos : hi - self._buffer_pos]
        inside = slice(start - lo, start - lo + MINUTES_PER_WEEK)
        non_wear = detect_non_wear(context)[inside]
        counts = context[inside]
        offset = start - self._buffer_pos
        minute_of_day = self._minute_of_day[offset : offset + MINUTES_PER_WEEK].copy()
        missing = np.isnan(counts)
        values, _ = impute(counts, minute_of_day, missing | non_wear)
        return Week(
            values=values,
            start=self._buffer_start + pd.Timedelta(minutes=offset),
            local_minute_of_day=minute_of_day,
            mask_missing=missing,
            mask_non_wear=non_wear,
        )

    def _trim(self) -> None:
        assert self._buffer_start is not None
        next_start = self._pending[0] if self._pending else self._total
        keep_from = max(next_start - _NON_WEAR_CONTEXT_MINUTES, self._buffer_pos)
        drop = keep_from - self._buffer_pos
        if drop > 0:
            self._counts = self._counts[drop:].copy()
            self._minute_of_day = self._minute_of_day[drop:].copy()
            self._buffer_pos = keep_from
            self._buffer_start = self._buffer_start + pd.Timedelta(minutes=drop)


def sliding_weeks(
    minutes: MinuteSeries | Iterable[MinuteSeries],
    *,
    stride_minutes: int = MINUTES_PER_DAY,
    align_to_local_midnight: bool = True,
) -> Iterator[Week]:
    """Every complete week of 10,080 elapsed minutes, ``stride_minutes`` apart, in time order.

    With ``align_to_local_midnight`` weeks start at local midnights (the first minute of each
    local calendar day), every ``stride_minutes / 1440`` days from the first midnight in the
    data; the stride must then be whole days. Without it they start at the first minute and
    every ``stride_minutes`` elapsed minutes after. ``minutes`` is one series or contiguous
    blocks of one (as :func:`stream_minutes` yields); only about a week plus a stride of minutes
    is held at once. Each week's non-wear mask (:func:`detect_non_wear`, with enough context
    around the week to equal the whole-recording mask) and missing mask are kept, and the
    minutes under them are imputed (:func:`impute`, from the week's own other days).

    Raises ``ValidationError`` for a stride below one minute, an aligned stride that is not
    whole days, or blocks that are not contiguous.
    """
    windower = _WeekWindower(stride_minutes, align_to_local_midnight)
    blocks: Iterable[MinuteSeries] = (minutes,) if isinstance(minutes, MinuteSeries) else minutes
    for block in blocks:
        yield from windower.push(block)
    yield from windower.finish()


def stream_weeks(
    chunks: Iterable[Recording],
    *,
    timezone: str | None = None,
    stride_minutes: int = MINUTES_PER_DAY,
    align_to_local_midnight: bool = True,
) -> Iterator[Week]:
    """Weeks straight from consecutive recording chunks in bounded memory.

    :func:`stream_minutes` followed by :func:`sliding_weeks`; yields exactly the weeks that
    ``sliding_weeks(to_minutes(whole recording))`` yields. Raises ``ValidationError`` as they do.
    """
    return sliding_weeks(
        stream_minutes(chunks, timezone=timezone),
        stride_minutes=stride_minutes,
        align_to_local_midnight=align_to_local_midnight,
    )


# --- Standardisation -----------------------------------------------------------------------------


def _as_weeks(weeks: Week | npt.ArrayLike) -> FloatArray:
    values = weeks.values if isinstance(weeks, Week) else np.asarray(weeks, dtype=np.float64)
    if values.shape[-1:] != (MINUTES_PER_WEEK,) or values.ndim > 2:
        raise ValidationError("a week must have shape (10080,) or (n_weeks, 10080)", field="week")
    if not np.all(np.isfinite(values)):
        raise ValidationError("a week must be imputed (finite) before standardisation", field="week")
    return np.asarray(values, dtype=np.float64)


def _constant(var: FloatArray, mean: FloatArray, n_samples: int) -> BoolArray:
    # sklearn.preprocessing._data._is_constant_feature: a variance within float rounding of zero.
    eps = np.finfo(np.float64).eps
    upper = n_samples * eps * var + (n_samples * mean * eps) ** 2
    return np.asarray(var <= upper)


def fit_standard_scaler(weeks: npt.ArrayLike) -> StandardScalerParameters:
    """Per-minute-index mean and standard deviation of a cohort of weeks (n_weeks, 10080).

    As sklearn ``StandardScaler().fit``: ``mean`` is each column's mean, ``scale`` its
    population standard deviation (ddof = 0), with 1 where a column is constant. Counts per
    minute in, counts per minute out. Raises ``ValidationError`` on another shape or NaN.
    """
    matrix = _as_weeks(weeks)
    if matrix.ndim != 2 or matrix.shape[0] < 1:
        raise ValidationError("fit on a matrix of shape (n_weeks, 10080)", field="weeks")
    mean = matrix.mean(axis=0)
    var = matrix.var(axis=0)
    scale = np.where(_constant(var, mean, matrix.shape[0]), 1.0, np.sqrt(var))
    return StandardScalerParameters(mean=mean, scale=scale)


def standardise(week: Week | npt.ArrayLike, scaler: StandardScalerParameters | None = None) -> FloatArray:
    """The standardised PAT input for one week (10080,) or a batch (n_weeks, 10080); unitless.

    The official PAT code (njacobsonlab/Pretrained-Actigraphy-Transformer,
    ``Fine-tuning/PAT_finetuning.ipynb``; the same in ``Model Explainability/PAT_Explainability.ipynb``)
    standardises an (n_participants, 10080) matrix of minute counts with sklearn's
    ``StandardScaler``: column-wise, so each minute index of the week gets its own mean and
    population standard deviation over participants (z = (x - mean) / scale, scale 1 for a
    constant column); it fits a scaler on each data split it transforms. With ``scaler`` (the
    fitted parameters stored with the model artifact, see :func:`fit_standard_scaler`) this
    function applies exactly that transform.

    A single week cannot reproduce a cohort fit (every column would be constant). When a model
    artifact ships no parameters, ``scaler=None`` falls back to standardising each week by its
    own mean and population standard deviation over its 10,080 minutes (1 when constant). This
    fallback is ours, not the paper's; models fine-tuned on it must be served with it.

    Raises ``ValidationError`` for a wrong shape or non-finite values (impute first).
    """
    values = _as_weeks(week)
    if scaler is not None:
        return np.asarray((values - scaler.mean) / scaler.scale)
    mean = values.mean(axis=-1, keepdims=True)
    var = values.var(axis=-1, keepdims=True)
    scale = np.where(_constant(var, mean, MINUTES_PER_WEEK), 1.0, np.sqrt(var))
    return np.asarray((values - mean) / scale)
