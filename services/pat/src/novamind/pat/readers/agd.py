"""ActiGraph ``.agd`` files (ActiLife epoch exports: GT3X+, wGT3X-BT, ActiSleep ...).

An ``.agd`` is an SQLite database. ``settings`` holds ``settingName``/``settingValue`` pairs
(``epochlength`` in seconds, ``devicename``, ``deviceserial``, optionally ``timezone``);
``data`` holds one row per epoch: ``dataTimestamp`` in .NET ticks (100 ns since 0001-01-01, local
clock time), ``axis1``-``axis3`` counts, and optionally ``steps`` and ``lux``.

* ``activity`` is the vector magnitude ``sqrt(axis1² + axis2² + axis3²)`` in counts per epoch,
  as pyActigraphy and ActiLife's "Vector Magnitude" use; a single-axis file uses ``axis1``.
  ``metadata["count_method"]`` says which.
* ``steps`` (steps per epoch) and ``light`` (lux) are filled when the columns exist.
* Timestamps are naive local time; when ``settings`` has a ``timezone`` offset the index is
  timezone-aware in that fixed offset. Whole-epoch gaps become NaN.

The database is opened read-only; the subject name and other subject settings are not read.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import urllib.parse
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from novamind.core.errors import ValidationError
from novamind.pat.domain.recording import DeviceInfo, Recording
from novamind.pat.readers._grid import (
    NS_PER_SECOND,
    FloatArray,
    build_recording,
    check_increasing,
    epoch_ns,
    grid_slots,
    infer_epoch_ns,
    scatter,
)

SQLITE_MAGIC = b"SQLite format 3\x00"
#: .NET ticks (100 ns) at 1970-01-01T00:00:00.
_UNIX_EPOCH_TICKS = 621_355_968_000_000_000
_LOW_TICKS = _UNIX_EPOCH_TICKS + pd.Timestamp("1678-01-01").value // 100
_HIGH_TICKS = _UNIX_EPOCH_TICKS + pd.Timestamp("2261-12-31").value // 100
_OFFSET = re.compile(r"^\s*([+-])?(\d{1,2}):(\d{2})(?::00)?\s*$")
_VALUE_COLUMNS = ("axis1", "axis2", "axis3", "steps", "lux")
_FETCH_ROWS = 100_000


def read_agd(path: str | Path) -> Recording:
    """Read an ActiGraph ``.agd`` database into a :class:`Recording` (counts per epoch).

    Raises ValidationError (naming the table, setting or row) for a file that is not SQLite,
    a corrupt database, missing ``settings``/``data`` tables or columns, a bad epoch length,
    non-numeric or negative values, and duplicated, decreasing or off-grid timestamps.
    """
    file = Path(path)
    name = file.name or str(file)
    try:
        with file.open("rb") as handle:
            magic = handle.read(len(SQLITE_MAGIC))
    except FileNotFoundError as exc:
        raise ValidationError("file not found", field=name) from exc
    except OSError as exc:
        raise ValidationError(f"file could not be read ({type(exc).__name__})", field=name) from exc
    if not magic:
        raise ValidationError("file is empty", field=name)
    if magic != SQLITE_MAGIC:
        raise ValidationError("not an SQLite database; expected an ActiGraph .agd file", field=name)
    uri = f"file:{urllib.parse.quote(str(file.resolve()))}?mode=ro&immutable=1"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
            return _read(connection, name)
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        # A corrupt page can leave invalid UTF-8 in a text column; sqlite3 raises while decoding it.
        raise ValidationError(
            f"corrupt or unreadable SQLite database ({type(exc).__name__})", field=name
        ) from exc


def _read(connection: sqlite3.Connection, name: str) -> Recording:
    tables = {str(row[0]) for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for table in ("settings", "data"):
        if table not in tables:
            raise ValidationError(f"table {table!r} missing; expected an ActiGraph .agd file", field=name)
    settings = {
        str(key).strip().lower(): str(value).strip()
        for key, value in connection.execute("SELECT settingName, settingValue FROM settings")
        if key is not None and value is not None
    }
    columns = {str(row[1]) for row in connection.execute("PRAGMA table_info(data)")}
    for column in ("dataTimestamp", "axis1"):
        if column not in columns:
            raise ValidationError(f"column {column!r} missing", field=f"{name} table data")
    present = [c for c in _VALUE_COLUMNS if c in columns]

    # Refuse text or blobs where numbers belong rather than letting SQLite cast them silently.
    checks = ["typeof(dataTimestamp) != 'integer'"] + [
        f"typeof({c}) NOT IN ('integer', 'real', 'null')" for c in present
    ]
    for check in checks:
        bad = connection.execute(
            "SELECT n FROM (SELECT row_number() OVER (ORDER BY rowid) AS n, * FROM data) "
            f"WHERE {check} LIMIT 1"
        ).fetchone()
        if bad is not None:
            column = check.split("(")[1].split(")")[0]
            raise ValidationError(
                f"column {column} holds a non-numeric value; expected numbers",
                field=f"{name} table data row {bad[0]}",
            )
    cursor = connection.execute(f"SELECT dataTimestamp, {', '.join(present)} FROM data ORDER BY rowid")
    tick_parts: list[npt.NDArray[np.int64]] = []
    value_parts: list[FloatArray] = []
    # Converted chunk by chunk: a month of 1-second epochs as Python tuples would not fit.
    while rows := cursor.fetchmany(_FETCH_ROWS):
        tick_parts.append(np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows)))
        value_parts.append(
            np.array([row[1:] for row in rows], dtype=np.float64).reshape(len(rows), len(present))
        )

    def locate(row: int) -> str:
        return f"{name} table data row {row + 1}"

    if not tick_parts:
        raise ValidationError("no epochs in table data", field=f"{name} table data")
    ticks = np.concatenate(tick_parts)
    values = np.concatenate(value_parts)
    channels: dict[str, FloatArray] = {c: values[:, i] for i, c in enumerate(present)}

    outside = np.flatnonzero((ticks < _LOW_TICKS) | (ticks > _HIGH_TICKS))
    if outside.size:
        raise ValidationError(
            "timestamp outside the supported dates 1678-2261", field=locate(int(outside[0]))
        )
    times: npt.NDArray[np.int64] = (ticks - _UNIX_EPOCH_TICKS) * 100
    for column, series in channels.items():
        negative = np.flatnonzero(series < 0)
        if negative.size:
            raise ValidationError(
                f"negative value in {column}; expected zero or more", field=locate(int(negative[0]))
            )
        if np.isinf(series).any():
            raise ValidationError(
                f"infinite value in {column}; expected a finite number",
                field=locate(int(np.argmax(np.isinf(series)))),
            )

    check_increasing(times, locate)
    if "epochlength" in settings:
        where = f"{name} settings epochlength"
        try:
            seconds = float(settings["epochlength"])
        except ValueError as exc:
            raise ValidationError("epoch length is not a number of seconds", field=where) from exc
        step = epoch_ns(seconds, where)
    else:
        step = infer_epoch_ns(times, f"{name} table data")
    slots, n_epochs = grid_slots(times, step, locate)

    if {"axis2", "axis3"} <= channels.keys():
        counts = np.sqrt(channels["axis1"] ** 2 + channels["axis2"] ** 2 + channels["axis3"] ** 2)
        method = "vector magnitude"
    else:
        counts = channels["axis1"]
        method = "axis1"
    offset = _offset_seconds(settings.get("timezone"))
    metadata = {"count_method": method}
    for key, label in (("deviceversion", "firmware"), ("filter", "filter")):
        if settings.get(key):
            metadata[label] = settings[key]
    return build_recording(
        start_ns=int(times[0]) - (offset or 0) * NS_PER_SECOND,
        step_ns=step,
        activity=scatter(slots, n_epochs, counts),
        steps=scatter(slots, n_epochs, channels["steps"]) if "steps" in channels else None,
        light=scatter(slots, n_epochs, channels["lux"]) if "lux" in channels else None,
        offset_seconds=offset,
        device=DeviceInfo(
            format="AGD",
            manufacturer="ActiGraph",
            model=settings.get("devicename", ""),
            serial=settings.get("deviceserial", ""),
        ),
        metadata=metadata,
        where=name,
    )


def _offset_seconds(text: str | None) -> int | None:
    """A ``timezone`` setting such as ``-05:00:00`` in seconds; None when absent or not an offset
    (ActiLife versions differ here, and the naive local times stay correct without it)."""
    match = _OFFSET.match(text or "")
    if match is None or int(match.group(2)) > 14 or int(match.group(3)) > 59:
        return None
    seconds = int(match.group(2)) * 3600 + int(match.group(3)) * 60
    return -seconds if match.group(1) == "-" else seconds
