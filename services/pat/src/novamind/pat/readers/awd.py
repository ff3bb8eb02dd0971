"""CamNtech Actiwatch ``.AWD`` files (Actiwatch-4, -7, -L, -L-Plus, -Mini, -S, -T, -Insomnia).

Layout: seven header lines, then one epoch per line::

    line 1  subject identifier          (ignored: PHI)
    line 2  start date, e.g. 23-Jan-1918
    line 3  start time, e.g. 13:58       (local clock time of the first epoch's start)
    line 4  epoch code: 1 = 15 s, 2 = 30 s, 4 = 1 min, 8 = 2 min, 20 = 5 min,
                        81 = 2 s, C1 = 5 s, C2 = 10 s
    line 5  age                         (ignored)
    line 6  device serial; its first letter is the model (V = Actiwatch-4, L = Actiwatch-L ...)
    line 7  sex                         (ignored)
    line 8+ activity count [, second channel] [marker "M"]

The second channel is white light (lux) on the models that have a light sensor (D, L, P); on
the sound, temperature and pressure models it is not light and is not read. Timestamps are naive
local time (the file has no zone). Counts are activity counts per epoch.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd

from novamind.core.errors import ValidationError
from novamind.pat.domain.recording import DeviceInfo, Recording
from novamind.pat.readers._grid import NS_PER_SECOND, build_recording
from novamind.pat.readers._numbers import parse_numbers
from novamind.pat.readers._source import Source, load, require_final_line_end, text_lines

HEADER_LINES = 7

#: Epoch code (header line 4) -> epoch length in seconds, as the Actiwatch software writes it.
EPOCH_CODES: dict[str, int] = {"1": 15, "2": 30, "4": 60, "8": 120, "20": 300, "81": 2, "C1": 5, "C2": 10}

#: First letter of the serial -> model name.
MODELS: dict[str, str] = {
    "D": "Actiwatch-7",
    "I": "Actiwatch-Insomnia",
    "L": "Actiwatch-L",
    "M": "Actiwatch-Mini",
    "P": "Actiwatch-L-Plus",
    "S": "Actiwatch-S",
    "T": "Actiwatch-T",
    "V": "Actiwatch-4",
}
_LIGHT_MODELS = frozenset({"D", "L", "P"})
_OTHER_CHANNEL = {"I": "pressure", "S": "sound", "T": "temperature"}

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, start=1)}
_DATE = re.compile(r"^\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}|\d{2})\s*$")
_TIME = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


def looks_like_awd(lines: list[str]) -> bool:
    """True when header lines 2-4 have the AWD date, time and epoch-code shapes."""
    return (
        len(lines) > 3
        and _DATE.match(lines[1]) is not None
        and _TIME.match(lines[2]) is not None
        and lines[3].strip().upper() in EPOCH_CODES
    )


def read_awd(path: str | Path) -> Recording:
    """Read an Actiwatch ``.AWD`` file into a :class:`Recording` of counts per epoch.

    The index is naive local time from the header's start date and time; the epoch comes from
    the header's epoch code; ``light`` (lux) is set on models with a light sensor.
    Raises ValidationError (with file and line) for an empty or binary file, a truncated file
    (header short, or the last line cut without its line break), a malformed header, an unknown
    epoch code, no data lines, or a count that is not a non-negative number. A file cut exactly
    at a line break cannot be told from a shorter recording.
    """
    return parse_awd(load(path))


def parse_awd(source: Source) -> Recording:
    """:func:`read_awd` on bytes already loaded."""
    lines = text_lines(source)
    while lines and lines[-1].strip(" \t\x1a") == "":
        lines.pop()  # trailing blank lines and the DOS end-of-file mark
    if len(lines) < HEADER_LINES:
        raise ValidationError(
            f"truncated header: expected {HEADER_LINES} header lines, found {len(lines)}",
            field=source.line(len(lines)),
        )
    require_final_line_end(source, len(lines))
    start = _start_time(lines, source)
    code = lines[3].strip().upper()
    if code not in EPOCH_CODES:
        raise ValidationError(
            "unknown epoch code; expected one of "
            + ", ".join(f"{c} ({s} s)" for c, s in EPOCH_CODES.items()),
            field=source.line(4),
        )
    epoch_seconds = EPOCH_CODES[code]
    serial = lines[5].strip()
    letter = serial[:1].upper()

    data = lines[HEADER_LINES:]
    if not data:
        raise ValidationError("no epochs after the header; expected one count per line", field=source.line(8))

    def locate(row: int) -> str:
        return source.line(HEADER_LINES + 1 + row)

    tokens = pd.Series(data, dtype=object).str.replace(",", " ", regex=False).str.split()
    first = tokens.str[0]
    empty = first.isna().to_numpy()
    if empty.any():
        raise ValidationError(
            "empty data line; expected an activity count", field=locate(int(np.argmax(empty)))
        )
    counts = parse_numbers(first, "an activity count", locate, allow_missing=False)

    light = None
    metadata = {"epoch_code": code}
    second = tokens.str[1]
    if letter in _LIGHT_MODELS:
        # A marker may sit where light would be on a line without light: treat it as missing.
        numeric = pd.to_numeric(second, errors="coerce")
        light_cells = second.where(numeric.notna() | second.isna(), None)
        light = parse_numbers(light_cells, "a light level in lux", locate)
    elif letter in _OTHER_CHANNEL:
        metadata["unread_channel"] = _OTHER_CHANNEL[letter]

    start_ns = int((start - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)) * 1000
    return build_recording(
        start_ns=start_ns,
        step_ns=epoch_seconds * NS_PER_SECOND,
        activity=counts,
        light=light,
        device=DeviceInfo(
            format="AWD", manufacturer="CamNtech", model=MODELS.get(letter, "Actiwatch"), serial=serial
        ),
        metadata=metadata,
        where=source.name,
    )


def _start_time(lines: list[str], source: Source) -> dt.datetime:
    date = _DATE.match(lines[1])
    if date is None or date.group(2).lower() not in _MONTHS:
        raise ValidationError(
            "malformed start date; expected DD-Mon-YYYY (e.g. 05-Jan-2024)", field=source.line(2)
        )
    time = _TIME.match(lines[2])
    if time is None:
        raise ValidationError("malformed start time; expected HH:MM or HH:MM:SS", field=source.line(3))
    year = int(date.group(3))
    if len(date.group(3)) == 2:
        year += 2000 if year < 70 else 1900
    try:
        day = dt.date(year, _MONTHS[date.group(2).lower()], int(date.group(1)))
    except ValueError as exc:
        raise ValidationError("start date is not a calendar date", field=source.line(2)) from exc
    try:
        clock = dt.time(int(time.group(1)), int(time.group(2)), int(time.group(3) or 0))
    except ValueError as exc:
        raise ValidationError("start time is not a clock time", field=source.line(3)) from exc
    if not 1678 <= year <= 2261:
        raise ValidationError("start date out of the supported range 1678-2261", field=source.line(2))
    return dt.datetime.combine(day, clock)
