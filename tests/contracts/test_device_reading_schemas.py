"""device.readings.v1 accepts well-formed Open mHealth data points and names what is wrong with others."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO_ROOT / "proto" / "schemas" / "device-readings" / "v1"
DATA_POINT_ID = "https://novamind.dev/schemas/device-readings/v1/data-point.schema.json"
PSEUDONYM = "pt_3f9a0c1b2d4e5f6a7b8c"


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schemas = [json.loads(path.read_text("utf-8")) for path in sorted(SCHEMA_DIR.glob("*.json"))]
    for schema in schemas:
        Draft202012Validator.check_schema(schema)
    registry: Registry[Any] = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas
    )
    root = registry.contents(DATA_POINT_ID)
    return Draft202012Validator(root, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _data_point(namespace: str, name: str, version: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "header": {
            "uuid": "6b1c5c0e-3f7a-4d8e-9a4b-2f1e0c9d8b7a",
            "schema_id": {"namespace": namespace, "name": name, "version": version},
            "creation_date_time": "2025-03-02T08:15:00Z",
            "acquisition_provenance": {"source_name": "ActiGraph wGT3X-BT", "modality": "sensed"},
            "user_id": PSEUDONYM,
        },
        "body": body,
    }


VALID: dict[str, dict[str, Any]] = {
    "step-count": _data_point(
        "omh",
        "step-count",
        "2.0",
        {
            "step_count": {"value": 1248, "unit": "steps"},
            "effective_time_frame": {
                "time_interval": {
                    "start_date_time": "2025-03-01T14:00:00+01:00",
                    "end_date_time": "2025-03-01T15:00:00+01:00",
                }
            },
        },
    ),
    "heart-rate at an instant": _data_point(
        "omh",
        "heart-rate",
        "2.0",
        {
            "heart_rate": {"value": 58, "unit": "beats/min"},
            "effective_time_frame": {"date_time": "2025-03-01T06:30:00-05:00"},
            "temporal_relationship_to_physical_activity": "at rest",
        },
    ),
    "heart-rate over an interval": _data_point(
        "ieee",
        "heart-rate",
        "1.0",
        {
            "heart_rate": {"value": 71.5, "unit": "beats/min"},
            "effective_time_frame": {
                "time_interval": {
                    "start_date_time": "2025-03-01T06:00:00Z",
                    "duration": {"value": 1, "unit": "h"},
                }
            },
            "descriptive_statistic": "average",
        },
    ),
    "sleep-episode": _data_point(
        "omh",
        "sleep-episode",
        "1.1",
        {
            "effective_time_frame": {
                "time_interval": {
                    "start_date_time": "2025-03-01T23:10:00+01:00",
                    "end_date_time": "2025-03-02T07:05:00+01:00",
                }
            },
            "is_main_sleep": True,
            "latency_to_sleep_onset": {"value": 18, "unit": "min"},
            "total_sleep_time": {"value": 412, "unit": "min"},
            "number_of_awakenings": 3,
            "sleep_maintenance_efficiency_percentage": {"value": 89.5, "unit": "%"},
        },
    ),
    "physical-activity": _data_point(
        "omh",
        "physical-activity",
        "1.2",
        {
            "activity_name": "walking",
            "effective_time_frame": {
                "time_interval": {
                    "start_date_time": "2025-03-01T17:00:00Z",
                    "end_date_time": "2025-03-01T17:40:00Z",
                }
            },
            "base_movement_quantity": {"value": 4100, "unit": "steps"},
            "kcal_burned": {"value": 160, "unit": "kcal"},
            "reported_activity_intensity": "moderate",
        },
    ),
    "activity-count": _data_point(
        "novamind",
        "activity-count",
        "1.0",
        {
            "activity_count": {"value": 312, "unit": "counts"},
            "epoch_duration_seconds": 60,
            "effective_time_frame": {
                "time_interval": {
                    "start_date_time": "2025-03-01T00:00:00+01:00",
                    "end_date_time": "2025-03-01T00:01:00+01:00",
                }
            },
            "count_method": "vector magnitude",
        },
    ),
}


def _error_paths(validator: Draft202012Validator, instance: dict[str, Any]) -> dict[str, list[str]]:
    paths: dict[str, list[str]] = {}
    for error in validator.iter_errors(instance):
        paths.setdefault(error.json_path, []).append(error.message)
    return paths


@pytest.mark.parametrize("sample", sorted(VALID))
def test_valid_data_points_are_accepted(validator: Draft202012Validator, sample: str) -> None:
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(VALID[sample])]

    assert errors == []


def _broken(sample: str) -> dict[str, Any]:
    return copy.deepcopy(VALID[sample])


def test_missing_uuid_is_rejected_at_the_header(validator: Draft202012Validator) -> None:
    point = _broken("step-count")
    del point["header"]["uuid"]

    paths = _error_paths(validator, point)

    assert any("'uuid' is a required property" in m for m in paths.get("$.header", [])), paths


def test_negative_step_count_is_rejected_at_the_value(validator: Draft202012Validator) -> None:
    point = _broken("step-count")
    point["body"]["step_count"]["value"] = -5

    paths = _error_paths(validator, point)

    assert "$.body.step_count.value" in paths, paths


def test_unknown_schema_name_is_rejected(validator: Draft202012Validator) -> None:
    point = _broken("step-count")
    point["header"]["schema_id"]["name"] = "blood-glucose"

    paths = _error_paths(validator, point)

    assert "$.header.schema_id.name" in paths, paths


def test_wrong_unit_is_rejected_at_the_unit(validator: Draft202012Validator) -> None:
    point = _broken("heart-rate at an instant")
    point["body"]["heart_rate"]["unit"] = "bpm"

    paths = _error_paths(validator, point)

    assert "$.body.heart_rate.unit" in paths, paths


def test_missing_time_frame_is_rejected_at_the_body(validator: Draft202012Validator) -> None:
    point = _broken("sleep-episode")
    del point["body"]["effective_time_frame"]

    paths = _error_paths(validator, point)

    assert any("'effective_time_frame' is a required property" in m for m in paths.get("$.body", [])), paths


def test_step_count_needs_an_interval_not_an_instant(validator: Draft202012Validator) -> None:
    point = _broken("step-count")
    point["body"]["effective_time_frame"] = {"date_time": "2025-03-01T14:00:00Z"}

    paths = _error_paths(validator, point)

    assert "$.body.effective_time_frame" in paths, paths


def test_timestamp_without_offset_is_rejected(validator: Draft202012Validator) -> None:
    point = _broken("activity-count")
    point["body"]["effective_time_frame"]["time_interval"]["start_date_time"] = "2025-03-01T00:00:00"

    paths = _error_paths(validator, point)

    assert "$.body.effective_time_frame.time_interval.start_date_time" in paths, paths


def test_raw_identifier_as_user_id_is_rejected(validator: Draft202012Validator) -> None:
    point = _broken("heart-rate at an instant")
    point["header"]["user_id"] = "jane.doe@example.org"

    paths = _error_paths(validator, point)

    assert "$.header.user_id" in paths, paths


def test_activity_count_requires_the_novamind_namespace(validator: Draft202012Validator) -> None:
    point = _broken("activity-count")
    point["header"]["schema_id"]["namespace"] = "omh"

    paths = _error_paths(validator, point)

    assert "$.header.schema_id.namespace" in paths, paths


def test_unsupported_major_version_is_rejected(validator: Draft202012Validator) -> None:
    point = _broken("sleep-episode")
    point["header"]["schema_id"]["version"] = "4.0"

    paths = _error_paths(validator, point)

    assert "$.header.schema_id.version" in paths, paths


def test_unknown_body_property_is_rejected(validator: Draft202012Validator) -> None:
    point = _broken("physical-activity")
    point["body"]["patient_name"] = "Jane"

    paths = _error_paths(validator, point)

    assert "$.body" in paths, paths
