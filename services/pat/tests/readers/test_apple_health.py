"""Apple Health export.xml: steps spread onto minutes from one source, heart rate, sleep; errors name lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.readers import read_apple_health, read_recording

PROLOGUE = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary)*)>
<!ATTLIST HealthData locale CDATA #REQUIRED>
<!ELEMENT Record ((MetadataEntry|HeartRateVariabilityMetadataList)*)>
<!ATTLIST Record type CDATA #REQUIRED unit CDATA #IMPLIED value CDATA #IMPLIED>
]>
<HealthData locale="en_GB">
 <ExportDate value="2024-04-02 09:00:00 +0100"/>
 <Me HKCharacteristicTypeIdentifierDateOfBirth="1980-01-01"/>
"""


def record(
    kind: str, start: str, end: str, value: str, *, unit: str | None = None, source: str = "Jane's iPhone"
) -> str:
    units = {"HKQuantityTypeIdentifierStepCount": "count", "HKQuantityTypeIdentifierHeartRate": "count/min"}
    unit = unit if unit is not None else units.get(kind)
    unit_attr = f' unit="{unit}"' if unit else ""
    return (
        f' <Record type="{kind}" sourceName="{source}"{unit_attr} creationDate="{end}" '
        f'startDate="{start}" endDate="{end}" value="{value}">\n'
        '  <MetadataEntry key="HKWasUserEntered" value="0"/>\n </Record>\n'
    )


def steps(start: str, end: str, value: str, **kwargs: str) -> str:
    return record("HKQuantityTypeIdentifierStepCount", start, end, value, **kwargs)


def export(*records: str) -> str:
    return PROLOGUE + "".join(records) + "</HealthData>\n"


SAMPLE = export(
    steps("2024-03-30 08:00:30 +0100", "2024-03-30 08:02:30 +0100", "100"),
    steps("2024-03-30 08:05:00 +0100", "2024-03-30 08:06:00 +0100", "60"),
    steps("2024-03-30 08:00:00 +0100", "2024-03-30 08:10:00 +0100", "999", source="Jane's Watch"),
    record("HKQuantityTypeIdentifierHeartRate", "2024-03-30 08:01:00 +0100", "2024-03-30 08:01:00 +0100", "72"),
    record("HKQuantityTypeIdentifierHeartRate", "2024-03-30 07:59:00 +0100", "2024-03-30 07:59:00 +0100", "64.5", source="Jane's Watch"),
    record("HKCategoryTypeIdentifierSleepAnalysis", "2024-03-29 23:10:00 +0100", "2024-03-30 06:40:00 +0100", "HKCategoryValueSleepAnalysisAsleepCore"),
    record("HKQuantityTypeIdentifierBodyMass", "2024-03-30 07:00:00 +0100", "2024-03-30 07:00:00 +0100", "70", unit="kg"),
)  # fmt: skip


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "export.xml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_steps_come_from_the_source_with_most_records_spread_over_minutes(tmp_path: Path) -> None:
    result = read_apple_health(write(tmp_path, SAMPLE))

    recording = result.recording
    assert recording is not None
    assert recording.start == pd.Timestamp("2024-03-30 08:00:00+01:00")
    assert recording.epoch_seconds == 60
    assert recording.counts().tolist() == pytest.approx([25, 50, 25, 0, 0, 60], abs=1e-9)
    assert recording.steps is not None and recording.steps.sum() == 160
    assert recording.metadata["activity_unit"] == "steps"
    assert recording.metadata["step_sources"] == "2"
    assert "Jane" not in repr(recording.device) + repr(recording.metadata)


def test_heart_rate_from_all_sources_sorted_by_time(tmp_path: Path) -> None:
    result = read_apple_health(write(tmp_path, SAMPLE))

    assert result.heart_rate.tolist() == [64.5, 72.0]
    assert list(result.heart_rate.index) == [
        pd.Timestamp("2024-03-30 07:59:00+01:00"),
        pd.Timestamp("2024-03-30 08:01:00+01:00"),
    ]


def test_sleep_intervals_keep_their_category(tmp_path: Path) -> None:
    result = read_apple_health(write(tmp_path, SAMPLE))

    assert result.sleep == [
        (
            pd.Timestamp("2024-03-29 23:10:00+01:00"),
            pd.Timestamp("2024-03-30 06:40:00+01:00"),
            "HKCategoryValueSleepAnalysisAsleepCore",
        )
    ]


def test_records_after_a_dst_change_are_converted_to_the_first_offset(tmp_path: Path) -> None:
    text = export(
        steps("2024-03-31 01:58:00 +0000", "2024-03-31 01:59:00 +0000", "10"),
        steps("2024-03-31 03:00:00 +0100", "2024-03-31 03:01:00 +0100", "20"),
    )

    recording = read_apple_health(write(tmp_path, text)).recording

    assert recording is not None
    assert recording.start == pd.Timestamp("2024-03-31 01:58:00+00:00")
    assert recording.counts().tolist() == [10, 0, 20]


def test_an_export_without_steps_has_no_recording_and_read_recording_says_so(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        export(
            record(
                "HKQuantityTypeIdentifierHeartRate",
                "2024-03-30 08:01:00 +0100",
                "2024-03-30 08:01:00 +0100",
                "72",
            )
        ),
    )

    assert read_apple_health(path).recording is None
    with pytest.raises(ValidationError, match="no step-count records"):
        read_recording(path)


def test_read_recording_detects_the_export_and_returns_the_steps(tmp_path: Path) -> None:
    recording = read_recording(write(tmp_path, SAMPLE))

    assert recording.device.format == "Apple Health"
    assert recording.counts().sum() == 160


@pytest.mark.parametrize(
    ("record_text", "problem"),
    [
        (steps("2024-03-30 08:00:00 +0100", "2024-03-30 08:01:00 +0100", "5", unit="km"), "wrong unit"),
        (steps("2024-03-30 08:00:00 +0100", "2024-03-30 07:59:00 +0100", "5"), "ends before it starts"),
        (steps("2024-03-30 08:00:00 +0100", "2024-03-30 08:01:00 +0100", "-5"), "negative value"),
        (steps("2024-03-30 08:00:00 +0100", "2024-03-30 08:01:00 +0100", "many"), "not a number"),
        (steps("30/03/2024 08:00", "2024-03-30 08:01:00 +0100", "5"), "not understood"),
        (' <Record type="HKQuantityTypeIdentifierStepCount" unit="count" value="5"/>\n', "lacks startDate"),
    ],
)
def test_bad_records_name_the_problem_and_the_line(tmp_path: Path, record_text: str, problem: str) -> None:
    text = export(steps("2024-03-30 07:00:00 +0100", "2024-03-30 07:01:00 +0100", "1"), record_text)

    with pytest.raises(ValidationError) as caught:
        read_apple_health(write(tmp_path, text))

    assert problem in caught.value.message
    record_line = text.split("\n").index(record_text.split("\n")[0]) + 1
    assert caught.value.field == f"export.xml line {record_line}"
    assert "Jane" not in str(caught.value)


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE HealthData [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    '<HealthData locale="x">&b;</HealthData>'
)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "empty"),
        (SAMPLE[: len(SAMPLE) // 2].encode(), "malformed XML"),
        (b"<Other><Record/></Other>", "not <HealthData>"),
        (BILLION_LAUGHS.encode(), "XML refused"),
        (bytes(range(256)) * 16, "malformed XML"),
    ],
    ids=["empty", "truncated", "wrong-root", "entities", "binary"],
)
def test_broken_exports_are_refused_with_the_problem(tmp_path: Path, data: bytes, problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        read_apple_health(write(tmp_path, data))

    assert problem in caught.value.message
    assert caught.value.field is not None and caught.value.field.startswith("export.xml")


def test_a_large_export_streams_in_chunks(tmp_path: Path) -> None:
    minutes = pd.date_range("2024-01-01 00:00", periods=120_000, freq="1min")
    stamps = minutes.strftime("%Y-%m-%d %H:%M:%S +0000")
    ends = (minutes + pd.Timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S +0000")
    body = "".join(
        f'<Record type="HKQuantityTypeIdentifierStepCount" sourceName="p" unit="count" startDate="{s}" endDate="{e}" value="{i % 7}"/>\n'
        for i, (s, e) in enumerate(zip(stamps, ends, strict=True))
    )

    recording = read_apple_health(write(tmp_path, PROLOGUE + body + "</HealthData>\n")).recording

    assert recording is not None
    assert recording.n_epochs == 120_000
    np.testing.assert_array_equal(recording.counts(), np.arange(120_000) % 7)
