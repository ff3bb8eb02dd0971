"""Training writes a verifiable, versioned artifact, deterministically under a seed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from novamind.core.errors import ModelNotReadyError
from novamind.forecasting import artifact
from novamind.forecasting.cli import main
from novamind.forecasting.domain import synthetic

from .conftest import quick_train_spec


def test_manifest_records_data_seed_config_metrics_and_file_hashes(quick_artifact: Path) -> None:
    manifest = json.loads((quick_artifact / "manifest.json").read_text())
    assert manifest["name"] == "symptom-forecast-ensemble" and manifest["version"]
    assert manifest["targets"] == ["phq9_total", "mood_rating"]
    assert manifest["seed"] == 7
    assert manifest["data"]["cohort"]["patients"] == 40
    assert set(manifest["data"]["train_data_sha256"]) == {"phq9_total", "mood_rating"}
    assert manifest["config"]["ensemble"]["max_horizon"] == 30
    metrics = manifest["backtest"]["metrics"]["phq9_total"]
    assert set(metrics) == {"ensemble", "quantile-transformer", "xgboost-quantile", "seasonal-naive"}
    assert {"wql", "mase", "coverage_80"} <= set(metrics["ensemble"])
    for name, digest in manifest["files"].items():
        assert artifact.sha256_of(quick_artifact / name) == digest
    assert artifact.content_hash(manifest) == manifest["artifact_sha256"]


def test_training_twice_with_one_seed_gives_the_same_artifact(quick_artifact: Path, tmp_path: Path) -> None:
    again = artifact.train(quick_train_spec(targets=("phq9_total", "mood_rating")), tmp_path / "again")
    first = json.loads((quick_artifact / "manifest.json").read_text())
    assert again["artifact_sha256"] == first["artifact_sha256"]
    assert again["files"] == first["files"]
    for name in first["files"]:
        assert (tmp_path / "again" / name).read_bytes() == (quick_artifact / name).read_bytes()


def test_another_seed_gives_another_artifact(tmp_path: Path) -> None:
    spec = quick_train_spec(targets=("mood_rating",), seed=8)
    other = artifact.train(spec, tmp_path / "other")
    baseline = artifact.train(quick_train_spec(targets=("mood_rating",)), tmp_path / "base")
    assert other["artifact_sha256"] != baseline["artifact_sha256"]


def test_a_tampered_or_incomplete_artifact_is_refused(quick_artifact: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(quick_artifact, copy)
    loaded = artifact.load(copy)
    assert set(loaded.ensembles) == {"phq9_total", "mood_rating"}
    ensemble_file = copy / "phq9_total" / "ensemble.json"
    ensemble_file.write_text(ensemble_file.read_text().replace('"seed"', '"seeds"'))
    with pytest.raises(ModelNotReadyError, match="does not match its sha256"):
        artifact.load(copy)
    ensemble_file.unlink()
    with pytest.raises(ModelNotReadyError, match="is missing"):
        artifact.load(copy)
    manifest = json.loads((quick_artifact / "manifest.json").read_text())
    manifest["backtest"]["metrics"]["phq9_total"]["ensemble"]["wql"] = 0.0
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelNotReadyError, match="artifact_sha256"):
        artifact.load(copy)
    with pytest.raises(ModelNotReadyError, match=r"manifest\.json missing"):
        artifact.load(tmp_path / "nothing")


def test_held_out_coverage_and_ensemble_quality_are_recorded(quick_artifact: Path) -> None:
    """Even the quick artifact's calibrated 80 % interval roughly holds on held-out patients."""
    loaded = artifact.load(quick_artifact)
    test_cohort = synthetic.generate_cohort(synthetic.CohortConfig(patients=15, days=120), seed=99)
    scores = {
        s.model: s
        for s in artifact.evaluate(
            loaded.ensembles["mood_rating"],
            synthetic.panels(test_cohort, "mood_rating"),
            horizon=14,
            stride=7,
        )
    }
    assert 0.7 <= scores["ensemble"].coverage(0.8) <= 0.9
    assert scores["ensemble"].wql < scores["seasonal-naive"].wql


def test_backtest_command_evaluates_an_artifact_on_new_patients(
    quick_artifact: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["backtest", "--artifact", str(quick_artifact), "--patients", "6", "--horizon", "7", "--json"])
    assert exited.value.code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"phq9_total", "mood_rating"}
    for scores in report.values():
        assert set(scores) == {"ensemble", "quantile-transformer", "xgboost-quantile", "seasonal-naive"}
        assert all(0 < s["wql"] < 1 and 0 <= s["coverage_80"] <= 1 for s in scores.values())

    with pytest.raises(SystemExit) as exited:
        main(["backtest", "--artifact", str(quick_artifact.parent / "absent")])
    assert exited.value.code == 2
    assert "manifest.json missing" in capsys.readouterr().err
