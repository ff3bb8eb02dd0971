"""Philips Respironics Actiware CSV exports (Actiwatch 2, Spectrum, ...), English, French, German.

An export is a block of ``"Key:","value"`` properties and statistics, then the epoch-by-epoch
table. The table is found by its header row, the first row whose cells include a date, a time
and an activity column under any of the names in :data:`COLUMN_NAMES` (matched ignoring case
and accents). Either ``,`` or ``;`` separates cells; with ``;`` the decimal separator is ``,``.

* Timestamps come from the table's date and time cells (start of epoch). Dates may be
  ``DD/MM/YYYY``, ``MM/DD/YYYY``, ``DD.MM.YYYY`` or ``YYYY-MM-DD``; when both day-first and
  month-first readings give a regular series, day-first wins and ``metadata["date_order"]``
  says the order was ambiguous. Times are 24-hour or 12-hour with AM/PM.
* The epoch is the header's "Epoch Length" when present (it must agree with the table), else
  the table's most common spacing. Whole-epoch gaps become NaN.
* ``activity`` is the Activity column in counts per epoch; ``NaN`` cells (excluded or off-wrist
  epochs in Actiware) stay NaN. ``light`` is the White Light column in lux when present.
* When the header states a "Time Zone Offset" the index is timezone-aware in that fixed offset
  (the device clock does not follow daylight saving, so one offset holds for the whole file);
  otherwise it is naive local time.

Subject properties (identity, name, birth date ...) are never read into the recording.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from novamind.core.errors import ValidationError
from novamind.pat.domain.recording import DeviceInfo, Recording
from novamind.pat.readers._grid import (
    NS_PER_SECOND,
    Int64Array,
    Locate,
    build_recording,
    check_increasing,
    epoch_ns,
    grid_slots,
    infer_epoch_ns,
    scatter,
    to_ns,
)
from novamind.pat.readers._numbers import parse_numbers
from novamind.pat.readers._source import Source, load, require_final_line_end, text_lines

#: Table column role -> header names in English, French and German (normalised spelling).
COLUMN_NAMES: dict[str, frozenset[str]] = {
    "line": frozenset({"line", "ligne", "zeile"}),
    "date": frozenset({"date", "datum"}),
    "time": frozenset({"time", "heure", "zeit", "uhrzeit"}),
    "activity": frozenset({"activity", "activite", "aktivitat", "aktivitaet"}),
    "light": frozenset({"white light", "lumiere blanche", "weisses licht", "weiss licht", "weisslicht"}),
}

#: Header property role -> property names (normalised, without the trailing colon).
PROPERTY_NAMES: dict[str, frozenset[str]] = {
    "epoch": frozenset(
        {"epoch length", "longueur de la periode", "duree de l'epoque", "epochenlange", "epochenlaenge"}
    ),
    "serial": frozenset(
        {
            "actiwatch serial number",
            "numero de serie de l'actiwatch",
            "actiwatch-seriennummer",
            "actiwatch seriennummer",
            "seriennummer",
        }
    ),
    "model": frozenset({"actiwatch type", "type d'actiwatch", "actiwatch-typ", "actiwatch typ"}),
    "firmware": frozenset(
        {"actiwatch firmware version", "version du micrologiciel de l'actiwatch", "actiwatch-firmwareversion"}
    ),
    "utc_offset": frozenset(
        {"time zone offset", "decalage du fuseau horaire", "decalage horaire", "zeitzonenverschiebung"}
    ),
}

_DATE_FORMATS = (
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%Y-%m-%d",
    "%d-%m-%Y",
    "%d/%m/%y",
    "%m/%d/%y",
    "%d.%m.%y",
)
_TIME_FORMATS = ("%H:%M:%S", "%I:%M:%S %p", "%H:%M", "%I:%M %p")
_OFFSET = re.compile(r"^\s*([+-])?(\d{1,2}):(\d{2})\s*$")
#: How far into the file the table header may start (lines). Real exports: ~150.
_HEADER_SEARCH_LINES = 5000
_DAY_NS = 86_400 * NS_PER_SECOND


def normalise(cell: str) -> str:
    """Lower-case, accents stripped, typographic apostrophes straightened, spaces collapsed."""
    text = unicodedata.normalize("NFKD", cell.replace("\u2019", "'").replace("\ufeff", ""))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return " ".join(text.split())


@dataclass(frozen=True, slots=True)
class _Table:
    header_line: int  # index into lines
    delimiter: str
    columns: dict[str, int]
    width: int  # header cells, trailing empty ones (from a trailing delimiter) not counted


def _split(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return []


def _find_table(lines: Sequence[str]) -> _Table | None:
    for number, line in enumerate(lines[:_HEADER_SEARCH_LINES]):
        for delimiter in (",", ";", "\t"):
            if delimiter not in line:
                continue
            cells = [normalise(c) for c in _split(line, delimiter)]
            columns: dict[str, int] = {}
            for role, names in COLUMN_NAMES.items():
                for i, cell in enumerate(cells):
                    if cell in names:
                        columns[role] = i
                        break
            if {"date", "time", "activity"} <= columns.keys():
                while cells and not cells[-1]:
                    cells.pop()
                return _Table(number, delimiter, columns, len(cells))
    return None


def looks_like_actiware(lines: Sequence[str]) -> bool:
    """True when an epoch-by-epoch table header appears in ``lines``."""
    return _find_table(lines) is not None


def read_actiware_csv(path: str | Path) -> Recording:
    """Read an Actiware CSV export into a :class:`Recording` (counts per epoch, lux).

    Raises ValidationError (naming file and line) for an empty or binary file, a missing table
    header, a truncated file (last line without its line break), rows without the date, time
    or activity cells, unparseable dates, duplicated or decreasing timestamps, epochs off the
    grid, a header epoch that disagrees with the table, and activity or light cells that are
    not non-negative numbers.
    """
    return parse_actiware_csv(load(path))


def parse_actiware_csv(source: Source) -> Recording:
    """:func:`read_actiware_csv` on bytes already loaded."""
    lines = text_lines(source)
    table = _find_table(lines)
    if table is None:
        raise ValidationError(
            "no epoch-by-epoch table found; expected a header row with Date, Time and Activity "
            "columns (or Date/Heure/Activité, Datum/Zeit/Aktivität)",
            field=source.name,
        )
    require_final_line_end(source, len(lines))
    properties = _properties(lines[: table.header_line], table.delimiter)

    numbers: list[int] = []
    rows: list[list[str]] = []
    for index in range(table.header_line + 1, len(lines)):
        if lines[index].strip():
            numbers.append(index + 1)
            rows.append(_split(lines[index], table.delimiter))
    line_numbers = np.asarray(numbers, dtype=np.int64)

    def locate(row: int) -> str:
        if line_numbers.size == 0:
            return source.line(table.header_line + 2)
        return source.line(int(line_numbers[min(row, line_numbers.size - 1)]))

    if not rows:
        raise ValidationError("the epoch-by-epoch table has no rows", field=locate(0))
    needed = table.width
    widths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    short = np.flatnonzero(widths < needed)
    if short.size:
        raise ValidationError(
            f"row has too few cells; expected {needed} as in the table header",
            field=locate(int(short[0])),
        )

    def column(role: str) -> list[str]:
        i = table.columns[role]
        return [r[i] for r in rows]

    times, ambiguous = _timestamps(column("date"), column("time"), locate)
    decimal_comma = table.delimiter == ";"
    counts = parse_numbers(
        column("activity"), "activity counts per epoch", locate, decimal_comma=decimal_comma
    )
    light = None
    if "light" in table.columns:
        light = parse_numbers(column("light"), "white light in lux", locate, decimal_comma=decimal_comma)
        if np.isnan(light).all():
            light = None

    check_increasing(times, locate)
    header_epoch = properties.get("epoch")
    if header_epoch is not None:
        step = _header_epoch_ns(header_epoch, source)
    else:
        step = infer_epoch_ns(times, source.at("table"))
    slots, n_epochs = grid_slots(times, step, locate)

    offset = None
    metadata: dict[str, str] = {}
    if "utc_offset" in properties:
        offset = _offset_seconds(properties["utc_offset"][0], source.line(properties["utc_offset"][1]))
    if "firmware" in properties:
        metadata["firmware"] = properties["firmware"][0]
    if ambiguous:
        metadata["date_order"] = "ambiguous; read day-first"
    start_ns = int(times[0]) - (offset or 0) * NS_PER_SECOND
    return build_recording(
        start_ns=start_ns,
        step_ns=step,
        activity=scatter(slots, n_epochs, counts),
        light=None if light is None else scatter(slots, n_epochs, light),
        offset_seconds=offset,
        device=DeviceInfo(
            format="Actiware CSV",
            manufacturer="Philips Respironics",
            model=properties.get("model", ("", 0))[0],
            serial=properties.get("serial", ("", 0))[0],
        ),
        metadata=metadata,
        where=source.name,
    )


def _properties(lines: Iterable[str], delimiter: str) -> dict[str, tuple[str, int]]:
    """Known header properties: role -> (first value cell, 1-based line)."""
    found: dict[str, tuple[str, int]] = {}
    for number, line in enumerate(lines, start=1):
        cells = _split(line, delimiter)
        if len(cells) < 2:
            continue
        key = normalise(cells[0]).rstrip(":").strip()
        for role, names in PROPERTY_NAMES.items():
            if key in names and role not in found:
                found[role] = (cells[1].strip(), number)
    return found


def _header_epoch_ns(value: tuple[str, int], source: Source) -> int:
    text, number = value
    where = source.line(number)
    parts = text.strip().split(":")
    try:
        if len(parts) == 1:
            seconds = float(parts[0].replace(",", "."))
        elif len(parts) in (2, 3):
            seconds = 0.0
            for part in parts:
                seconds = seconds * 60 + int(part)
        else:
            raise ValueError(text)
    except ValueError as exc:
        raise ValidationError("epoch length is not a number of seconds", field=where) from exc
    return epoch_ns(seconds, where)


def _offset_seconds(text: str, where: str) -> int:
    match = _OFFSET.match(text)
    if match is None:
        raise ValidationError("time zone offset malformed; expected +HH:MM", field=where)
    hours, minutes = int(match.group(2)), int(match.group(3))
    if hours > 14 or minutes > 59:
        raise ValidationError("time zone offset out of range; expected -12:00 to +14:00", field=where)
    seconds = hours * 3600 + minutes * 60
    return -seconds if match.group(1) == "-" else seconds


def _timestamps(dates: list[str], times: list[str], locate: Locate) -> tuple[Int64Array, bool]:
    """Epoch starts as int64 ns wall-clock time, and whether the day/month order was ambiguous.

    Tries the date and time formats the first row fits; keeps the first (day-first before
    month-first) under which every row parses and times increase by at most a day per row.
    """
    first = f"{dates[0].strip()} {times[0].strip()}"
    candidates = [f"{d} {t}" for d in _DATE_FORMATS for t in _TIME_FORMATS if _fits(first, f"{d} {t}")]
    if not candidates:
        raise ValidationError(
            "date or time not understood; expected e.g. 31/12/2024 and 23:59:30", field=locate(0)
        )
    combined = (
        pd.Series(dates, dtype=object).astype(str).str.strip()
        + " "
        + pd.Series(times, dtype=object).astype(str).str.strip()
    )
    plausible: list[Int64Array] = []
    complete: Int64Array | None = None
    latest_failure = -1
    for fmt in candidates:
        parsed = pd.to_datetime(combined, format=fmt, errors="coerce")
        invalid = parsed.isna().to_numpy()
        if invalid.any():
            latest_failure = max(latest_failure, int(np.argmax(invalid)))
            continue
        values = to_ns(parsed, locate(0))
        complete = values if complete is None else complete
        steps = np.diff(values)
        if np.all((steps > 0) & (steps <= _DAY_NS)):
            plausible.append(values)
    if plausible:
        return plausible[0], len(plausible) > 1 and not np.array_equal(plausible[0], plausible[1])
    if complete is not None:
        return complete, False  # every row parses; the grid check names the irregular line
    raise ValidationError(
        "date or time not understood; expected the same format as the first row", field=locate(latest_failure)
    )


def _fits(text: str, fmt: str) -> bool:
    try:
        dt.datetime.strptime(text, fmt)
    except ValueError:
        return False
    return True
