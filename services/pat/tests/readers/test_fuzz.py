"""Fuzzing every reader: random bytes and mutations of a valid file (truncation, byte flips, line
deletions and swaps) either read or raise ValidationError; no other exception type escapes."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from novamind.core.errors import ValidationError
from novamind.pat.readers import (
    read_actiware_csv,
    read_agd,
    read_apple_health,
    read_awd,
    read_generic_csv,
    read_mtn,
    read_omh_json,
    read_recording,
)


def awd_seed() -> bytes:
    header = ["subject", "05-Jan-2024", "22:00", " 2 ", "42", "L123456", "F"]
    rows = [f"{(i * 37) % 500} , {i % 9}.5{' M' if i % 11 == 0 else ''}" for i in range(60)]
    return ("\r\n".join(header + rows) + "\r\n").encode()


def actiware_seed() -> bytes:
    start = dt.datetime(2015, 7, 4, 23, 50)
    head = [
        '"Actiware Export File  (Version 05.00 )"',
        '"Identity:","subject"',
        '"Epoch Length:","30","seconds",""',
        '"Time Zone Offset:","+01:00","hours:minutes"',
        '"Actiwatch Serial Number:","A12345"',
        "",
        '"Line","Date","Time","Activity","Marker","White Light","Sleep/Wake","Interval Status",',
        "",
    ]
    rows = [
        f'"{i + 1}","{t:%d/%m/%Y}","{t:%H:%M:%S}","{(i * 13) % 700}","0","{i * 1.25:.2f}","0","ACTIVE",'
        for i, t in enumerate(start + dt.timedelta(seconds=30 * k) for k in range(40))
    ]
    return ("\r\n".join(head + rows) + "\r\n").encode("utf-8-sig")


def agd_seed() -> bytes:
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE TABLE settings (settingID INTEGER PRIMARY KEY, settingName VARCHAR(64), settingValue VARCHAR(8192))"
    )
    connection.executemany(
        "INSERT INTO settings (settingName, settingValue) VALUES (?, ?)",
        [
            ("epochlength", "10"),
            ("devicename", "wGT3XBT"),
            ("deviceserial", "MOS1"),
            ("subjectname", "subject"),
        ],
    )
    connection.execute(
        "CREATE TABLE data (dataTimestamp INTEGER, axis1 REAL, axis2 REAL, axis3 REAL, steps REAL, lux REAL)"
    )
    start = 638_450_000_000_000_000
    connection.executemany(
        "INSERT INTO data VALUES (?, ?, ?, ?, ?, ?)",
        [(start + i * 100_000_000, i % 50, i % 7, i % 3, i % 2, 10 * i) for i in range(300)],
    )
    connection.commit()
    data = connection.serialize()
    connection.close()
    return data


def mtn_seed() -> bytes:
    values = ",".join(str((i * 7) % 90) for i in range(80))
    return (
        '<?xml version="1.0" encoding="UTF-8"?><motionfile><log2 major="2" minor="1">\r\n'
        "<change><property><name>=Device</name><content>MW8</content></property></change>\r\n"
        "<change><property><name>=StartTime</name><content>2018-05-23 17:30:00</content></property></change>\r\n"
        f"<change><channel><name>motion</name><units>Triaxial-Counts</units><epoch>5</epoch><data>{values}</data></channel></change>\r\n"
        f"<change><channel><name>Light</name><units>lux</units><epoch>5</epoch><data>{values}</data></channel></change>\r\n"
        "</log2></motionfile>"
    ).encode()


def generic_seed() -> bytes:
    rows = [f"2024-03-31T01:{m:02d}:00+01:00,{m * 3},{m}" for m in range(40)]
    return ("timestamp,counts,steps\n" + "\n".join(rows) + "\n").encode()


def apple_seed() -> bytes:
    records = []
    for i in range(20):
        start = dt.datetime(2024, 3, 30, 8, 0) + dt.timedelta(minutes=3 * i)
        end = start + dt.timedelta(minutes=2)
        records.append(
            f'<Record type="HKQuantityTypeIdentifierStepCount" sourceName="phone" unit="count" '
            f'startDate="{start:%Y-%m-%d %H:%M:%S} +0100" endDate="{end:%Y-%m-%d %H:%M:%S} +0100" value="{i * 5}"/>'
        )
        records.append(
            f'<Record type="HKQuantityTypeIdentifierHeartRate" sourceName="watch" unit="count/min" '
            f'startDate="{start:%Y-%m-%d %H:%M:%S} +0100" endDate="{start:%Y-%m-%d %H:%M:%S} +0100" value="{60 + i}"/>'
        )
    records.append(
        '<Record type="HKCategoryTypeIdentifierSleepAnalysis" sourceName="watch" '
        'startDate="2024-03-29 23:00:00 +0100" endDate="2024-03-30 06:30:00 +0100" value="HKCategoryValueSleepAnalysisInBed"/>'
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE HealthData [\n<!ELEMENT HealthData (Record)*>\n]>\n'
        '<HealthData locale="en_GB">\n' + "\n".join(records) + "\n</HealthData>\n"
    ).encode()


def omh_seed() -> bytes:
    start = dt.datetime(2026, 3, 29, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    points = []
    for i in range(12):
        t = start + dt.timedelta(minutes=i)
        points.append(
            {
                "header": {
                    "uuid": f"6c7b0c43-6f58-4d9b-9d5c-0f3f1d7a1b{i:02d}",
                    "schema_id": {"namespace": "novamind", "name": "activity-count", "version": "1.0"},
                    "creation_date_time": t.isoformat(),
                },
                "body": {
                    "activity_count": {"value": i * 4, "unit": "counts"},
                    "epoch_duration_seconds": 60,
                    "effective_time_frame": {
                        "time_interval": {
                            "start_date_time": t.isoformat(),
                            "end_date_time": (t + dt.timedelta(minutes=1)).isoformat(),
                        }
                    },
                },
            }
        )
    return ("\n".join(json.dumps(p) for p in points) + "\n").encode()


@dataclass(frozen=True)
class Target:
    reader: Callable[[Path], object]
    seed: bytes
    suffix: str


TARGETS = {
    "awd": Target(read_awd, awd_seed(), ".AWD"),
    "actiware-csv": Target(read_actiware_csv, actiware_seed(), ".csv"),
    "agd": Target(read_agd, agd_seed(), ".agd"),
    "mtn": Target(read_mtn, mtn_seed(), ".mtn"),
    "generic-csv": Target(read_generic_csv, generic_seed(), ".csv"),
    "apple-health": Target(read_apple_health, apple_seed(), ".xml"),
    "omh-json": Target(read_omh_json, omh_seed(), ".jsonl"),
    "detected": Target(read_recording, generic_seed(), ".dat"),
}


@st.composite
def mutations(draw: st.DrawFn, seed: bytes) -> bytes:
    """A valid file cut short, with flipped bytes, or with lines deleted or swapped."""
    kind = draw(st.sampled_from(["truncate", "flip", "delete-lines", "swap-lines"]))
    if kind == "truncate":
        return seed[: draw(st.integers(0, len(seed)))]
    if kind == "flip":
        data = bytearray(seed)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        return bytes(data)
    lines = seed.split(b"\n")
    if kind == "delete-lines":
        for _ in range(draw(st.integers(1, min(5, len(lines) - 1)))):
            del lines[draw(st.integers(0, len(lines) - 1))]
    else:
        i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


# too_slow: drawing up to eight flip positions over a file is slow data generation by design.
FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def read_or_refuse(target: Target, folder: Path, data: bytes) -> None:
    path = folder / f"fuzzed{target.suffix}"
    path.write_bytes(data)
    try:
        target.reader(path)
    except ValidationError as exc:
        assert exc.message and exc.field, "a refusal must say what and where"


@pytest.fixture(scope="session")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("name", TARGETS)
def test_the_seed_file_reads(name: str, fuzz_dir: Path) -> None:
    target = TARGETS[name]
    path = fuzz_dir / f"seed{target.suffix}"
    path.write_bytes(target.seed)

    assert target.reader(path) is not None


@pytest.mark.parametrize("name", TARGETS)
@FUZZ
@given(data=st.binary(min_size=0, max_size=4096))
def test_random_bytes_only_raise_validation_errors(name: str, fuzz_dir: Path, data: bytes) -> None:
    read_or_refuse(TARGETS[name], fuzz_dir, data)


@pytest.mark.parametrize("name", TARGETS)
@FUZZ
@given(data=st.data())
def test_mutated_valid_files_only_raise_validation_errors(
    name: str, fuzz_dir: Path, data: st.DataObject
) -> None:
    target = TARGETS[name]
    read_or_refuse(target, fuzz_dir, data.draw(mutations(target.seed)))


#: Real recordings small enough to mutate a hundred times in a second or two.
REAL_FILES = {"example_01.AWD": read_awd, "test_sample.agd": read_agd, "test_sample.mtn": read_mtn}


@pytest.mark.parametrize("file_name", REAL_FILES)
@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_mutated_real_recordings_only_raise_validation_errors(
    file_name: str, actigraphy_dir: Path, fuzz_dir: Path, data: st.DataObject
) -> None:
    seed = (actigraphy_dir / file_name).read_bytes()
    target = Target(REAL_FILES[file_name], seed, Path(file_name).suffix)

    read_or_refuse(target, fuzz_dir, data.draw(mutations(seed)))
