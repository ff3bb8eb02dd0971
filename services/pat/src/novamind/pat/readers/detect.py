"""One entry point for every device format: :func:`read_recording`, detecting the format from
the file's content (magic bytes, root element, header shape) before its extension."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path

from novamind.core.errors import ValidationError
from novamind.pat.domain.recording import Recording
from novamind.pat.readers.actiware import looks_like_actiware, read_actiware_csv
from novamind.pat.readers.agd import SQLITE_MAGIC, read_agd
from novamind.pat.readers.apple_health import read_apple_health
from novamind.pat.readers.awd import looks_like_awd, read_awd
from novamind.pat.readers.generic_csv import header_cells, read_generic_csv
from novamind.pat.readers.mtn import read_mtn
from novamind.pat.readers.omh_json import read_omh_json

#: Bytes read to recognise a format; Actiware's table header sits ~10 KB in, Apple's root
#: element after a DTD of a few KB.
_HEAD_BYTES = 256 * 1024

_BY_EXTENSION = {
    ".awd": "awd",
    ".agd": "agd",
    ".mtn": "mtn",
    ".xml": "apple-health",
    ".json": "omh-json",
    ".jsonl": "omh-json",
}


def _read_apple_health_steps(path: str | Path) -> Recording:
    export = read_apple_health(path)
    if export.recording is None:
        raise ValidationError(
            "export has no step-count records; expected HKQuantityTypeIdentifierStepCount",
            field=Path(path).name,
        )
    return export.recording


#: Format name -> reader. The names are what ``format=`` and the CLI's ``--format`` accept.
READERS: dict[str, Callable[[str | Path], Recording]] = {
    "awd": read_awd,
    "actiware-csv": read_actiware_csv,
    "agd": read_agd,
    "mtn": read_mtn,
    "generic-csv": read_generic_csv,
    "apple-health": _read_apple_health_steps,
    "omh-json": read_omh_json,
}
FORMATS: tuple[str, ...] = tuple(READERS)


def read_recording(path: str | Path, format: str | None = None) -> Recording:
    """Read any supported device file into a :class:`Recording`.

    ``format`` (one of :data:`FORMATS`) skips detection; otherwise the format is recognised
    from the content, and only when that is inconclusive from the extension. Apple Health
    exports give their steps per minute (use :func:`read_apple_health` for heart rate and
    sleep). Raises ValidationError for an unknown ``format``, an unrecognised or empty file,
    and every problem the chosen reader finds.
    """
    if format is not None:
        name = format.strip().lower()
        if name not in READERS:
            raise ValidationError(f"unknown format; supported formats: {', '.join(FORMATS)}", field="format")
    else:
        name = detect_format(path)
    return READERS[name](path)


def detect_format(path: str | Path) -> str:
    """The format name of the file at ``path`` (see :data:`FORMATS`).

    Raises ValidationError when the file is missing, empty, or matches no supported format.
    """
    file = Path(path)
    where = file.name or str(file)
    try:
        with file.open("rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except FileNotFoundError as exc:
        raise ValidationError("file not found", field=where) from exc
    except OSError as exc:
        raise ValidationError(f"file could not be read ({type(exc).__name__})", field=where) from exc
    if not head.strip():
        raise ValidationError("file is empty", field=where)
    detected = _from_content(head)
    if detected is None:
        detected = _BY_EXTENSION.get(file.suffix.lower())
    if detected is None:
        raise ValidationError(
            f"file format not recognised; supported formats: {', '.join(FORMATS)}", field=where
        )
    return detected


def _from_content(head: bytes) -> str | None:
    if head.startswith(SQLITE_MAGIC):
        return "agd"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = head.decode("utf-16", errors="replace")
    else:
        if b"\x00" in head:
            return None  # binary, and not a format we know
        text = head.decode("utf-8", errors="replace")
    text = text.lstrip("\ufeff \t\r\n")
    if text.startswith("<"):
        if "<motionfile" in text:
            return "mtn"
        if "<HealthData" in text:
            return "apple-health"
        return None
    if text.startswith(("[", "{")):
        return "omh-json"
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    first = next((line for line in lines if line.strip()), "")
    if header_cells(first) is not None:
        return "generic-csv"
    if looks_like_actiware(lines):
        return "actiware-csv"
    if looks_like_awd(lines):
        return "awd"
    return None
