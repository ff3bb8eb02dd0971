"""Dated daily values as requests carry them, and the one strict reading of their dates."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from novamind.core.errors import ValidationError


@dataclass(frozen=True)
class DatedValue:
    """One day of a daily series: a patient-local date "YYYY-MM-DD" and its value (None = no data)."""

    date: str
    value: float | None


def parse_date(text: str, field: str) -> dt.date:
    """A "YYYY-MM-DD" calendar date; anything else is a :class:`ValidationError` naming ``field``.

    Only the extended form is accepted (``date.fromisoformat`` alone would also take "20260301").
    """
    if not isinstance(text, str) or len(text) != 10:
        raise ValidationError("not a calendar date (expected YYYY-MM-DD)", field=field)
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValidationError("not a calendar date (expected YYYY-MM-DD)", field=field) from None
