"""`novamind-pat metrics` on every shared recording: table, stable JSON, FHIR R4 Bundle, actogram."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from novamind.pat.cli import main

DATA = Path(__file__).resolve().parents[4] / ".." / "shared" / "data" / "actigraphy"
REFERENCE = DATA / "pyactigraphy_reference.json"
FILES = [
    "example_01.AWD",
    "example_02.AWD",
    "example_03.AWD",
    "test_sample_rpx_eng.csv",
    "test_sample.agd",
    "test_sample.mtn",
]

pytestmark = pytest.mark.skipif(
    not REFERENCE.exists(), reason="shared actigraphy data not beside the checkout"
)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["metrics", *args])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def reference(name: str) -> dict[str, Any]:
    recordings = json.loads(REFERENCE.read_text())["recordings"]
    return next(r for r in recordings.values() if r["file"] == name)


@pytest.mark.parametrize("name", FILES)
def test_json_has_the_stable_shape_and_agrees_with_the_reference(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out, _ = run(capsys, str(DATA / name), "--json")
    assert code == 0
    doc = json.loads(out)
    ref = reference(name)
    metrics = ref["metrics"]
    assert doc["recording"]["epoch_seconds"] == ref["epoch_s"]
    assert doc["recording"]["minutes"] == pytest.approx(ref["n_epochs"] * ref["epoch_s"] / 60)
    for section, suffix in (("circadian", "raw"), ("circadian_binarized", "bin4")):
        block = doc[section]
        assert set(block) >= {"IS", "IV", "RA", "L5", "M10"}
        assert block["IS"] == pytest.approx(metrics[f"IS_1H_{suffix}"], abs=0.05)
        assert block["IV"] == pytest.approx(metrics[f"IV_1H_{suffix}"], abs=0.05)
        if isinstance(metrics.get(f"RA_{suffix}"), float):
            per_minute = 60 / ref["epoch_s"] if section == "circadian" else 1.0
            assert block["RA"] == pytest.approx(metrics[f"RA_{suffix}"], abs=0.02)
            assert block["L5"]["value"] == pytest.approx(metrics[f"L5_{suffix}"] * per_minute, rel=0.05)
            assert block["M10"]["value"] == pytest.approx(metrics[f"M10_{suffix}"] * per_minute, rel=0.05)
            assert len(block["L5"]["onset"]) == 5 and block["L5"]["onset"][2] == ":"
        else:
            assert block["L5"] is None and block["M10"] is None
    fractions = doc["sleep"]["fraction_sleep"]
    assert set(fractions) == {"cole_kripke", "sadeh"}
    assert 0 <= fractions["sadeh"] <= 1
    assert isinstance(doc["sleep"]["nights"], list)


def test_nights_of_the_tutorial_recording_are_the_worn_ones(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, str(DATA / "example_01.AWD"), "--json")
    nights = json.loads(out)["sleep"]["nights"]
    # 12.8 days: the first night and the last two days are device-off zeros; ten worn nights remain.
    assert len(nights) == 10
    for night in nights:
        assert 21 <= int(night["in_bed"][11:13]) <= 23
        assert 300 <= night["total_sleep_time_min"] <= 600
        assert 70 <= night["sleep_efficiency_pct"] <= 100


@pytest.mark.parametrize("name", FILES)
def test_table_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str) -> None:
    plot = tmp_path / "actogram.png"
    code, out, _ = run(capsys, str(DATA / name), "--plot", str(plot))
    assert code == 0
    assert "circadian rhythm" in out and "IS" in out and "scored sleep" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


@pytest.mark.parametrize("name", FILES)
def test_fhir_bundle_validates_against_the_r4_models(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, _ = run(
        capsys,
        str(DATA / name),
        "--fhir",
        "--subject",
        "Patient/pt_0123456789abcdef0123",
        "--timezone",
        "Europe/Zurich",
    )
    assert code == 0
    bundle = Bundle.model_validate(json.loads(out))
    assert bundle.type == "collection"
    assert bundle.entry
    observations = [Observation.model_validate(e.resource.model_dump()) for e in bundle.entry]
    for obs in observations:
        assert obs.subject.reference == "Patient/pt_0123456789abcdef0123"
        assert obs.effectivePeriod.start.tzinfo is not None
    rhythm = observations[0]
    codes = {c.code.coding[0].code for c in rhythm.component}
    assert {"interdaily-stability", "intradaily-variability"} <= codes
    for night in observations[1:]:
        assert night.code.coding[0].code == "night-sleep"
        assert night.valueQuantity.system == "http://unitsofmeasure.org" and night.valueQuantity.code == "min"
        loinc = [c for c in night.component if c.code.coding[0].system == "http://loinc.org"]
        assert loinc and loinc[0].code.coding[0].code == "93832-4"


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"\x00\x01\x02garbage\xff" * 50, "binary")],
)
def test_bad_files_exit_2_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, message: str
) -> None:
    bad = tmp_path / "bad.AWD"
    bad.write_bytes(content)
    code, out, err = run(capsys, str(bad))
    assert code == 2 and out == ""
    assert err.startswith("novamind-pat: VALIDATION_ERROR") and message in err.lower()
