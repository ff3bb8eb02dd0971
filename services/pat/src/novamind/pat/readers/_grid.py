"""Putting timestamped samples on the regular epoch grid a :class:`Recording` requires.

Times travel as int64 nanoseconds: naive local wall-clock time for device files, UTC for inputs
that carry an offset (the index is then shown in one fixed offset, see :func:`epoch_index`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from novamind.core.errors import ValidationError
from novamind.pat.domain.recording import DeviceInfo, Recording

NS_PER_SECOND = 1_000_000_000
#: Epoch lengths a reader accepts (seconds): the device families use 1 s to 5 min.
MIN_EPOCH_SECONDS = 1
MAX_EPOCH_SECONDS = 3600
#: A corrupt timestamp far from the others must not allocate gigabytes of empty epochs.
MAX_EPOCHS = 20_000_000

Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Locate = Callable[[int], str]


def epoch_ns(seconds: float, where: str) -> int:
    """Validate an epoch length in seconds and return it in nanoseconds.

    Raises ValidationError unless it is a whole number of seconds from 1 s to 1 h.
    """
    if not np.isfinite(seconds) or seconds != round(seconds):
        raise ValidationError("epoch length must be a whole number of seconds", field=where)
    if not MIN_EPOCH_SECONDS <= seconds <= MAX_EPOCH_SECONDS:
        raise ValidationError(
            f"epoch length out of range; expected {MIN_EPOCH_SECONDS} to {MAX_EPOCH_SECONDS} seconds",
            field=where,
        )
    return int(seconds) * NS_PER_SECOND


def check_increasing(times: Int64Array, locate: Locate) -> None:
    """Raise ValidationError at the first duplicated or out-of-order timestamp (``locate(row)``)."""
    if times.size == 0:
        return
    steps = np.diff(times)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        row = int(bad[0]) + 1
        if steps[bad[0]] == 0:
            raise ValidationError(
                "duplicated timestamp; expected each epoch start exactly once", field=locate(row)
            )
        raise ValidationError(
            "timestamp earlier than the previous one; expected increasing timestamps", field=locate(row)
        )


def infer_epoch_ns(times: Int64Array, where: str) -> int:
    """The most common spacing of increasing ``times`` (nanoseconds), validated as an epoch.

    Raises ValidationError with fewer than two samples or an unusable spacing.
    """
    if times.size < 2:
        raise ValidationError("need at least two samples to tell the epoch length", field=where)
    values, counts = np.unique(np.diff(times), return_counts=True)
    spacing = int(values[int(np.argmax(counts))])
    return epoch_ns(spacing / NS_PER_SECOND, where)


def grid_slots(times: Int64Array, step_ns: int, locate: Locate) -> tuple[Int64Array, int]:
    """Epoch number of each sample counted from the first one, and the number of epochs.

    Gaps that are whole epochs are allowed (they become NaN); anything else is an error naming
    the sample's location. Raises ValidationError for no samples, duplicates, decreasing times,
    times off the grid started by the first sample, or a span over :data:`MAX_EPOCHS`.
    """
    if times.size == 0:
        raise ValidationError("no epochs in the file; expected at least one sample", field=locate(0))
    check_increasing(times, locate)
    offsets = times - times[0]
    off_grid = np.flatnonzero(offsets % step_ns)
    if off_grid.size:
        raise ValidationError(
            f"timestamp is not on the {step_ns // NS_PER_SECOND}-second epoch grid started by the first "
            "sample; expected regular epochs",
            field=locate(int(off_grid[0])),
        )
    slots = offsets // step_ns
    n_epochs = int(slots[-1]) + 1
    if n_epochs > MAX_EPOCHS:
        jump = int(np.argmax(np.diff(slots))) + 1
        raise ValidationError(
            f"recording would span more than {MAX_EPOCHS} epochs; a timestamp is far from the others",
            field=locate(jump),
        )
    return slots.astype(np.int64), n_epochs


def scatter(slots: Int64Array, n_epochs: int, values: FloatArray) -> FloatArray:
    """``values`` placed at ``slots`` of an all-NaN array of ``n_epochs``."""
    out = np.full(n_epochs, np.nan, dtype=np.float64)
    out[slots] = values
    return out


def spread_over_grid(
    starts: Int64Array,
    ends: Int64Array,
    values: FloatArray,
    grid_start: int,
    step_ns: int,
    n_epochs: int,
) -> FloatArray:
    """Totals over intervals ``[start, end)`` spread uniformly onto epochs (ns inputs).

    Each interval's value is shared between the epochs it overlaps in proportion to the overlap;
    an interval with ``end == start`` puts its whole value in the epoch holding ``start``.
    Overlapping intervals add up; whatever falls outside the grid is dropped. Vectorised: the
    first and last epoch of each interval get their partial shares directly, the epochs between
    get a constant share through a difference array, so there is no loop over intervals.
    """
    span = n_epochs * step_ns
    rel_start = starts - grid_start
    rel_end = ends - grid_start
    out = np.zeros(n_epochs, dtype=np.float64)

    instant = rel_end <= rel_start
    inside = instant & (rel_start >= 0) & (rel_start < span)
    out += np.bincount(rel_start[inside] // step_ns, weights=values[inside], minlength=n_epochs)

    lo = np.clip(rel_start, 0, span)
    hi = np.clip(rel_end, 0, span)
    keep = ~instant & (hi > lo)
    lo, hi = lo[keep], hi[keep]
    density = values[keep] / (rel_end[keep] - rel_start[keep]).astype(np.float64)  # value per ns
    first = lo // step_ns
    last = (hi - 1) // step_ns
    single = first == last
    out += np.bincount(first[single], weights=density[single] * (hi - lo)[single], minlength=n_epochs)
    multi = ~single
    f, la, d = first[multi], last[multi], density[multi]
    out += np.bincount(f, weights=d * ((f + 1) * step_ns - lo[multi]), minlength=n_epochs)
    out += np.bincount(la, weights=d * (hi[multi] - la * step_ns), minlength=n_epochs)
    between = np.zeros(n_epochs + 1, dtype=np.float64)
    np.add.at(between, f + 1, d * step_ns)
    np.add.at(between, la, -d * step_ns)
    out += np.cumsum(between[:n_epochs])
    # The running sum can leave -1e-12 where nothing happened.
    result: FloatArray = np.where(np.abs(out) < 1e-9, 0.0, out)
    return result


def fixed_offset(seconds: int) -> dt.timezone:
    """A fixed UTC offset as a tzinfo (``UTC+01:00``)."""
    return dt.timezone(dt.timedelta(seconds=seconds))


def format_offset(seconds: int) -> str:
    """``3600`` -> ``"+01:00"``."""
    sign = "-" if seconds < 0 else "+"
    minutes = abs(seconds) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def epoch_index(start_ns: int, n_epochs: int, step_ns: int, offset_seconds: int | None) -> pd.DatetimeIndex:
    """The epoch-start index: naive wall-clock time when ``offset_seconds`` is None, else
    ``start_ns`` is UTC and the index is shown in that fixed offset."""
    if offset_seconds is None:
        start = pd.Timestamp(start_ns, unit="ns")
    else:
        start = pd.Timestamp(start_ns, unit="ns", tz="UTC").tz_convert(fixed_offset(offset_seconds))
    return pd.date_range(start=start, periods=n_epochs, freq=pd.Timedelta(step_ns, unit="ns"), unit="ns")


def build_recording(
    *,
    start_ns: int,
    step_ns: int,
    activity: FloatArray,
    device: DeviceInfo,
    where: str,
    offset_seconds: int | None = None,
    light: FloatArray | None = None,
    steps: FloatArray | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Recording:
    """Assemble a :class:`Recording` whose channels share one epoch index.

    Raises ValidationError (at ``where``) when the epochs would run past the year 2261.
    """
    try:
        index = epoch_index(start_ns, activity.size, step_ns, offset_seconds)
    except (OverflowError, ValueError) as exc:  # OutOfBoundsDatetime is a ValueError
        raise ValidationError("recording runs outside the supported dates 1678-2261", field=where) from exc
    meta = dict(metadata or {})
    if offset_seconds is not None:
        meta["utc_offset"] = format_offset(offset_seconds)

    def series(values: FloatArray | None, name: str) -> pd.Series | None:
        if values is None:
            return None
        return pd.Series(values.astype(np.float64, copy=False), index=index, name=name)

    activity_series = series(activity, "activity")
    assert activity_series is not None
    return Recording(
        activity=activity_series,
        epoch_seconds=float(step_ns / NS_PER_SECOND),
        device=device,
        light=series(light, "light"),
        steps=series(steps, "steps"),
        timezone=None,
        metadata=meta,
    )


def to_ns(values: pd.Series | pd.DatetimeIndex, where: str) -> Int64Array:
    """Datetimes as int64 nanoseconds (UTC for aware values, wall clock for naive ones).

    Raises ValidationError for dates outside 1678-2261, which nanoseconds cannot hold.
    """
    index = pd.DatetimeIndex(values)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    try:
        converted = index.as_unit("ns")
    except (OverflowError, ValueError) as exc:  # OutOfBoundsDatetime is a ValueError
        raise ValidationError("date out of the supported range 1678-2261", field=where) from exc
    return converted.asi8.astype(np.int64, copy=False)
