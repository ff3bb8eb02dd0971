"""ActiGraph AGD: SQLite epochs to counts, steps and lux; corrupt databases are named errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.readers import read_agd

TICKS_PER_SECOND = 10_000_000
#: .NET ticks of 2024-03-04T08:00:00.
START_TICKS = 621_355_968_000_000_000 + int(pd.Timestamp("2024-03-04T08:00:00").value // 100)


def make_agd(
    path: Path,
    rows: Sequence[tuple[object, ...]] | None = None,
    *,
    columns: str = "dataTimestamp INTEGER, axis1 REAL, axis2 REAL, axis3 REAL, steps REAL, lux REAL",
    settings: dict[str, str] | None = None,
) -> Path:
    if rows is None:
        rows = [
            (START_TICKS + 10 * TICKS_PER_SECOND * i, 3.0 * i, 4.0 * i, 0.0, i, 100 + i) for i in range(6)
        ]
    settings = {
        "epochlength": "10",
        "devicename": "wGT3XBT",
        "deviceserial": "MOS2E1234",
        "subjectname": "Jane Example",
    } | (settings or {})
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE settings (settingID INTEGER PRIMARY KEY, settingName VARCHAR(64), settingValue VARCHAR(8192))"
        )
        connection.executemany(
            "INSERT INTO settings (settingName, settingValue) VALUES (?, ?)", settings.items()
        )
        connection.execute(f"CREATE TABLE data ({columns})")
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            connection.executemany(f"INSERT INTO data VALUES ({marks})", rows)
    connection.close()
    return path


def test_counts_are_the_vector_magnitude_with_steps_and_lux(tmp_path: Path) -> None:
    recording = read_agd(make_agd(tmp_path / "a.agd"))

    assert recording.start == pd.Timestamp("2024-03-04T08:00:00")
    assert recording.epoch_seconds == 10
    np.testing.assert_allclose(recording.counts(), [5.0 * i for i in range(6)])
    assert recording.steps is not None and recording.steps.tolist() == [0, 1, 2, 3, 4, 5]
    assert recording.light is not None and recording.light.tolist() == [100, 101, 102, 103, 104, 105]
    assert (recording.device.model, recording.device.serial) == ("wGT3XBT", "MOS2E1234")
    assert "Jane Example" not in repr(recording.device) + repr(recording.metadata)


def test_single_axis_files_use_axis1(tmp_path: Path) -> None:
    rows = [(START_TICKS + 60 * TICKS_PER_SECOND * i, 7.0) for i in range(3)]
    path = make_agd(
        tmp_path / "a.agd", rows, columns="dataTimestamp INTEGER, axis1 REAL", settings={"epochlength": "60"}
    )

    recording = read_agd(path)

    assert recording.metadata["count_method"] == "axis1"
    assert recording.counts().tolist() == [7.0, 7.0, 7.0]
    assert recording.steps is None and recording.light is None


def test_missing_epochs_become_nan(tmp_path: Path) -> None:
    rows = [(START_TICKS + 10 * TICKS_PER_SECOND * i, 1.0, 0.0, 0.0, 0, 0) for i in (0, 1, 4)]

    recording = read_agd(make_agd(tmp_path / "a.agd", rows))

    assert recording.n_epochs == 5
    assert np.isnan(recording.counts()[2:4]).all()


def test_a_timezone_setting_gives_an_aware_index(tmp_path: Path) -> None:
    recording = read_agd(make_agd(tmp_path / "a.agd", settings={"timezone": "-05:00:00"}))

    assert recording.start == pd.Timestamp("2024-03-04T08:00:00-05:00")


@pytest.mark.parametrize(
    ("rows", "problem", "where"),
    [
        ([(START_TICKS, 1.0, 0, 0, 0, 0), (START_TICKS, 1.0, 0, 0, 0, 0)], "duplicated timestamp", "a.agd table data row 2"),
        ([(START_TICKS + 10**8, 1.0, 0, 0, 0, 0), (START_TICKS, 1.0, 0, 0, 0, 0)], "earlier than the previous", "a.agd table data row 2"),
        ([(START_TICKS, 1.0, 0, 0, 0, 0), (START_TICKS + 15 * TICKS_PER_SECOND, 1.0, 0, 0, 0, 0)], "not on the 10-second epoch grid", "a.agd table data row 2"),
        ([(START_TICKS, 1.0, 0, 0, 0, 0), (START_TICKS + 10**8, "lots", 0, 0, 0, 0)], "non-numeric", "a.agd table data row 2"),
        ([(START_TICKS, -1.0, 0, 0, 0, 0)], "negative value in axis1", "a.agd table data row 1"),
        ([(1, 1.0, 0, 0, 0, 0)], "outside the supported dates", "a.agd table data row 1"),
        ([], "no epochs", "a.agd table data"),
    ],
)  # fmt: skip
def test_bad_rows_name_the_row(
    tmp_path: Path, rows: list[tuple[object, ...]], problem: str, where: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        read_agd(make_agd(tmp_path / "a.agd", rows))

    assert problem in caught.value.message
    assert caught.value.field == where


def test_bad_epoch_setting_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        read_agd(make_agd(tmp_path / "a.agd", settings={"epochlength": "ten"}))

    assert caught.value.field == "a.agd settings epochlength"


def test_missing_tables_and_columns_are_named(tmp_path: Path) -> None:
    path = tmp_path / "a.agd"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE other (x INTEGER)")
    connection.close()

    with pytest.raises(ValidationError, match="table 'settings' missing"):
        read_agd(path)

    no_axis = make_agd(tmp_path / "b.agd", [(START_TICKS,)], columns="dataTimestamp INTEGER")
    with pytest.raises(ValidationError, match="column 'axis1' missing"):
        read_agd(no_axis)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "empty"),
        (b"not a database at all" * 50, "not an SQLite database"),
        (bytes(range(256)) * 8, "not an SQLite database"),
    ],
    ids=["empty", "text", "garbage"],
)
def test_files_that_are_not_sqlite_are_refused(tmp_path: Path, data: bytes, problem: str) -> None:
    path = tmp_path / "a.agd"
    path.write_bytes(data)

    with pytest.raises(ValidationError, match=problem):
        read_agd(path)


def test_a_truncated_database_is_a_named_error(tmp_path: Path) -> None:
    rows = [(START_TICKS + 10 * TICKS_PER_SECOND * i, 1.0, 2.0, 3.0, 0, 0) for i in range(5000)]
    whole = make_agd(tmp_path / "whole.agd", rows).read_bytes()
    cut = tmp_path / "cut.agd"
    cut.write_bytes(whole[: len(whole) // 2])

    with pytest.raises(ValidationError) as caught:
        read_agd(cut)

    assert caught.value.field is not None and caught.value.field.startswith("cut.agd")


def test_the_file_is_not_modified(tmp_path: Path) -> None:
    path = make_agd(tmp_path / "a.agd")
    before = path.read_bytes()

    read_agd(path)

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.agd"]
