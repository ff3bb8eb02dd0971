"""Loading a device file and turning its bytes into text lines, with errors that say where.

Every reader names a location as ``"<file name> line 17"`` or ``"<file name> <field>"``; only the
file's base name is used (directories can carry a patient's name), and no message repeats a value
read from the file.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

from novamind.core.errors import ValidationError

#: Hard ceiling on what a reader loads into memory (bytes). Real exports are far smaller.
MAX_FILE_BYTES = 1 << 30


@dataclass(frozen=True, slots=True)
class Source:
    """The raw bytes of one input file and the name used in error locations."""

    name: str
    data: bytes

    def at(self, where: str) -> str:
        """A location inside the file, e.g. ``at("line 9")`` -> ``"example_01.AWD line 9"``."""
        return f"{self.name} {where}"

    def line(self, number: int) -> str:
        """The location of 1-based text line ``number``."""
        return self.at(f"line {number}")


def load(path: str | Path) -> Source:
    """Read a whole file (at most :data:`MAX_FILE_BYTES`).

    Raises ValidationError when the file is missing, unreadable, too large or empty.
    """
    file = Path(path)
    name = file.name or str(file)
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ValidationError(f"file is larger than {MAX_FILE_BYTES} bytes", field=name)
        data = file.read_bytes()
    except FileNotFoundError as exc:
        raise ValidationError("file not found", field=name) from exc
    except IsADirectoryError as exc:
        raise ValidationError("expected a file, found a directory", field=name) from exc
    except OSError as exc:
        raise ValidationError(f"file could not be read ({type(exc).__name__})", field=name) from exc
    if not data or data.isspace():
        raise ValidationError("file is empty", field=name)
    return Source(name=name, data=data)


def decode_text(source: Source) -> str:
    """Decode a text export: UTF-8 or UTF-16 with a byte-order mark, else UTF-8, else Windows-1252.

    Raises ValidationError when the bytes are binary (NUL bytes outside UTF-16) or the text is empty.
    """
    data = source.data
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                "file claims UTF-16 but is not valid UTF-16 text", field=source.name
            ) from exc
    else:
        if data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            # Older Windows exports (French and German Actiware, Actiwatch software) are cp1252.
            text = data.decode("cp1252", errors="replace")
    if "\x00" in text:
        raise ValidationError(
            "file is binary (contains NUL bytes); expected a text export", field=source.name
        )
    if not text.strip():
        raise ValidationError("file is empty", field=source.name)
    return text


def require_final_line_end(source: Source, line_count: int) -> None:
    """Raise ValidationError when the file stops mid-line (a download or copy cut short).

    Device software ends every line, the last included, with a line break; a file that does not
    was truncated, and its last value may be cut (``54`` of ``540``).
    """
    tail = source.data.rstrip(b"\x1a \t\x00")
    if not tail.endswith((b"\n", b"\r")):
        raise ValidationError(
            "file truncated: the last line has no line break; expected a complete export",
            field=source.line(line_count),
        )


def text_lines(source: Source) -> list[str]:
    """The decoded file split into lines (CR, LF or CRLF), without line terminators.

    Line ``i`` of the returned list is line ``i + 1`` in error locations.
    """
    text = decode_text(source)
    # splitlines() would also break on form feeds and other separators an editor does not count.
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
