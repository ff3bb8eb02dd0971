"""read_recording: formats are recognised by content, overridable by name, and unknowns are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from novamind.core.errors import ValidationError
from novamind.pat.readers import FORMATS, detect_format, read_recording

AWD = b"Jane\r\n05-Jan-2024\r\n22:00\r\n 4 \r\n40\r\nV123456\r\nF\r\n0\r\n5\r\n"
GENERIC = b"timestamp,counts\n2024-03-04T00:00:00,1\n2024-03-04T00:01:00,2\n"
ACTIWARE = (
    b'"Actiware Export File"\r\n"Epoch Length:","60","seconds"\r\n\r\n'
    b'"Line","Date","Time","Activity",\r\n"1","04/03/2024","00:00:00","1",\r\n"2","04/03/2024","00:01:00","2",\r\n'
)
MTN = (
    b'<?xml version="1.0"?><motionfile><log2><change><property><name>=StartTime</name>'
    b"<content>2024-03-04 00:00:00</content></property></change><change><channel><name>motion</name>"
    b"<units>Counts</units><epoch>60</epoch><data>1,2</data></channel></change></log2></motionfile>"
)
APPLE = (
    b'<?xml version="1.0"?>\n<HealthData locale="en"><Record type="HKQuantityTypeIdentifierStepCount" unit="count" '
    b'startDate="2024-03-04 00:00:00 +0000" endDate="2024-03-04 00:01:00 +0000" value="3"/></HealthData>\n'
)
OMH = b"[]"


@pytest.mark.parametrize(
    ("data", "expected"),
    [(AWD, "awd"), (GENERIC, "generic-csv"), (ACTIWARE, "actiware-csv"), (MTN, "mtn"), (APPLE, "apple-health"), (OMH, "omh-json")],
)  # fmt: skip
def test_format_is_recognised_from_content_whatever_the_name(
    tmp_path: Path, data: bytes, expected: str
) -> None:
    path = tmp_path / "upload.dat"
    path.write_bytes(data)

    assert detect_format(path) == expected


@pytest.mark.parametrize("data", [AWD, GENERIC, ACTIWARE, MTN, APPLE])
def test_every_detected_format_reads(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "upload.dat"
    path.write_bytes(data)

    assert read_recording(path).n_epochs >= 1


def test_format_argument_overrides_detection(tmp_path: Path) -> None:
    path = tmp_path / "counts.csv"
    path.write_bytes(GENERIC)

    with pytest.raises(ValidationError, match=r"truncated header|epoch code|start date"):
        read_recording(path, format="awd")
    assert read_recording(path, format=" Generic-CSV ").n_epochs == 2


def test_unknown_format_name_lists_the_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "counts.csv"
    path.write_bytes(GENERIC)

    with pytest.raises(ValidationError) as caught:
        read_recording(path, format="gt3x")

    assert caught.value.field == "format"
    for name in FORMATS:
        assert name in caught.value.message


def test_unrecognised_content_without_a_known_extension_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"just some words\nand more words\n")

    with pytest.raises(ValidationError, match="not recognised; supported formats: awd, actiware-csv"):
        read_recording(path)


def test_binary_garbage_with_a_device_extension_goes_to_that_reader_and_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "watch.awd"
    path.write_bytes(bytes(range(256)) * 4)

    with pytest.raises(ValidationError, match="binary"):
        read_recording(path)


@pytest.mark.parametrize("name", ["empty.awd", "empty.csv"])
def test_empty_and_missing_files_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")

    with pytest.raises(ValidationError, match="empty"):
        read_recording(path)
    with pytest.raises(ValidationError, match="not found"):
        read_recording(tmp_path / "absent.awd")
