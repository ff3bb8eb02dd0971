"""Every real recording reads to exactly the numbers pyActigraphy 1.2.2 reports for it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from novamind.pat.readers import detect_format, read_recording

RECORDINGS = {
    "example_01": "awd",
    "example_02": "awd",
    "example_03": "awd",
    "test_sample_rpx_eng": "actiware-csv",
    "test_sample_agd": "agd",
    "test_sample_mtn": "mtn",
}


def wall_clock(stamp: pd.Timestamp) -> str:
    """ISO local clock time without offset, as the reference writes it."""
    return stamp.tz_localize(None).isoformat() if stamp.tzinfo is not None else stamp.isoformat()


@pytest.mark.parametrize("key", RECORDINGS)
def test_reads_the_reference_numbers(key: str, actigraphy_dir: Path, reference: dict[str, Any]) -> None:
    expected = reference[key]

    recording = read_recording(actigraphy_dir / expected["file"])

    counts = recording.counts()
    assert wall_clock(recording.start) == expected["start"]
    # The reference's "end" is the start of the last epoch; Recording.end is exclusive.
    assert wall_clock(recording.activity.index[-1]) == expected["end"]
    assert recording.end - recording.activity.index[-1] == pd.Timedelta(seconds=expected["epoch_s"])
    assert recording.epoch_seconds == expected["epoch_s"]
    assert recording.n_epochs == expected["n_epochs"]
    assert int(np.isnan(counts).sum()) == expected["n_nan"]
    assert np.nansum(counts) == expected["sum"]
    assert np.nanmean(counts) == pytest.approx(expected["mean"], rel=1e-12)
    assert np.nanmax(counts) == expected["max"]
    assert (recording.light is not None) == expected["has_light"]


@pytest.mark.parametrize("key", RECORDINGS)
def test_index_is_regular_with_the_epoch_as_frequency(
    key: str, actigraphy_dir: Path, reference: dict[str, Any]
) -> None:
    recording = read_recording(actigraphy_dir / reference[key]["file"])

    index = recording.activity.index
    assert isinstance(index, pd.DatetimeIndex)
    assert index.freq == pd.Timedelta(seconds=recording.epoch_seconds)
    assert recording.activity.dtype == np.float64
    for channel in (recording.light, recording.steps):
        if channel is not None:
            assert channel.index.equals(index)


@pytest.mark.parametrize(("key", "format_name"), RECORDINGS.items())
def test_format_is_detected_from_content_not_extension(
    key: str, format_name: str, actigraphy_dir: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    renamed = tmp_path / "upload.bin"
    shutil.copyfile(actigraphy_dir / reference[key]["file"], renamed)

    assert detect_format(renamed) == format_name
    assert read_recording(renamed).n_epochs == reference[key]["n_epochs"]


@pytest.mark.parametrize("key", RECORDINGS)
def test_subject_identity_is_not_kept(key: str, actigraphy_dir: Path, reference: dict[str, Any]) -> None:
    recording = read_recording(actigraphy_dir / reference[key]["file"])

    kept = repr(recording.device) + repr(recording.metadata)
    assert reference[key]["subject_name"] not in kept


def test_device_serial_and_model_are_kept(actigraphy_dir: Path) -> None:
    awd = read_recording(actigraphy_dir / "example_01.AWD")
    agd = read_recording(actigraphy_dir / "test_sample.agd")
    mtn = read_recording(actigraphy_dir / "test_sample.mtn")
    rpx = read_recording(actigraphy_dir / "test_sample_rpx_eng.csv")

    assert (awd.device.model, awd.device.serial) == ("Actiwatch-4", "V664055")
    assert (agd.device.model, agd.device.serial) == ("wGT3XBT", "myUUID")
    assert (mtn.device.model, mtn.device.serial) == ("MotionWatch 8", "007565")
    assert (rpx.device.model, rpx.device.serial) == ("Actiwatch 2", "AXXXUK")


def test_agd_counts_are_the_vector_magnitude_and_steps_are_kept(actigraphy_dir: Path) -> None:
    recording = read_recording(actigraphy_dir / "test_sample.agd")

    assert recording.metadata["count_method"] == "vector magnitude"
    assert recording.steps is not None and recording.steps.sum() > 0


def test_actiware_time_zone_offset_makes_an_aware_index(actigraphy_dir: Path) -> None:
    recording = read_recording(actigraphy_dir / "test_sample_rpx_eng.csv")

    assert recording.start == pd.Timestamp("2015-07-04T09:45:00+01:00")
    assert recording.metadata["utc_offset"] == "+01:00"
    assert recording.timezone is None  # an offset is not an IANA zone


def test_device_files_without_a_zone_stay_naive(actigraphy_dir: Path) -> None:
    for name in ("example_01.AWD", "test_sample.agd", "test_sample.mtn"):
        recording = read_recording(actigraphy_dir / name)
        assert recording.start.tzinfo is None
        assert recording.timezone is None
