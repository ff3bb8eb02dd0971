"""IEEE 1752.1 / Open mHealth data points: the ``device.readings.v1`` payload.

:func:`parse_data_point` validates one JSON data point against the contract's JSON Schemas
(``proto/schemas/device-readings/v1``, shipped in ``novamind.api``) and returns a normalised
:class:`DataPoint`. Every rejection is a :class:`~novamind.core.errors.ValidationError` whose
``field`` is the JSON path of the offending value; messages never echo the value itself.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import jsonschema
from referencing import Registry, Resource

from novamind.core.errors import ValidationError

_SCHEMA_PACKAGE = "novamind.api"
_SCHEMA_DIR = ("schemas", "device-readings", "v1")
_ENTRY_SCHEMA = "data-point.schema.json"

#: Body key holding the measured quantity, per schema name.
_QUANTITY_KEYS = {
    "step-count": "step_count",
    "heart-rate": "heart_rate",
    "activity-count": "activity_count",
    "sleep-episode": "total_sleep_time",
    "physical-activity": "kcal_burned",
}
_DURATION_UNITS = {"ms": 0.001, "sec": 1.0, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True, slots=True)
class DataPoint:
    """One normalised reading. Times are timezone-aware; ``end`` is None for an instant."""

    event_id: str
    schema: str
    schema_version: str
    start: datetime
    end: datetime | None
    value: float | None
    unit: str | None
    user_id: str | None
    body: dict[str, Any]


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    folder = resources.files(_SCHEMA_PACKAGE).joinpath(*_SCHEMA_DIR)
    documents = {
        entry.name: json.loads(entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    }
    registry: Registry[Any] = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in documents.values() if "$id" in doc
    )
    entry = documents[_ENTRY_SCHEMA]
    cls = jsonschema.validators.validator_for(entry)
    return cls(entry, registry=registry, format_checker=cls.FORMAT_CHECKER)


def _json_path(error: jsonschema.ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _describe(error: jsonschema.ValidationError) -> str:
    # jsonschema messages quote the offending instance; keep only the rule that failed.
    validator = str(error.validator)
    expected = error.validator_value
    if validator == "required":
        required = expected if isinstance(expected, list) else []
        missing = [
            name for name in required if isinstance(error.instance, dict) and name not in error.instance
        ]
        return f"missing required field(s): {', '.join(missing)}"
    if validator in {"enum", "const"}:
        return f"value not allowed; expected {expected!r}"
    if validator == "type":
        return f"wrong type; expected {expected}"
    if validator in {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"}:
        return f"value out of range ({validator} {expected})"
    if validator == "format":
        return f"not a valid {expected}"
    if validator == "additionalProperties":
        return "unexpected field(s)"
    return f"violates schema rule {validator!r}"


def _parse_time(text: str, where: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationError("not an RFC 3339 date-time", field=where) from exc
    if value.tzinfo is None:
        raise ValidationError("date-time lacks a UTC offset", field=where)
    return value


def _time_frame(frame: dict[str, Any]) -> tuple[datetime, datetime | None]:
    base = "$.body.effective_time_frame"
    if "date_time" in frame:
        return _parse_time(frame["date_time"], f"{base}.date_time"), None
    interval = frame["time_interval"]
    where = f"{base}.time_interval"
    start = (
        _parse_time(interval["start_date_time"], f"{where}.start_date_time")
        if "start_date_time" in interval
        else None
    )
    end = (
        _parse_time(interval["end_date_time"], f"{where}.end_date_time")
        if "end_date_time" in interval
        else None
    )
    if "duration" in interval:
        seconds = float(interval["duration"]["value"]) * _DURATION_UNITS.get(
            interval["duration"]["unit"], 1.0
        )
        if start is not None and end is None:
            end = start + timedelta(seconds=seconds)
        elif end is not None and start is None:
            start = end - timedelta(seconds=seconds)
    if start is None:
        raise ValidationError("time interval needs a start, or an end and a duration", field=where)
    if end is not None and end < start:
        raise ValidationError("time interval ends before it starts", field=where)
    return start, end


def parse_data_point(raw: bytes | str | dict[str, Any]) -> DataPoint:
    """Validate and normalise one data point (JSON bytes, text, or an already parsed object).

    Raises :class:`ValidationError` naming the JSON path of the first problem found.
    """
    if isinstance(raw, dict):
        document: Any = raw
    else:
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValidationError(f"payload is not valid JSON ({type(exc).__name__})", field="$") from exc
    if not isinstance(document, dict):
        raise ValidationError("payload must be a JSON object", field="$")
    errors = sorted(_validator().iter_errors(document), key=lambda e: (len(e.absolute_path), str(e.path)))
    if errors:
        # Prefer the most specific error: the deepest path among a oneOf/if-then's reports.
        best = jsonschema.exceptions.best_match(errors)
        assert best is not None
        raise ValidationError(_describe(best), field=_json_path(best))
    header, body = document["header"], document["body"]
    schema = header["schema_id"]["name"]
    start, end = _time_frame(body["effective_time_frame"])
    quantity = body.get(_QUANTITY_KEYS.get(schema, ""))
    value = float(quantity["value"]) if isinstance(quantity, dict) else None
    unit = str(quantity["unit"]) if isinstance(quantity, dict) else None
    return DataPoint(
        event_id=str(header["uuid"]),
        schema=schema,
        schema_version=str(header["schema_id"]["version"]),
        start=start,
        end=end,
        value=value,
        unit=unit,
        user_id=header.get("user_id"),
        body=body,
    )
