"""Open mHealth data points as device sync sends them to ``device.readings.v1``.

Builders for the demo loader, the end-to-end tests and the load benchmark: each returns the JSON
bytes of one IEEE 1752.1 data point (schemas under ``proto/schemas/device-readings/v1``) whose
``header.uuid`` is the event id, keyed by the patient pseudonym.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

ACTIVITY_COUNT_SCHEMA = {"namespace": "novamind", "name": "activity-count", "version": "1.0"}
STEP_COUNT_SCHEMA = {"namespace": "omh", "name": "step-count", "version": "3.0"}
HEART_RATE_SCHEMA = {"namespace": "omh", "name": "heart-rate", "version": "2.0"}


def _interval(start: datetime, seconds: float) -> dict[str, Any]:
    end = start + timedelta(seconds=seconds)
    return {"time_interval": {"start_date_time": start.isoformat(), "end_date_time": end.isoformat()}}


def _point(
    event_id: str, patient: str, schema: dict[str, str], created: datetime, body: dict[str, Any]
) -> bytes:
    header = {
        "uuid": event_id,
        "schema_id": schema,
        "creation_date_time": created.isoformat(),
        "user_id": patient,
    }
    return json.dumps({"header": header, "body": body}, separators=(",", ":")).encode()


def activity_count_point(
    event_id: str, patient: str, start: datetime, counts: float, *, epoch_seconds: int = 60
) -> bytes:
    """Activity counts of one epoch (``novamind:activity-count``), as a research actigraph exports."""
    body = {
        "activity_count": {"value": counts, "unit": "counts"},
        "epoch_duration_seconds": epoch_seconds,
        "effective_time_frame": _interval(start, epoch_seconds),
        "body_location": "wrist",
    }
    return _point(event_id, patient, ACTIVITY_COUNT_SCHEMA, start + timedelta(seconds=epoch_seconds), body)


def step_count_point(
    event_id: str, patient: str, start: datetime, steps: int, *, seconds: float = 60
) -> bytes:
    """Steps over ``seconds`` from ``start`` (``omh:step-count``)."""
    body = {
        "step_count": {"value": steps, "unit": "steps"},
        "effective_time_frame": _interval(start, seconds),
    }
    return _point(event_id, patient, STEP_COUNT_SCHEMA, start + timedelta(seconds=seconds), body)


def heart_rate_point(
    event_id: str, patient: str, at: datetime, beats_per_minute: float, *, at_rest: bool = False
) -> bytes:
    """One heart-rate measurement at an instant (``omh:heart-rate``); ``at_rest`` marks a resting rate."""
    body: dict[str, Any] = {
        "heart_rate": {"value": beats_per_minute, "unit": "beats/min"},
        "effective_time_frame": {"date_time": at.isoformat()},
    }
    if at_rest:
        body["temporal_relationship_to_physical_activity"] = "at rest"
    return _point(event_id, patient, HEART_RATE_SCHEMA, at, body)
