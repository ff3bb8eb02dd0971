"""Actiwatch AWD: the epoch codes of the whole family, the light channel, and named errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.readers import read_awd

SUBJECT = "Jane Example"


def awd_bytes(
    counts: Sequence[object] = (0, 12, 40, 7),
    *,
    code: str = "4",
    serial: str = "V123456",
    date: str = "05-Jan-2024",
    time: str = "22:00",
    light: Sequence[object] | None = None,
) -> bytes:
    header = [SUBJECT, date, time, f" {code} ", "42", serial, "F"]
    rows = [
        str(c) if light is None else f"{c} , {lux}" for c, lux in zip(counts, light or counts, strict=True)
    ]
    return ("\r\n".join(header + rows) + "\r\n").encode()


def write(tmp_path: Path, data: bytes, name: str = "subject.AWD") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("code", "seconds"), [("1", 15), ("2", 30), ("4", 60), ("8", 120), ("C1", 5)])
def test_epoch_code_sets_the_epoch(tmp_path: Path, code: str, seconds: int) -> None:
    recording = read_awd(write(tmp_path, awd_bytes(code=code)))

    assert recording.epoch_seconds == seconds
    index = recording.activity.index
    assert isinstance(index, pd.DatetimeIndex) and index.freq == pd.Timedelta(seconds=seconds)
    assert recording.start == pd.Timestamp("2024-01-05 22:00")
    assert recording.counts().tolist() == [0, 12, 40, 7]


def test_light_models_give_a_light_channel_in_lux(tmp_path: Path) -> None:
    data = awd_bytes(code="2", serial="L654321", light=(1.5, 0, 250.25, 3))

    recording = read_awd(write(tmp_path, data))

    assert recording.device.model == "Actiwatch-L"
    assert recording.light is not None
    assert recording.light.tolist() == [1.5, 0.0, 250.25, 3.0]
    assert recording.counts().tolist() == [0, 12, 40, 7]


def test_markers_are_ignored_and_models_without_light_have_none(tmp_path: Path) -> None:
    data = awd_bytes(counts=("0", "12 M", "40,M", "7"))

    recording = read_awd(write(tmp_path, data))

    assert recording.light is None
    assert recording.counts().tolist() == [0, 12, 40, 7]


def test_second_channel_of_a_temperature_model_is_not_light(tmp_path: Path) -> None:
    recording = read_awd(write(tmp_path, awd_bytes(serial="T111111", light=(30.1, 30.2, 30.2, 30.3))))

    assert recording.light is None
    assert recording.metadata["unread_channel"] == "temperature"


def test_trailing_blank_lines_and_eof_mark_are_tolerated(tmp_path: Path) -> None:
    recording = read_awd(write(tmp_path, awd_bytes() + b"\r\n\r\n\x1a"))

    assert recording.n_epochs == 4


def test_subject_name_is_not_kept(tmp_path: Path) -> None:
    recording = read_awd(write(tmp_path, awd_bytes()))

    assert SUBJECT not in repr(recording.device) + repr(recording.metadata)


@pytest.mark.parametrize(
    ("data", "problem", "where"),
    [
        (b"", "empty", "subject.AWD"),
        (b"Jane\r\n05-Jan-2024\r\n22:00\r\n", "truncated header", "subject.AWD line 3"),
        (awd_bytes()[:-2], "truncated", "subject.AWD line 11"),
        (awd_bytes()[: awd_bytes().index(b"F\r\n") + 3], "no epochs", "subject.AWD line 8"),
        (awd_bytes(code="7"), "epoch code", "subject.AWD line 4"),
        (awd_bytes(date="2024/01/05"), "start date", "subject.AWD line 2"),
        (awd_bytes(date="31-Feb-2024"), "calendar date", "subject.AWD line 2"),
        (awd_bytes(time="25:99"), "clock time", "subject.AWD line 3"),
        (awd_bytes(counts=(0, 12, "x7", 7)), "not a number", "subject.AWD line 10"),
        (awd_bytes(counts=(0, 12, -3, 7)), "negative", "subject.AWD line 10"),
        (awd_bytes(counts=(0, "", 3, 7)), "empty data line", "subject.AWD line 9"),
        (bytes(range(256)) * 4, "binary", "subject.AWD"),
    ],
)
def test_malformed_files_name_the_problem_and_the_line(
    tmp_path: Path, data: bytes, problem: str, where: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        read_awd(write(tmp_path, data))

    assert problem in caught.value.message
    assert caught.value.field == where
    assert SUBJECT not in str(caught.value)


def test_a_file_cut_mid_line_is_reported_as_truncated(tmp_path: Path) -> None:
    data = awd_bytes(counts=list(range(100, 200)))
    cut = data[: len(data) // 2 + 1]
    assert not cut.endswith(b"\n")

    with pytest.raises(ValidationError) as caught:
        read_awd(write(tmp_path, cut))

    assert "truncated" in caught.value.message
    assert caught.value.field is not None and caught.value.field.startswith("subject.AWD line ")


def test_a_file_cut_at_a_line_break_reads_the_epochs_it_holds(tmp_path: Path) -> None:
    data = awd_bytes(counts=list(range(100)))
    cut = data[: data.index(b"\r\n50\r\n") + 2]

    recording = read_awd(write(tmp_path, cut))

    assert recording.counts().tolist() == list(range(50))


def test_missing_file_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not found"):
        read_awd(tmp_path / "absent.AWD")
