"""Apple Health ``export.xml``: step count, heart rate and sleep analysis.

The export is streamed (SAX, through defusedxml, which refuses entity expansion and external
references), so a multi-gigabyte export is read in bounded memory: only the three record types
below are kept, converted to arrays in chunks.

* ``HKQuantityTypeIdentifierStepCount`` (unit ``count``) becomes a 1-minute step
  :class:`Recording`: ``activity`` and ``steps`` both hold steps per minute and
  ``metadata["activity_unit"]`` is ``"steps"``. Each record's steps are spread uniformly over
  its ``[startDate, endDate)`` interval. iPhone and Watch both record the same steps, so only
  one source is used: the one with the most step records (``metadata["step_sources"]`` says how
  many there were). Minutes without a record hold 0, because Health writes step samples only
  when steps occur; deciding non-wear is the preprocessing layer's job.
* ``HKQuantityTypeIdentifierHeartRate`` (unit ``count/min``) becomes a series of beats per
  minute at each record's start, from all sources, sorted by time.
* ``HKCategoryTypeIdentifierSleepAnalysis`` becomes ``(start, end, value)`` intervals, where
  ``value`` is Health's category (``HKCategoryValueSleepAnalysisInBed``, ``...AsleepCore`` ...).

Times: Health writes each record with the device's UTC offset at the time. All outputs are
timezone-aware in one fixed offset, that of the first step record (or of the first heart-rate
or sleep record when there are no steps); records written under another offset (a
daylight-saving change, travel) are converted to it, so the minute grid stays regular.
Source names (often the owner's name) are never kept.
"""

from __future__ import annotations

import datetime as dt
import xml.sax
import xml.sax.handler
import xml.sax.xmlreader
from dataclasses import dataclass, field
from pathlib import Path

import defusedxml
import defusedxml.sax
import numpy as np
import pandas as pd

from novamind.core.errors import ValidationError
from novamind.pat.domain.recording import DeviceInfo, Recording
from novamind.pat.readers._grid import (
    MAX_EPOCHS,
    NS_PER_SECOND,
    FloatArray,
    Int64Array,
    Locate,
    build_recording,
    fixed_offset,
    spread_over_grid,
)
from novamind.pat.readers._numbers import parse_numbers

STEP_COUNT = "HKQuantityTypeIdentifierStepCount"
HEART_RATE = "HKQuantityTypeIdentifierHeartRate"
SLEEP_ANALYSIS = "HKCategoryTypeIdentifierSleepAnalysis"
_UNITS = {STEP_COUNT: "count", HEART_RATE: "count/min"}
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"
_MINUTE_NS = 60 * NS_PER_SECOND
_EARLIEST = pd.Timestamp("1678-01-01", tz="UTC")
_LATEST = pd.Timestamp("2261-12-31", tz="UTC")
#: Records converted to arrays at a time; bounds the memory held as Python strings.
_CHUNK = 50_000


@dataclass(frozen=True)
class AppleHealthExport:
    """What :func:`read_apple_health` keeps from an export.

    ``recording``: steps per minute (None when the export has no step counts).
    ``heart_rate``: beats per minute indexed by sample time (empty when none).
    ``sleep``: ``(start, end, category)`` intervals sorted by start.
    """

    recording: Recording | None
    heart_rate: pd.Series
    sleep: list[tuple[pd.Timestamp, pd.Timestamp, str]] = field(default_factory=list)


@dataclass
class _Columns:
    """Records of one type, buffered as text and converted to arrays every :data:`_CHUNK`."""

    what: str
    name: str
    start: list[str] = field(default_factory=list)
    end: list[str] = field(default_factory=list)
    value: list[str] = field(default_factory=list)
    line: list[int] = field(default_factory=list)
    source: list[int] = field(default_factory=list)
    parts: list[tuple[Int64Array, Int64Array, FloatArray, Int64Array, Int64Array]] = field(
        default_factory=list
    )
    first_offset: int | None = None

    def add(self, start: str, end: str, value: str, line: int, source: int) -> None:
        if self.first_offset is None:
            self.first_offset = _offset_seconds(start, f"{self.name} line {line}")
        self.start.append(start)
        self.end.append(end)
        self.value.append(value)
        self.line.append(line)
        self.source.append(source)
        if len(self.start) >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.start:
            return
        lines = np.asarray(self.line, dtype=np.int64)

        def locate(i: int) -> str:
            return f"{self.name} line {int(lines[i])}"

        starts = _parse_dates(self.start, locate, "startDate")
        ends = _parse_dates(self.end, locate, "endDate")
        backwards = np.flatnonzero(ends < starts)
        if backwards.size:
            raise ValidationError(
                "record ends before it starts; expected endDate >= startDate", field=locate(int(backwards[0]))
            )
        values = (
            parse_numbers(self.value, self.what, locate, allow_missing=False)
            if self.what
            else np.zeros(len(self.start))
        )
        self.parts.append((starts, ends, values, lines, np.asarray(self.source, dtype=np.int64)))
        self.start, self.end, self.value, self.line, self.source = [], [], [], [], []

    def arrays(self) -> tuple[Int64Array, Int64Array, FloatArray, Int64Array, Int64Array]:
        self.flush()
        if not self.parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0), empty, empty
        columns = zip(*self.parts, strict=True)
        start, end, value, line, source = (np.concatenate(c) for c in columns)
        return start, end, value, line, source


class _Handler(xml.sax.handler.ContentHandler):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.depth = 0
        self.locator: xml.sax.xmlreader.Locator | None = None
        self.sources: dict[str, int] = {}
        self.steps = _Columns("steps per record", name)
        self.heart = _Columns("heart rate in beats per minute", name)
        self.sleep = _Columns("", name)
        self.sleep_values: list[str] = []

    def setDocumentLocator(self, locator: xml.sax.xmlreader.Locator) -> None:
        self.locator = locator

    def line(self) -> int:
        number = self.locator.getLineNumber() if self.locator is not None else None
        return number or 0

    def startElement(self, name: str, attrs: xml.sax.xmlreader.AttributesImpl) -> None:
        self.depth += 1
        if self.depth == 1 and name != "HealthData":
            raise ValidationError(
                "root element is not <HealthData>; expected an Apple Health export.xml",
                field=f"{self.name} line {self.line()}",
            )
        if self.depth != 2 or name != "Record":
            return
        kind = attrs.get("type")
        if kind not in (STEP_COUNT, HEART_RATE, SLEEP_ANALYSIS):
            return
        line = self.line()
        where = f"{self.name} line {line}"
        start, end, value = attrs.get("startDate"), attrs.get("endDate"), attrs.get("value")
        if start is None or end is None or value is None:
            raise ValidationError("record lacks startDate, endDate or value", field=where)
        if kind in _UNITS and attrs.get("unit") != _UNITS[kind]:
            raise ValidationError(f"wrong unit; expected {_UNITS[kind]!r} for this record type", field=where)
        source = self.sources.setdefault(attrs.get("sourceName", ""), len(self.sources))
        if kind == STEP_COUNT:
            self.steps.add(start, end, value, line, source)
        elif kind == HEART_RATE:
            self.heart.add(start, end, value, line, source)
        else:
            self.sleep.add(start, end, "0", line, source)
            self.sleep_values.append(value)

    def endElement(self, name: str) -> None:
        self.depth -= 1


def read_apple_health(path: str | Path) -> AppleHealthExport:
    """Stream an Apple Health ``export.xml`` into steps per minute, heart rate and sleep.

    Units: steps per minute, beats per minute; times timezone-aware (see module docs).
    Raises ValidationError (naming file and line) for an empty file, malformed or unsafe XML,
    a root other than ``<HealthData>``, records without dates or value, a wrong unit,
    unparseable dates, an end before the start, and values that are not non-negative numbers.
    """
    file = Path(path)
    name = file.name or str(file)
    handler = _Handler(name)
    parser = defusedxml.sax.make_parser()
    parser.setContentHandler(handler)
    try:
        with file.open("rb") as stream:
            if not stream.read(1):
                raise ValidationError("file is empty", field=name)
            stream.seek(0)
            parser.parse(stream)
    except ValidationError:
        raise
    except FileNotFoundError as exc:
        raise ValidationError("file not found", field=name) from exc
    except xml.sax.SAXParseException as exc:
        raise ValidationError(
            "malformed XML; expected an Apple Health export.xml", field=f"{name} line {exc.getLineNumber()}"
        ) from exc
    except (xml.sax.SAXException, defusedxml.DefusedXmlException, ValueError, LookupError, OSError) as exc:
        raise ValidationError(
            f"XML refused ({type(exc).__name__}); expected an Apple Health export.xml", field=name
        ) from exc
    if handler.depth != 0:
        raise ValidationError("XML document incomplete", field=name)
    return _assemble(handler, name)


def _assemble(handler: _Handler, name: str) -> AppleHealthExport:
    offset = next(
        (c.first_offset for c in (handler.steps, handler.heart, handler.sleep) if c.first_offset is not None),
        0,
    )
    zone = fixed_offset(offset)
    recording = _step_recording(handler, name, offset)

    hr_start, _, hr_value, _, _ = handler.heart.arrays()
    order = np.argsort(hr_start, kind="stable")
    heart_rate = pd.Series(
        hr_value[order],
        index=pd.DatetimeIndex(pd.to_datetime(hr_start[order], unit="ns", utc=True)).tz_convert(zone),
        name="heart_rate",
        dtype=np.float64,
    )
    sleep_start, sleep_end, _, _, _ = handler.sleep.arrays()
    values = handler.sleep_values
    order = np.argsort(sleep_start, kind="stable")
    sleep = [
        (
            pd.Timestamp(int(sleep_start[i]), unit="ns", tz="UTC").tz_convert(zone),
            pd.Timestamp(int(sleep_end[i]), unit="ns", tz="UTC").tz_convert(zone),
            values[i],
        )
        for i in order
    ]
    return AppleHealthExport(recording=recording, heart_rate=heart_rate, sleep=sleep)


def _step_recording(handler: _Handler, name: str, offset: int) -> Recording | None:
    starts, ends, values, lines, sources = handler.steps.arrays()
    if starts.size == 0:
        return None
    counts = np.bincount(sources)
    chosen = sources == int(np.argmax(counts))
    starts, ends, values, lines = starts[chosen], ends[chosen], values[chosen], lines[chosen]
    # Floor and ceil to whole minutes of the local clock (offsets are whole minutes).
    local = offset * NS_PER_SECOND
    grid_start = (int(starts.min()) + local) // _MINUTE_NS * _MINUTE_NS - local
    grid_end = -((-(int(ends.max()) + local)) // _MINUTE_NS) * _MINUTE_NS - local
    n_epochs = max(1, (grid_end - grid_start) // _MINUTE_NS)
    if n_epochs > MAX_EPOCHS:
        raise ValidationError(
            f"step records span more than {MAX_EPOCHS} minutes; a date is far from the others",
            field=f"{name} line {int(lines[int(np.argmax(ends))])}",
        )
    per_minute = spread_over_grid(starts, ends, values, grid_start, _MINUTE_NS, n_epochs)
    return build_recording(
        start_ns=grid_start,
        step_ns=_MINUTE_NS,
        activity=per_minute,
        steps=per_minute.copy(),
        offset_seconds=offset,
        device=DeviceInfo(format="Apple Health", manufacturer="Apple"),
        metadata={
            "activity_unit": "steps",
            "step_sources": str(counts.size),
            "step_records_used": str(int(chosen.sum())),
        },
        where=name,
    )


def _parse_dates(cells: list[str], locate: Locate, attribute: str) -> Int64Array:
    parsed = pd.to_datetime(pd.Series(cells, dtype=object), format=_DATE_FORMAT, utc=True, errors="coerce")
    invalid = parsed.isna().to_numpy()
    if invalid.any():
        raise ValidationError(
            f"{attribute} not understood; expected e.g. 2024-03-04 08:00:00 +0100",
            field=locate(int(np.argmax(invalid))),
        )
    outside = ((parsed < _EARLIEST) | (parsed > _LATEST)).to_numpy()
    if outside.any():
        raise ValidationError(
            f"{attribute} outside the supported dates 1678-2261", field=locate(int(np.argmax(outside)))
        )
    index = pd.DatetimeIndex(parsed).tz_convert("UTC").tz_localize(None).as_unit("ns")
    return index.asi8.astype(np.int64, copy=False)


def _offset_seconds(text: str, where: str) -> int:
    try:
        stamp = dt.datetime.strptime(text.strip(), _DATE_FORMAT)
    except ValueError as exc:
        raise ValidationError(
            "date not understood; expected e.g. 2024-03-04 08:00:00 +0100", field=where
        ) from exc
    delta = stamp.utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0
