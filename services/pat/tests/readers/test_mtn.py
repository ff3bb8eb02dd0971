"""MotionWatch MTN: the change log's last values win; bad XML, units and values are named errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.readers import read_mtn


def change(inner: str) -> str:
    return f'  <change user="tech" time="2024-03-05 10:00:00">\r\n    {inner}</change>\r\n'


def prop(name: str, content: str) -> str:
    return change(f"<property><name>{name}</name><content>{content}</content></property>")


def channel(name: str, units: str, epoch: str, values: str) -> str:
    return change(
        f"<channel><name>{name}</name><units>{units}</units><epoch>{epoch}</epoch><offset>0</offset>"
        f'<data encoding="text">{values}</data></channel>'
    )


def mtn_text(
    *,
    start: str = "2024-03-04 22:00:00",
    motion: str = "0,5,12,\r\n40,0,7,",
    units: str = "Triaxial-Counts",
    light: str | None = "0.5,1,2,\r\n3,4.25,5,",
    light_units: str = "lux",
    extra: str = "",
) -> str:
    body = (
        prop("+UserID", "Jane Example")
        + prop("=Device", "MW8")
        + prop("=SerialNo", "001234")
        + prop("=StartTime", "2024-01-01 00:00:00")
        + prop("=StartTime", start)
        + channel("motion", units, "30", motion)
        + (channel("Light", light_units, "30", light) if light is not None else "")
        + extra
    )
    return f'\ufeff<?xml version="1.0" encoding="UTF-8"?><motionfile><log2 major="2" minor="1">\r\n{body}</log2></motionfile>'


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "watch.mtn"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_reads_motion_light_and_the_latest_start_time(tmp_path: Path) -> None:
    recording = read_mtn(write(tmp_path, mtn_text()))

    assert recording.start == pd.Timestamp("2024-03-04 22:00:00")
    assert recording.epoch_seconds == 30
    assert recording.counts().tolist() == [0, 5, 12, 40, 0, 7]
    assert recording.light is not None and recording.light.tolist() == [0.5, 1, 2, 3, 4.25, 5]
    assert (recording.device.model, recording.device.serial) == ("MotionWatch 8", "001234")
    assert "Jane Example" not in repr(recording.device) + repr(recording.metadata)


def test_without_a_light_channel_light_is_none(tmp_path: Path) -> None:
    assert read_mtn(write(tmp_path, mtn_text(light=None))).light is None


def test_a_shorter_light_channel_is_padded_with_nan(tmp_path: Path) -> None:
    recording = read_mtn(write(tmp_path, mtn_text(light="1,2,3")))

    assert recording.light is not None
    np.testing.assert_array_equal(recording.light.to_numpy(), [1, 2, 3, np.nan, np.nan, np.nan])


def test_a_start_time_with_an_offset_gives_an_aware_index(tmp_path: Path) -> None:
    recording = read_mtn(write(tmp_path, mtn_text(start="2024-03-04T22:00:00+01:00")))

    assert recording.start == pd.Timestamp("2024-03-04T22:00:00+01:00")


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
    "<motionfile>&lol2;</motionfile>"
)


@pytest.mark.parametrize(
    ("text", "problem", "where"),
    [
        ("", "empty", "watch.mtn"),
        (mtn_text()[:300], "malformed XML", "watch.mtn line "),
        ("<html><body>hello</body></html>", "not <motionfile>", "watch.mtn"),
        (BILLION_LAUGHS, "XML refused", "watch.mtn"),
        (mtn_text(start="yesterday"), "start time malformed", "watch.mtn property =StartTime"),
        (mtn_text().replace("=StartTime", "=Begin"), "start time missing", "watch.mtn property =StartTime"),
        (mtn_text(units="g"), "units are not counts", "watch.mtn channel motion units"),
        (mtn_text(light_units="%"), "units are not lux", "watch.mtn channel Light units"),
        (mtn_text(motion="0,5,x,40"), "not a number", "watch.mtn channel motion value 3"),
        (mtn_text(motion="0,5,-2,40"), "negative value", "watch.mtn channel motion value 3"),
        (mtn_text(motion=""), "no values", "watch.mtn channel motion data"),
        (mtn_text().replace("<epoch>30</epoch>", "<epoch>0</epoch>", 1), "epoch length out of range", "watch.mtn channel motion epoch"),
        (mtn_text().replace("<name>motion</name>", "<name>temp</name>"), "no motion channel", "watch.mtn"),
    ],
)  # fmt: skip
def test_malformed_files_name_the_problem(tmp_path: Path, text: str, problem: str, where: str) -> None:
    with pytest.raises(ValidationError) as caught:
        read_mtn(write(tmp_path, text))

    assert problem in caught.value.message
    assert caught.value.field is not None and caught.value.field.startswith(where)
    assert "Jane" not in str(caught.value)
