"""IEEE 1752.1 / Open mHealth data points as JSON: the ``device.readings.v1`` payload.

Input: a JSON array of data points, a single data point, or JSON Lines (one point per line).
Each point is validated by :func:`novamind.core.omh.parse_data_point` against the contract's
schemas (which also fix the units: ``counts`` for activity-count, ``steps`` for step-count).

* ``activity-count`` points give ``activity`` in counts per epoch on their own epoch
  (``epoch_duration_seconds``, the same for every point); points may come in any order, but
  two points for the same epoch, an interval that is not one epoch long, or a start off the
  grid of the earliest point is an error. Missing epochs are NaN.
* ``step-count`` points are spread uniformly over their intervals (an instant puts all its
  steps in its epoch) onto the activity grid, or onto a 1-minute grid when there are no
  activity counts; ``activity`` then holds steps per minute and ``metadata["activity_unit"]``
  is ``"steps"``. Epochs no step point covers are NaN (a device sends points for the time it
  was worn); overlapping points add up, but two points with the same interval are an error.
* Other schemas (heart-rate, sleep-episode, physical-activity) are counted in
  ``metadata["other_points"]`` and otherwise skipped.

Times are timezone-aware in the UTC offset of the first point in the input; points written
under another offset are converted to it, so the epochs stay regular in absolute time.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from novamind.core.errors import ValidationError
from novamind.core.omh import DataPoint, parse_data_point
from novamind.pat.domain.recording import DeviceInfo, Recording
from novamind.pat.readers._grid import (
    MAX_EPOCHS,
    NS_PER_SECOND,
    FloatArray,
    Int64Array,
    build_recording,
    grid_slots,
    scatter,
    spread_over_grid,
)
from novamind.pat.readers._source import Source, decode_text, load

_UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EARLIEST = dt.datetime(1678, 1, 1, tzinfo=dt.UTC)
_LATEST = dt.datetime(2261, 12, 31, tzinfo=dt.UTC)
_MINUTE_NS = 60 * NS_PER_SECOND


def read_omh_json(path: str | Path) -> Recording:
    """Read Open mHealth activity-count or step-count data points into a :class:`Recording`.

    See the module documentation for the grid and time zone rules. Raises ValidationError
    (naming file, item or line, and the JSON path) for an empty file, invalid JSON, a point
    the contract's schemas reject (wrong unit included), mixed epoch lengths, duplicated or
    off-grid points, and input without activity-count or step-count points.
    """
    return parse_omh_json(load(path))


def parse_omh_json(source: Source) -> Recording:
    """:func:`read_omh_json` on bytes already loaded."""
    activity: list[tuple[DataPoint, str]] = []
    steps: list[tuple[DataPoint, str]] = []
    others = 0
    offset: int | None = None
    seen: dict[str, str] = {}
    for document, where in _documents(source):
        point = _parse(document, where)
        if point.event_id in seen:
            raise ValidationError("data point uuid repeated; expected each reading once", field=where)
        seen[point.event_id] = where
        if offset is None:
            delta = point.start.utcoffset()
            offset = int(delta.total_seconds()) if delta is not None else 0
        if point.schema == "activity-count":
            activity.append((point, where))
        elif point.schema == "step-count":
            steps.append((point, where))
        else:
            others += 1
    if not activity and not steps:
        raise ValidationError(
            "no activity-count or step-count data points; expected at least one", field=source.name
        )
    assert offset is not None
    metadata = {"other_points": str(others)}
    step_times = _times(steps)
    if activity:
        start, step, counts = _activity_grid(activity)
        n_epochs = counts.size
        metadata["activity_unit"] = "counts"
    else:
        step_starts, step_ends, _ = step_times
        local = offset * NS_PER_SECOND
        start = (int(step_starts.min()) + local) // _MINUTE_NS * _MINUTE_NS - local
        end = max(int(step_ends.max()), int(step_starts.max()) + 1)
        n_epochs = -((start - end) // _MINUTE_NS)
        step = _MINUTE_NS
        if n_epochs > MAX_EPOCHS:
            raise ValidationError(
                f"step points span more than {MAX_EPOCHS} minutes; a date is far from the others",
                field=source.name,
            )
        metadata["activity_unit"] = "steps"
    step_series = _step_grid(steps, step_times, start, step, n_epochs) if steps else None
    if not activity:
        assert step_series is not None
        counts = step_series
    return build_recording(
        start_ns=start,
        step_ns=step,
        activity=counts,
        steps=step_series,
        offset_seconds=offset,
        device=DeviceInfo(format="Open mHealth"),
        metadata=metadata,
        where=source.name,
    )


def _documents(source: Source) -> Iterator[tuple[Any, str]]:
    """Each data point document with its location (``file $[3]`` or ``file line 4``)."""
    text = decode_text(source).strip().lstrip("\ufeff")
    if text.startswith("["):
        whole = _loads(text, source, None)
        if not isinstance(whole, list):
            raise ValidationError("expected a JSON array of data points", field=source.name)
        for i, item in enumerate(whole):
            yield item, source.at(f"$[{i}]")
        return
    if text.startswith("{"):
        try:
            single = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            single = None  # not one document: read as JSON Lines below
        if isinstance(single, dict):
            yield single, source.at("$")
            return
    else:
        raise ValidationError(
            "not JSON data points; expected a JSON array, an object or JSON Lines", field=source.line(1)
        )
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield _loads(line, source, number), source.line(number)


def _loads(text: str, source: Source, line: int | None) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        where = source.line(line if line is not None else exc.lineno)
        raise ValidationError(f"invalid JSON ({exc.msg})", field=where) from exc
    except (ValueError, RecursionError) as exc:
        where = source.line(line) if line is not None else source.name
        raise ValidationError(f"invalid JSON ({type(exc).__name__})", field=where) from exc


def _reject_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON numbers")


def _parse(document: Any, where: str) -> DataPoint:
    if not isinstance(document, dict):
        raise ValidationError("data point must be a JSON object", field=where)
    try:
        point = parse_data_point(document)
    except ValidationError as exc:
        raise ValidationError(exc.message, field=_join(where, exc.field)) from exc
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise ValidationError(
            f"data point could not be interpreted ({type(exc).__name__})", field=where
        ) from exc
    if point.value is not None and not np.isfinite(point.value):
        raise ValidationError("value is not a finite number", field=where)
    for moment in (point.start, point.end):
        if moment is not None and not _EARLIEST <= moment <= _LATEST:
            raise ValidationError("time outside the supported dates 1678-2261", field=where)
    return point


def _join(where: str, path: str | None) -> str:
    """``"f.json $[3]"`` + ``"$.body.x"`` -> ``"f.json $[3].body.x"``; lines keep the full path."""
    path = path or "$"
    if where.endswith("$") or where.endswith("]"):
        return where + path[1:]
    return f"{where} {path}"


def _ns(moment: dt.datetime) -> int:
    return (moment - _UNIX_EPOCH) // dt.timedelta(microseconds=1) * 1000


def _times(points: list[tuple[DataPoint, str]]) -> tuple[Int64Array, Int64Array, FloatArray]:
    starts = np.fromiter((_ns(p.start) for p, _ in points), dtype=np.int64, count=len(points))
    ends = np.fromiter((_ns(p.end or p.start) for p, _ in points), dtype=np.int64, count=len(points))
    values = np.fromiter((p.value or 0.0 for p, _ in points), dtype=np.float64, count=len(points))
    return starts, ends, values


def _activity_grid(points: list[tuple[DataPoint, str]]) -> tuple[int, int, FloatArray]:
    """Start (UTC ns), epoch (ns) and counts per epoch of the activity-count points."""
    epochs = [int(p.body["epoch_duration_seconds"]) for p, _ in points]
    for (point, where), seconds in zip(points, epochs, strict=True):
        if seconds != epochs[0]:
            raise ValidationError(
                "epoch_duration_seconds differs from the first point's; expected one epoch length",
                field=_join(where, "$.body.epoch_duration_seconds"),
            )
        if point.end is not None and (point.end - point.start) != dt.timedelta(seconds=seconds):
            raise ValidationError(
                "interval is not one epoch long; expected end - start = epoch_duration_seconds",
                field=_join(where, "$.body.effective_time_frame"),
            )
    step = epochs[0] * NS_PER_SECOND
    starts, _, values = _times(points)
    order = np.argsort(starts, kind="stable")
    locations = [points[i][1] for i in order]
    slots, n_epochs = grid_slots(starts[order], step, lambda i: locations[i])
    return int(starts[order][0]), step, scatter(slots, n_epochs, values[order])


def _step_grid(
    points: list[tuple[DataPoint, str]],
    times: tuple[Int64Array, Int64Array, FloatArray],
    start: int,
    step: int,
    n_epochs: int,
) -> FloatArray:
    starts, ends, values = times
    intervals = np.stack([starts, ends], axis=1)
    _, first, counts = np.unique(intervals, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        repeated = intervals[first[counts > 1][0]]
        second = np.flatnonzero((intervals == repeated).all(axis=1))[1]
        raise ValidationError(
            "step-count interval repeated; expected each interval once",
            field=_join(points[int(second)][1], "$.body.effective_time_frame"),
        )
    per_epoch = spread_over_grid(starts, ends, values, start, step, n_epochs)
    seconds = np.where(ends > starts, (ends - starts) / NS_PER_SECOND, 1.0)
    covered = spread_over_grid(starts, ends, seconds, start, step, n_epochs) > 0
    result: FloatArray = np.where(covered, per_epoch, np.nan)
    return result
