"""CamNtech MotionWatch ``.mtn`` files (MotionWatch 8; XML).

The file is a change log: ``<motionfile><log2><change>`` elements each set a ``<property>``
(``<name>``/``<content>``; a later change wins, ``delete="yes"`` removes it) or a ``<channel>``
(``<name>``, ``<units>``, ``<epoch>`` in seconds, ``<data>`` as comma-separated values).

* ``activity`` is the ``motion`` channel in counts per epoch; its units must be counts
  (``Counts`` or ``Triaxial-Counts``).
* ``light`` is the ``Light`` channel in lux when present with the same epoch as motion.
* The index starts at the ``=StartTime`` property, naive local time (timezone-aware in its
  offset only if the property carries one).

User-entered properties (``+UserID``, ``+DOB`` ...) are never read. The XML is parsed with
defusedxml, which refuses entity expansion and external references.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as SafeET
import numpy as np

from novamind.core.errors import ValidationError
from novamind.pat.domain.recording import DeviceInfo, Recording
from novamind.pat.readers._grid import NS_PER_SECOND, FloatArray, build_recording, epoch_ns
from novamind.pat.readers._numbers import parse_numbers
from novamind.pat.readers._source import Source, load

_MODELS = {"MW8": "MotionWatch 8", "MW": "MotionWatch"}
_SEPARATORS = re.compile(r"[,\s]+")


def read_mtn(path: str | Path) -> Recording:
    """Read a MotionWatch ``.mtn`` file into a :class:`Recording` (counts per epoch, lux).

    Raises ValidationError (naming file and element) for an empty file, XML that is malformed
    or unsafe, a missing start time or motion channel, a bad epoch, channel units that are not
    counts (motion) or lux (light), and values that are not non-negative numbers.
    """
    return parse_mtn(load(path))


def parse_mtn(source: Source) -> Recording:
    """:func:`read_mtn` on bytes already loaded."""
    try:
        root = SafeET.fromstring(source.data)
    except ParseError as exc:
        line = exc.position[0] if isinstance(getattr(exc, "position", None), tuple) else None
        where = source.line(line) if line else source.name
        raise ValidationError("malformed XML; expected a MotionWatch .mtn file", field=where) from exc
    except (defusedxml.DefusedXmlException, ValueError, LookupError) as exc:
        raise ValidationError(
            f"XML refused ({type(exc).__name__}); expected a plain MotionWatch .mtn file", field=source.name
        ) from exc
    if _local(root.tag) != "motionfile":
        raise ValidationError(
            "root element is not <motionfile>; expected a MotionWatch .mtn file", field=source.name
        )

    properties: dict[str, str] = {}
    channels: dict[str, Element] = {}
    for change in root.iter():
        if _local(change.tag) != "change":
            continue
        for item in change:
            kind = _local(item.tag)
            name = _child_text(item, "name")
            if kind == "property" and name:
                if item.get("delete") == "yes":
                    properties.pop(name, None)
                else:
                    properties[name] = _child_text(item, "content")
            elif kind == "channel" and name:
                channels[name.lower()] = item

    start, offset = _start(properties.get("=StartTime"), source)
    motion = channels.get("motion")
    if motion is None:
        raise ValidationError("no motion channel; expected <channel><name>motion</name>", field=source.name)
    units = _child_text(motion, "units")
    if "count" not in units.lower():
        raise ValidationError("motion channel units are not counts", field=source.at("channel motion units"))
    step = _epoch(motion, "motion", source)
    counts = _values(motion, "motion", "activity counts per epoch", source)
    if counts.size == 0:
        raise ValidationError("motion channel has no values", field=source.at("channel motion data"))

    metadata = {"motion_units": units}
    light: FloatArray | None = None
    if "light" in channels:
        channel = channels["light"]
        if _child_text(channel, "units").lower() != "lux":
            raise ValidationError("light channel units are not lux", field=source.at("channel Light units"))
        if _epoch(channel, "Light", source) == step:
            values = _values(channel, "Light", "light in lux", source)
            light = np.full(counts.size, np.nan)
            light[: min(values.size, counts.size)] = values[: counts.size]
        else:
            metadata["light"] = "not read: epoch differs from motion"
    if properties.get("=FirmwareVersion"):
        metadata["firmware"] = properties["=FirmwareVersion"]
    device = properties.get("=Device", "")
    return build_recording(
        start_ns=start - (offset or 0) * NS_PER_SECOND,
        step_ns=step,
        activity=counts,
        light=light,
        offset_seconds=offset,
        device=DeviceInfo(
            format="MTN",
            manufacturer="CamNtech",
            model=_MODELS.get(device, device),
            serial=properties.get("=SerialNo", ""),
        ),
        metadata=metadata,
        where=source.name,
    )


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child_text(element: Element, name: str) -> str:
    for child in element:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return ""


def _start(text: str | None, source: Source) -> tuple[int, int | None]:
    """Start as ns (wall clock if naive, UTC if it has an offset) and the offset in seconds."""
    where = source.at("property =StartTime")
    if not text:
        raise ValidationError("start time missing; expected property =StartTime", field=where)
    try:
        start = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError("start time malformed; expected YYYY-MM-DD HH:MM:SS", field=where) from exc
    if not 1678 <= start.year <= 2261:
        raise ValidationError("start time out of the supported range 1678-2261", field=where)
    offset = start.utcoffset()
    naive = start.replace(tzinfo=None)
    wall_ns = (naive - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1) * 1000
    if offset is None:
        return wall_ns, None
    seconds = int(offset.total_seconds())
    return wall_ns, seconds


def _epoch(channel: Element, name: str, source: Source) -> int:
    where = source.at(f"channel {name} epoch")
    try:
        seconds = float(_child_text(channel, "epoch"))
    except ValueError as exc:
        raise ValidationError("epoch is not a number of seconds", field=where) from exc
    return epoch_ns(seconds, where)


def _values(channel: Element, name: str, what: str, source: Source) -> FloatArray:
    text = _child_text(channel, "data").strip(", \t\r\n")
    cells = _SEPARATORS.split(text) if text else []
    return parse_numbers(
        cells, what, lambda i: source.at(f"channel {name} value {i + 1}"), allow_missing=False
    )
