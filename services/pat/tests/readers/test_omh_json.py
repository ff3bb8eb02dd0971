"""Open mHealth JSON (device.readings.v1): activity counts per epoch, steps per minute, named errors."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.readers import read_omh_json, read_recording

ZONE = dt.timezone(dt.timedelta(hours=2))
T0 = dt.datetime(2026, 3, 29, 8, 0, tzinfo=ZONE)


def header(name: str, namespace: str, version: str) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "schema_id": {"namespace": namespace, "name": name, "version": version},
        "creation_date_time": T0.isoformat(),
    }


def interval(start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    return {"time_interval": {"start_date_time": start.isoformat(), "end_date_time": end.isoformat()}}


def activity_point(minute: int, count: float, *, epoch: int = 60, unit: str = "counts") -> dict[str, Any]:
    start = T0 + dt.timedelta(minutes=minute)
    return {
        "header": header("activity-count", "novamind", "1.0"),
        "body": {
            "activity_count": {"value": count, "unit": unit},
            "epoch_duration_seconds": epoch,
            "effective_time_frame": interval(start, start + dt.timedelta(seconds=epoch)),
        },
    }


def step_point(start: dt.datetime, end: dt.datetime, steps: float, *, unit: str = "steps") -> dict[str, Any]:
    return {
        "header": header("step-count", "omh", "3.0"),
        "body": {"step_count": {"value": steps, "unit": unit}, "effective_time_frame": interval(start, end)},
    }


def heart_point() -> dict[str, Any]:
    return {
        "header": header("heart-rate", "omh", "2.0"),
        "body": {
            "heart_rate": {"value": 62, "unit": "beats/min"},
            "effective_time_frame": {"date_time": T0.isoformat()},
        },
    }


def write(tmp_path: Path, text: str, name: str = "readings.json") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_activity_counts_in_any_order_make_a_regular_aware_recording(tmp_path: Path) -> None:
    points = [
        activity_point(2, 30),
        activity_point(0, 10),
        activity_point(1, 20),
        activity_point(4, 50),
        heart_point(),
    ]

    recording = read_omh_json(write(tmp_path, json.dumps(points)))

    assert recording.start == pd.Timestamp("2026-03-29T08:00:00+02:00")
    assert recording.epoch_seconds == 60
    np.testing.assert_array_equal(recording.counts(), [10, 20, 30, np.nan, 50])
    assert recording.metadata["activity_unit"] == "counts"
    assert recording.metadata["other_points"] == "1"
    assert recording.metadata["utc_offset"] == "+02:00"


def test_step_points_as_json_lines_are_spread_onto_minutes(tmp_path: Path) -> None:
    points = [
        step_point(T0 + dt.timedelta(seconds=30), T0 + dt.timedelta(seconds=150), 120),
        step_point(T0 + dt.timedelta(minutes=4), T0 + dt.timedelta(minutes=5), 7),
    ]
    text = "\n".join(json.dumps(p) for p in points) + "\n"

    recording = read_omh_json(write(tmp_path, text, "readings.jsonl"))

    assert recording.epoch_seconds == 60
    assert recording.metadata["activity_unit"] == "steps"
    np.testing.assert_allclose(recording.counts(), [30, 60, 30, np.nan, 7])
    assert recording.steps is not None


def test_steps_alongside_counts_share_the_activity_grid(tmp_path: Path) -> None:
    points = [activity_point(0, 10), activity_point(1, 20), step_point(T0, T0 + dt.timedelta(minutes=2), 40)]

    recording = read_omh_json(write(tmp_path, json.dumps(points)))

    assert recording.counts().tolist() == [10, 20]
    assert recording.steps is not None and recording.steps.tolist() == pytest.approx([20, 20])


def test_a_single_data_point_object_is_accepted(tmp_path: Path) -> None:
    recording = read_recording(write(tmp_path, json.dumps(activity_point(0, 5), indent=2)))

    assert recording.counts().tolist() == [5]


@pytest.mark.parametrize(
    ("points", "problem", "field"),
    [
        ([activity_point(0, 1), activity_point(1, 2, unit="g")], "value not allowed", "readings.json $[1].body.activity_count.unit"),
        ([step_point(T0, T0 + dt.timedelta(minutes=1), 5, unit="km")], "value not allowed", "readings.json $[0].body.step_count.unit"),
        ([activity_point(0, 1), activity_point(0, 2)], "duplicated timestamp", "readings.json $[1]"),
        ([activity_point(0, 1), activity_point(1, 2, epoch=30)], "differs from the first", "readings.json $[1].body.epoch_duration_seconds"),
        ([activity_point(0, -3)], "out of range", "readings.json $[0].body.activity_count.value"),
        ([heart_point()], "no activity-count or step-count", "readings.json"),
        ([activity_point(0, 1), 42], "must be a JSON object", "readings.json $[1]"),
    ],
)  # fmt: skip
def test_invalid_points_name_the_item_and_path(
    tmp_path: Path, points: list[Any], problem: str, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        read_omh_json(write(tmp_path, json.dumps(points)))

    assert problem in caught.value.message
    assert caught.value.field == field


def test_repeated_step_intervals_are_refused(tmp_path: Path) -> None:
    first = step_point(T0, T0 + dt.timedelta(minutes=1), 5)
    again = step_point(T0, T0 + dt.timedelta(minutes=1), 5)

    with pytest.raises(ValidationError, match="interval repeated") as caught:
        read_omh_json(write(tmp_path, json.dumps([first, again])))

    assert caught.value.field == "readings.json $[1].body.effective_time_frame"


def test_a_repeated_uuid_is_refused(tmp_path: Path) -> None:
    point = activity_point(0, 1)

    with pytest.raises(ValidationError, match="uuid repeated"):
        read_omh_json(write(tmp_path, json.dumps([point, point])))


def test_an_off_grid_point_names_its_item(tmp_path: Path) -> None:
    shifted = activity_point(1, 2)
    shifted["body"]["effective_time_frame"] = interval(
        T0 + dt.timedelta(seconds=90), T0 + dt.timedelta(seconds=150)
    )

    with pytest.raises(ValidationError, match="not on the 60-second epoch grid") as caught:
        read_omh_json(write(tmp_path, json.dumps([activity_point(0, 1), shifted])))

    assert caught.value.field == "readings.json $[1]"


@pytest.mark.parametrize(
    ("text", "problem", "field"),
    [
        ("", "empty", "readings.json"),
        ("[1, 2", "invalid JSON", "readings.json line 1"),
        (json.dumps(activity_point(0, 1)) + "\n{oops\n", "invalid JSON", "readings.json line 2"),
        ('[{"x": NaN}]', "invalid JSON", "readings.json"),
        ("hello", "not JSON data points", "readings.json line 1"),
        ("[" * 5000 + "]" * 5000, "invalid JSON", "readings.json"),
    ],
    ids=["empty", "unterminated", "bad-line", "nan", "text", "deep"],
)
def test_broken_json_is_named(tmp_path: Path, text: str, problem: str, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        read_omh_json(write(tmp_path, text))

    assert problem in caught.value.message
    assert caught.value.field is not None and caught.value.field.startswith(field)
