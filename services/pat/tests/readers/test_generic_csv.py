"""Generic CSV: regular ISO 8601 epochs of counts or steps; every irregularity names its line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.readers import read_generic_csv


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "export.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_naive_counts_stay_naive_local_time(tmp_path: Path) -> None:
    text = "timestamp,counts\n2024-03-04T00:00:00,0\n2024-03-04T00:00:30,12\n2024-03-04T00:01:00,7\n"

    recording = read_generic_csv(write(tmp_path, text))

    assert recording.start == pd.Timestamp("2024-03-04T00:00:00")
    assert recording.epoch_seconds == 30
    assert recording.counts().tolist() == [0, 12, 7]
    assert recording.metadata["activity_unit"] == "counts"
    assert recording.steps is None


def test_steps_only_become_the_activity_and_the_steps(tmp_path: Path) -> None:
    text = "Timestamp;Steps\n2024-03-04 08:00;10\n2024-03-04 08:01;20\n"

    recording = read_generic_csv(write(tmp_path, text))

    assert recording.metadata["activity_unit"] == "steps"
    assert recording.counts().tolist() == [10, 20]
    assert recording.steps is not None and recording.steps.tolist() == [10, 20]


def test_offsets_across_a_dst_change_give_a_regular_aware_index_in_the_first_offset(tmp_path: Path) -> None:
    text = (
        "timestamp,counts,light\n"
        "2024-03-31T01:58:00+01:00,1,0.5\n"
        "2024-03-31T01:59:00+01:00,2,0.5\n"
        "2024-03-31T03:00:00+02:00,3,\n"
        "2024-03-31T03:01:00+02:00,4,1\n"
    )

    recording = read_generic_csv(write(tmp_path, text))

    assert recording.start == pd.Timestamp("2024-03-31T01:58:00+01:00")
    index = recording.activity.index
    assert isinstance(index, pd.DatetimeIndex) and index.freq == pd.Timedelta(minutes=1)
    assert recording.counts().tolist() == [1, 2, 3, 4]
    assert recording.metadata["utc_offset"] == "+01:00"
    assert recording.light is not None and np.isnan(recording.light.iloc[2])


def test_whole_epoch_gaps_and_empty_cells_are_nan(tmp_path: Path) -> None:
    text = "timestamp,counts\n2024-03-04T00:00:00Z,1\n2024-03-04T00:01:00Z,\n\n2024-03-04T00:03:00Z,3\n2024-03-04T00:04:00Z,4\n"

    recording = read_generic_csv(write(tmp_path, text))

    np.testing.assert_array_equal(recording.counts(), [1, np.nan, np.nan, 3, 4])


HEADER = "timestamp,counts\n"


@pytest.mark.parametrize(
    ("text", "problem", "line"),
    [
        ("2024-03-04T00:00:00,1\n2024-03-04T00:01:00,2\n", "missing header", 1),
        ("timestamp,acceleration_g\n2024-03-04T00:00:00,0.1\n", "no 'counts' or 'steps' column", 1),
        ("timestamp,counts,counts\n2024-03-04T00:00:00,1,1\n", "column named twice", 1),
        (HEADER, "no data rows", 1),
        (HEADER + "2024-03-04T00:00:00,1\n2024-03-04T00:01:00,2\n2024-03-04T00:00:30,3\n", "earlier than the previous", 4),
        (HEADER + "2024-03-04T00:00:00,1\n2024-03-04T00:01:00,2\n2024-03-04T00:01:00,3\n", "duplicated timestamp", 4),
        (HEADER + "2024-03-04T00:00:00,1\n2024-03-04T00:01:00,2\n2024-03-04T00:02:30,3\n", "not on the 60-second epoch grid", 4),
        (HEADER + "2024-03-04T00:00:00,1\n2024-03-04T00:01:00+01:00,2\n", "offset inconsistent", 3),
        (HEADER + "2024-03-04T00:00:00,1\nyesterday,2\n", "timestamp not understood", 3),
        (HEADER + "2024-03-04T00:00:00,1\n2024-03-04T00:01:00,two\n", "not a number", 3),
        (HEADER + "2024-03-04T00:00:00,1\n2024-03-04T00:01:00,-2\n", "negative value", 3),
        (HEADER + "2024-03-04T00:00:00,1\n2024-03-04T00:01:00,2,3\n", "different number of cells", 3),
        (HEADER + "2024-03-04T00:00:00,1\n", "at least two samples", 0),
        (HEADER + "2024-03-04T00:00:00,1\n2024-03-04T00:00:00.5,2\n", "whole number of seconds", 0),
    ],
)  # fmt: skip
def test_malformed_rows_name_the_problem_and_the_line(
    tmp_path: Path, text: str, problem: str, line: int
) -> None:
    with pytest.raises(ValidationError) as caught:
        read_generic_csv(write(tmp_path, text))

    assert problem in caught.value.message
    if line:
        assert caught.value.field == f"export.csv line {line}"
    else:
        assert caught.value.field is not None and caught.value.field.startswith("export.csv")


@pytest.mark.parametrize("data", [b"", b" \n\n", b"\x00\x01\x02\xff" * 64], ids=["empty", "blank", "binary"])
def test_empty_and_binary_files_are_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(data)

    with pytest.raises(ValidationError, match=r"empty|binary"):
        read_generic_csv(path)
