"""Actiware CSV: English, French and German exports read to the same recording; errors name the line."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.readers import read_actiware_csv, read_recording

SUBJECT = "Jane Example"


@dataclass(frozen=True)
class Language:
    delimiter: str
    date_format: str
    decimal: str
    encoding: str
    identity: str
    model: str
    epoch: str
    serial: str
    section: str
    columns: tuple[str, ...]


ENGLISH = Language(
    ",", "%d/%m/%Y", ".", "utf-8-sig",
    "Identity:", "Actiwatch Type:", "Epoch Length:", "Actiwatch Serial Number:",
    "-------------------- Epoch-by-Epoch Data -------------------",
    ("Line", "Date", "Time", "Activity", "Marker", "White Light", "Sleep/Wake", "Interval Status"),
)  # fmt: skip
FRENCH = Language(
    ",", "%d/%m/%Y", ".", "utf-8-sig",
    "Identité:", "Type d'Actiwatch:", "Longueur de la période:", "Numéro de série de l'Actiwatch:",
    "-------------------- Données période par période -------------------",
    ("Ligne", "Date", "Heure", "Activité", "Marqueur", "Lumière blanche", "Sommeil/Éveil", "Statut de l'intervalle"),
)  # fmt: skip
GERMAN = Language(
    ";", "%d.%m.%Y", ",", "cp1252",
    "Identität:", "Actiwatch-Typ:", "Epochenlänge:", "Actiwatch-Seriennummer:",
    "-------------------- Epoche-für-Epoche-Daten -------------------",
    ("Zeile", "Datum", "Zeit", "Aktivität", "Markierung", "Weißes Licht", "Schlaf/Wach", "Intervallstatus"),
)  # fmt: skip

START = dt.datetime(2015, 7, 4, 23, 58, 0)
ACTIVITY = ["0", "9", "NaN", "245", "1203", "0", "17", "3"]
LIGHT = ["0.01", "12.5", "NaN", "88.57", "19483.97", "0", "3.25", "1"]


def export(
    language: Language = ENGLISH,
    *,
    epoch_header: str = "30",
    activity: list[str] = ACTIVITY,
    start: dt.datetime = START,
    step_seconds: int = 30,
    times: list[dt.datetime] | None = None,
    date_format: str | None = None,
    time_format: str = "%H:%M:%S",
) -> str:
    """A small Actiware export in ``language`` (header block, column notes, table)."""
    d = language.delimiter

    def row(*cells: str) -> str:
        return d.join(f'"{c}"' for c in cells)

    stamps = times or [start + dt.timedelta(seconds=step_seconds * i) for i in range(len(activity))]
    lines = [
        '"Actiware Export File  (Version 05.00 )"',
        row("Filename:", ""),
        "",
        row(language.identity, SUBJECT),
        row(language.model, "Actiwatch 2"),
        row(language.epoch, epoch_header, "seconds", ""),
        row(language.serial, "A12345"),
        "",
        f'"{language.section}"',
        "",
        row(*language.columns) + d,
        "",
    ]
    for i, (stamp, count, lux) in enumerate(zip(stamps, activity, LIGHT, strict=False), start=1):
        lines.append(
            row(
                str(i),
                stamp.strftime(date_format or language.date_format),
                stamp.strftime(time_format),
                count.replace(".", language.decimal),
                "0",
                lux.replace(".", language.decimal),
                "0",
                "ACTIVE",
            )
            + d
        )
    return "\r\n".join(lines) + "\r\n"


def write(tmp_path: Path, text: str, language: Language = ENGLISH, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(language.encoding))
    return path


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.split("\r\n"), start=1) if fragment in line)


def test_english_excerpt_reads_epochs_counts_and_light(tmp_path: Path) -> None:
    recording = read_actiware_csv(write(tmp_path, export()))

    assert recording.start == pd.Timestamp(START)
    assert recording.epoch_seconds == 30
    assert recording.n_epochs == len(ACTIVITY)
    np.testing.assert_array_equal(recording.counts(), [0, 9, np.nan, 245, 1203, 0, 17, 3])
    assert recording.light is not None
    np.testing.assert_array_equal(
        recording.light.to_numpy(), [0.01, 12.5, np.nan, 88.57, 19483.97, 0, 3.25, 1]
    )
    assert (recording.device.model, recording.device.serial) == ("Actiwatch 2", "A12345")
    assert SUBJECT not in repr(recording.device) + repr(recording.metadata)


@pytest.mark.parametrize("language", [FRENCH, GERMAN], ids=["french", "german"])
def test_translated_exports_read_to_the_same_numbers_as_english(tmp_path: Path, language: Language) -> None:
    english = read_actiware_csv(write(tmp_path, export(), name="en.csv"))

    translated = read_actiware_csv(write(tmp_path, export(language), language, name="xx.csv"))

    pd.testing.assert_series_equal(translated.activity, english.activity)
    assert translated.light is not None and english.light is not None
    pd.testing.assert_series_equal(translated.light, english.light)
    assert translated.epoch_seconds == english.epoch_seconds
    assert translated.device == english.device


def test_month_first_dates_are_recognised_when_day_first_would_jump(tmp_path: Path) -> None:
    text = export(date_format="%m/%d/%Y", time_format="%I:%M:%S %p")

    recording = read_actiware_csv(write(tmp_path, text))

    assert recording.start == pd.Timestamp(START)
    assert recording.activity.index[-1] == pd.Timestamp("2015-07-05 00:01:30")
    assert "date_order" not in recording.metadata


def test_ambiguous_day_and_month_are_read_day_first_and_flagged(tmp_path: Path) -> None:
    text = export(start=dt.datetime(2015, 7, 4, 9, 0))

    recording = read_actiware_csv(write(tmp_path, text))

    assert recording.start == pd.Timestamp("2015-07-04 09:00")
    assert recording.metadata["date_order"] == "ambiguous; read day-first"


def test_time_zone_offset_in_the_header_gives_an_aware_index(tmp_path: Path) -> None:
    text = export().replace(
        '"Actiwatch Serial Number:"',
        '"Time Zone Offset:","-05:00","hours:minutes"\r\n"Actiwatch Serial Number:"',
    )

    recording = read_actiware_csv(write(tmp_path, text))

    assert recording.start == pd.Timestamp("2015-07-04 23:58:00-05:00")
    assert recording.metadata["utc_offset"] == "-05:00"


def test_without_an_epoch_header_the_spacing_gives_the_epoch_and_gaps_become_nan(tmp_path: Path) -> None:
    stamps = [START + dt.timedelta(seconds=15 * i) for i in (0, 1, 2, 5, 6, 7, 8, 9)]
    text = export(times=stamps).replace('"Epoch Length:","30","seconds",""\r\n', "")

    recording = read_actiware_csv(write(tmp_path, text))

    assert recording.epoch_seconds == 15
    assert recording.n_epochs == 10
    assert np.isnan(recording.counts()[3:5]).all()


ROW_3, ROW_4 = '"3",', '"4",'


def swap_rows(text: str, first: str, second: str) -> str:
    lines = text.split("\r\n")
    i = next(n for n, line in enumerate(lines) if line.startswith(f'"{first}",'))
    j = next(n for n, line in enumerate(lines) if line.startswith(f'"{second}",'))
    lines[i], lines[j] = lines[j], lines[i]
    return "\r\n".join(lines)


def test_decreasing_timestamps_name_the_line(tmp_path: Path) -> None:
    text = swap_rows(export(), "3", "4")

    with pytest.raises(ValidationError) as caught:
        read_actiware_csv(write(tmp_path, text))

    assert "earlier than the previous" in caught.value.message
    assert caught.value.field == f"export.csv line {line_of(text, ROW_3)}"


def test_duplicated_timestamps_name_the_line(tmp_path: Path) -> None:
    stamps = [START + dt.timedelta(seconds=30 * i) for i in (0, 1, 2, 2, 3, 4, 5, 6)]
    text = export(times=stamps)

    with pytest.raises(ValidationError) as caught:
        read_actiware_csv(write(tmp_path, text))

    assert "duplicated timestamp" in caught.value.message
    assert caught.value.field == f"export.csv line {line_of(text, ROW_4)}"


@pytest.mark.parametrize(
    ("text", "problem", "row"),
    [
        (export(epoch_header="60"), "not on the 60-second epoch grid", '"2",'),
        (export(epoch_header="thirty"), "epoch length is not a number", '"Epoch Length:"'),
        (export(activity=["0", "9", "lots", "245"]), "not a number; expected activity counts", '"3",'),
        (export(activity=["0", "-9", "1", "245"]), "negative value", '"2",'),
        (export().replace('"04/07/2015","23:59:00"', '"31/31/2015","23:59:00"'), "date or time not understood", '"3",'),
        (export().replace('"1203","0","19483.97"', '"1203"'), "too few cells", '"5",'),
    ],
)  # fmt: skip
def test_malformed_cells_name_the_problem_and_the_line(
    tmp_path: Path, text: str, problem: str, row: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        read_actiware_csv(write(tmp_path, text))

    assert problem in caught.value.message
    assert caught.value.field == f"export.csv line {line_of(text, row)}"
    assert SUBJECT not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "empty"),
        (b"\r\n \r\n", "empty"),
        (export().split('"----')[0].encode(), "no epoch-by-epoch table"),
        (export().encode()[:-8], "truncated"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary"),
    ],
    ids=["empty", "blank", "no-table", "truncated", "binary"],
)
def test_broken_files_name_the_problem(tmp_path: Path, data: bytes, problem: str) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(data)

    with pytest.raises(ValidationError) as caught:
        read_actiware_csv(path)

    assert problem in caught.value.message
    assert caught.value.field is not None and caught.value.field.startswith("export.csv")


def test_a_month_of_30_second_epochs_reads_in_a_few_seconds(tmp_path: Path) -> None:
    n = 30 * 2880
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 3000, size=n)
    stamps = pd.date_range("2024-03-01", periods=n, freq="30s")
    dates = stamps.strftime("%d/%m/%Y")
    clock = stamps.strftime("%H:%M:%S")
    header = export().split('"1",')[0]
    rows = [
        f'"{i + 1}","{d}","{c}","{a}","0","1.00","0","ACTIVE",'
        for i, (d, c, a) in enumerate(zip(dates, clock, counts, strict=True))
    ]
    path = tmp_path / "month.csv"
    path.write_text(header + "\r\n".join(rows) + "\r\n", encoding="utf-8")

    began = time.perf_counter()
    recording = read_recording(path)
    elapsed = time.perf_counter() - began

    assert recording.n_epochs == n
    assert recording.counts().sum() == counts.sum()
    assert elapsed < 5.0, f"read took {elapsed:.1f} s"
