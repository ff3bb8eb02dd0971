"""Open mHealth data points: valid ones normalise, malformed ones name what is wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from novamind.core.errors import ValidationError
from novamind.core.omh import parse_data_point
from novamind.core.privacy import pseudonymise

PATIENT = pseudonymise("patient-1", "k")


def step_count(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "header": {
            "uuid": "6c7b0c43-6f58-4d9b-9d5c-0f3f1d7a1b11",
            "schema_id": {"namespace": "omh", "name": "step-count", "version": "3.0"},
            "creation_date_time": "2026-03-29T00:01:00+02:00",
            "user_id": PATIENT,
        },
        "body": {
            "step_count": {"value": 57, "unit": "steps"},
            "effective_time_frame": {
                "time_interval": {
                    "start_date_time": "2026-03-29T00:00:00+02:00",
                    "duration": {"value": 1, "unit": "min"},
                }
            },
        },
    }
    doc.update(overrides)
    return doc


def test_step_count_normalises_to_an_interval_in_utc_comparable_time() -> None:
    point = parse_data_point(json.dumps(step_count()).encode())
    assert point.event_id == "6c7b0c43-6f58-4d9b-9d5c-0f3f1d7a1b11"
    assert (point.schema, point.value, point.unit) == ("step-count", 57.0, "steps")
    assert point.start == datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
    assert point.end is not None and (point.end - point.start).total_seconds() == 60
    assert point.user_id == PATIENT


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["body"]["step_count"].update(value=-1), "$.body.step_count.value"),
        (lambda d: d["header"].pop("uuid"), "$.header"),
        (lambda d: d["header"]["schema_id"].update(name="blood-glucose"), "$.header.schema_id.name"),
        (lambda d: d["body"]["step_count"].update(unit="furlongs"), "$.body.step_count.unit"),
    ],
)
def test_schema_violations_name_the_path_without_echoing_values(mutate: Any, field: str) -> None:
    doc = step_count()
    mutate(doc)
    with pytest.raises(ValidationError) as caught:
        parse_data_point(doc)
    assert caught.value.field == field
    assert "furlongs" not in caught.value.message and "-1" not in caught.value.message


@pytest.mark.parametrize("raw", [b"", b"{not json", b"\x00\xff\xfe", b"[1, 2, 3]", b"42"])
def test_non_objects_and_garbage_are_validation_errors(raw: bytes) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_data_point(raw)
    assert caught.value.field == "$"
