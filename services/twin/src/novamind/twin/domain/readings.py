"""Device readings as the twin keeps them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Reading:
    """One wearable reading for a patient (identified only by pseudonym).

    ``value`` is in ``unit`` (UCUM or the Open mHealth unit the device sent: steps, counts,
    beats/min); ``end`` is None for an instantaneous measurement.
    """

    event_id: str
    patient: str
    schema: str
    start: datetime
    end: datetime | None
    value: float | None
    unit: str | None


@dataclass(frozen=True, slots=True)
class IngestionStats:
    """How many readings the twin holds, overall or for one patient."""

    readings: int
    patients: int
