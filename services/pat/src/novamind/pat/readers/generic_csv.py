"""The generic CSV: the format to use when a device has no reader of its own.

Format (UTF-8; ``,``, ``;`` or tab separated; blank lines ignored)::

    timestamp,counts
    2024-03-04T00:00:00,0
    2024-03-04T00:01:00,12

* Header: ``timestamp`` plus ``counts`` (activity counts per epoch) and/or ``steps`` (steps per
  epoch), optionally ``light`` (lux); names are case-insensitive, other columns are ignored.
  Without ``counts``, ``activity`` holds the steps and ``metadata["activity_unit"]`` is
  ``"steps"``. A header with none of ``counts``/``steps`` is rejected (wrong units).
* ``timestamp``: ISO 8601, the start of the epoch, either all without offset (naive local time,
  kept naive) or all with an offset (``Z``, ``+01:00``). With offsets the index is timezone-aware
  in the offset of the first row; later rows with another offset (a daylight-saving change) are
  converted to it, so the epochs stay regular in absolute time.
* Epochs must be regular: the epoch is the most common spacing (1 s to 1 h); a gap of whole
  epochs becomes NaN; a duplicated, decreasing or off-grid timestamp is an error naming its line.
* Empty cells and ``NaN`` mean missing (NaN); values must be non-negative numbers.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from novamind.core.errors import ValidationError
from novamind.pat.domain.recording import DeviceInfo, Recording
from novamind.pat.readers._grid import (
    Int64Array,
    Locate,
    build_recording,
    check_increasing,
    grid_slots,
    infer_epoch_ns,
    scatter,
    to_ns,
)
from novamind.pat.readers._numbers import parse_numbers
from novamind.pat.readers._source import Source, load, text_lines

#: A clock time followed by a UTC offset ("...T08:00:00+01:00", "... 08:00Z").
_OFFSET_SUFFIX = r"[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
_VALUE_COLUMNS = {"counts": "activity counts per epoch", "steps": "steps per epoch", "light": "light in lux"}


def header_cells(line: str) -> list[str] | None:
    """The lower-cased header cells if ``line`` is a generic-CSV header, else None."""
    for delimiter in (",", ";", "\t"):
        cells = [c.strip().lower() for c in line.split(delimiter)]
        if len(cells) >= 2 and cells[0].lstrip("\ufeff") == "timestamp":
            return cells
    return None


def read_generic_csv(path: str | Path) -> Recording:
    """Read a generic ``timestamp,counts`` / ``timestamp,steps`` CSV into a :class:`Recording`.

    See the module documentation for the format. Raises ValidationError (naming file and line)
    for an empty or binary file, a missing or wrong header, unparseable timestamps, mixed naive
    and offset timestamps, duplicated, decreasing or off-grid timestamps, and values that are
    not non-negative numbers.
    """
    return parse_generic_csv(load(path))


def parse_generic_csv(source: Source) -> Recording:
    """:func:`read_generic_csv` on bytes already loaded."""
    lines = text_lines(source)
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if not numbered:
        raise ValidationError("file is empty", field=source.name)
    header_line, header = numbered[0]
    delimiter = next((d for d in (",", ";", "\t") if d in header), ",")
    columns = [c.strip().lower().lstrip("\ufeff") for c in header.split(delimiter)]
    if not columns or columns[0] != "timestamp":
        raise ValidationError(
            "missing header; expected first row 'timestamp,counts' or 'timestamp,steps'",
            field=source.line(header_line),
        )
    for name in columns:
        if columns.count(name) > 1 and name:
            raise ValidationError("column named twice in the header", field=source.line(header_line))
    if "counts" not in columns and "steps" not in columns:
        raise ValidationError(
            "no 'counts' or 'steps' column; expected activity counts or steps per epoch",
            field=source.line(header_line),
        )
    body = numbered[1:]
    if not body:
        raise ValidationError("no data rows after the header", field=source.line(header_line))
    line_numbers = np.asarray([n for n, _ in body], dtype=np.int64)

    def locate(row: int) -> str:
        return source.line(int(line_numbers[min(row, line_numbers.size - 1)]))

    rows = [_split(text, delimiter) for _, text in body]
    widths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    wrong = np.flatnonzero(widths != len(columns))
    if wrong.size:
        raise ValidationError(
            f"row has a different number of cells than the header ({len(columns)})",
            field=locate(int(wrong[0])),
        )

    def column(name: str) -> list[str]:
        i = columns.index(name)
        return [r[i] for r in rows]

    times, offset = _timestamps(column("timestamp"), locate)
    values = {
        name: parse_numbers(column(name), what, locate)
        for name, what in _VALUE_COLUMNS.items()
        if name in columns
    }
    check_increasing(times, locate)
    step = infer_epoch_ns(times, source.at("column timestamp"))
    slots, n_epochs = grid_slots(times, step, locate)
    on_grid = {name: scatter(slots, n_epochs, v) for name, v in values.items()}
    metadata = {"activity_unit": "counts" if "counts" in on_grid else "steps"}
    return build_recording(
        start_ns=int(times[0]),
        step_ns=step,
        activity=on_grid["counts"] if "counts" in on_grid else on_grid["steps"],
        steps=on_grid.get("steps"),
        light=on_grid.get("light"),
        offset_seconds=offset,
        device=DeviceInfo(format="generic CSV"),
        metadata=metadata,
        where=source.name,
    )


def _split(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return []


def _timestamps(cells: list[str], locate: Locate) -> tuple[Int64Array, int | None]:
    """int64 ns (wall clock if naive, UTC if offset) and the first row's offset in seconds."""
    text = pd.Series(cells, dtype=object).astype(str).str.strip()
    has_offset = text.str.contains(_OFFSET_SUFFIX, regex=True).to_numpy()
    if has_offset.any() and not has_offset.all():
        mixed = int(np.argmax(has_offset != has_offset[0]))
        raise ValidationError(
            "timestamp offset inconsistent; expected all timestamps with a UTC offset or all without",
            field=locate(mixed),
        )
    aware = bool(has_offset[0])
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=aware)
    invalid = parsed.isna().to_numpy()
    if invalid.any():
        raise ValidationError(
            "timestamp not understood; expected ISO 8601 like 2024-03-04T00:01:00",
            field=locate(int(np.argmax(invalid))),
        )
    offset = None
    if aware:
        try:
            delta = pd.Timestamp(text.iloc[0]).utcoffset()
        except ValueError as exc:
            raise ValidationError("timestamp not understood; expected ISO 8601", field=locate(0)) from exc
        offset = int(delta.total_seconds()) if delta is not None else 0
    return to_ns(parsed, locate(0)), offset
