"""Structured JSON logging with PHI redaction.

Policy (enforced by :class:`PhiRedactionFilter` on the root handler, so it also covers the
libraries' loggers):

* The message *template* is code, written by us; it is kept, but scrubbed for PHI-shaped text
  (dates, e-mail addresses, phone and social-security numbers, runs of numeric readings).
* Values passed as ``%``-arguments are untrusted: numbers, booleans, enums and our own
  :class:`~novamind.core.errors.NovamindError` messages (PHI-free by contract) are kept; any other
  string, sequence or mapping is replaced by ``[REDACTED]`` unless wrapped in :func:`safe`.
  Other exceptions are reduced to their type name.
* ``extra`` fields: patient identifiers (``patient_id``, ``user_id``, ...) are replaced by their
  keyed-hash pseudonym; known PHI keys (names, dates of birth, addresses, readings, payloads ...)
  are ``[REDACTED]``; remaining string values are scrubbed like the template.
* Tracebacks are scrubbed like the template.
"""

from __future__ import annotations

import enum
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from novamind.core.errors import NovamindError
from novamind.core.privacy import pseudonymise

REDACTED = "[REDACTED]"

#: ``extra`` keys whose value identifies a patient: replaced by a pseudonym.
IDENTIFIER_KEYS = frozenset(
    {"patient_id", "patient", "user_id", "subject", "subject_id", "mrn", "medical_record_number"}
)
#: ``extra`` keys whose value is PHI: always redacted.
PHI_KEYS = frozenset(
    {
        "name",
        "patient_name",
        "first_name",
        "last_name",
        "full_name",
        "given_name",
        "family_name",
        "dob",
        "date_of_birth",
        "birth_date",
        "birthdate",
        "age",
        "address",
        "street",
        "city",
        "postcode",
        "zip",
        "zip_code",
        "email",
        "phone",
        "telephone",
        "ssn",
        "social_security_number",
        "readings",
        "reading",
        "values",
        "counts",
        "samples",
        "series",
        "payload",
        "body",
        "genotype",
        "diplotype",
        "vcf",
        "symptoms",
        "responses",
        "notes",
        "diagnosis",
    }
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # ISO dates and date-times (1984-03-12, 1984-03-12T08:00:00Z)
    (re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?\b"), "[DATE]"),
    # Day/month/year in either order with / . or - separators
    (re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b"), "[DATE]"),
    # Spelled-out dates: 12 March 1984, March 12, 1984
    (
        re.compile(
            r"\b(?:\d{1,2}\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+"
            r"(?:\d{1,2},?\s+)?\d{4}\b",
            re.IGNORECASE,
        ),
        "[DATE]",
    ),
    (re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"), "[EMAIL]"),
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), "[SSN]"),
    (re.compile(r"(?<!\w)\+?\d[\d ()-]{8,}\d\b"), "[PHONE]"),
    # Three or more numbers in a row: a series of readings.
    (re.compile(r"-?\d+(?:\.\d+)?(?:\s*[,;]\s*-?\d+(?:\.\d+)?){2,}"), "[READINGS]"),
)


class Safe(str):
    """A string known not to contain PHI (a topic name, an address, a model version)."""

    __slots__ = ()


def safe(value: object) -> Safe:
    """Mark ``value`` as free of PHI so that it is logged as it is."""
    return Safe(str(value))


def scrub(text: str) -> str:
    """Replace PHI-shaped substrings of ``text`` with placeholders."""
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


def _redact_arg(value: object) -> object:
    if isinstance(value, Safe):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, NovamindError):
        return scrub(str(value))
    if isinstance(value, BaseException):
        return type(value).__name__
    return REDACTED


class PhiRedactionFilter(logging.Filter):
    """Removes PHI from log records before any handler formats them (see module docstring)."""

    def __init__(self, pseudonym_key: bytes | str) -> None:
        super().__init__()
        self._key = pseudonym_key

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(str(record.msg))
        if isinstance(record.args, Mapping):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        elif record.args:
            record.args = tuple(_redact_arg(v) for v in record.args)
        for key in list(vars(record)):
            if key in _STANDARD_ATTRS:
                continue
            record.__dict__[key] = self._redact_extra(key, record.__dict__[key])
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
            record.exc_info = None  # formatted and scrubbed above; do not format again
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True

    def _redact_extra(self, key: str, value: Any) -> Any:
        lowered = key.lower()
        if lowered in IDENTIFIER_KEYS:
            return pseudonymise(str(value), self._key) if value is not None else None
        if lowered in PHI_KEYS:
            return REDACTED
        if isinstance(value, Safe):
            return str(value)
        if isinstance(value, str):
            return scrub(value)
        if isinstance(value, Mapping):
            return {str(k): self._redact_extra(str(k), v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return REDACTED
        return _redact_arg(value)


_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class _TraceContextFilter(logging.Filter):
    """Adds the active OpenTelemetry trace and span ids, for correlating logs with traces."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self._service
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        return True


def configure_logging(service: str, *, level: str = "INFO", pseudonym_key: bytes | str) -> None:
    """Send every logger's records to stdout as one JSON object per line, PHI removed.

    Replaces existing root handlers, so calling it twice is harmless.
    """
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(PhiRedactionFilter(pseudonym_key))
    handler.addFilter(_TraceContextFilter(service))
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn installs its own handlers; route its records through ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lib_logger = logging.getLogger(name)
        lib_logger.handlers.clear()
        lib_logger.propagate = True
