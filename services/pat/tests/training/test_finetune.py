"""Fine-tuning yields a verifiable head whose cross-validated AUC reflects a real signal in the data.

The labelled weeks are synthetic with a planted, documented difference: label 1 weeks are
generated with a ``low_activity_day`` anomaly on five of their seven days (out-of-bed activity cut
to ``LOW_ACTIVITY_FACTOR``), label 0 weeks with none. The label is read off the generator's
config, so the probe can only score well by finding that difference.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from novamind.core.errors import ModelNotReadyError, ValidationError
from novamind.pat.domain.preprocessing import sliding_weeks, to_minutes
from novamind.pat.domain.synthetic import Anomaly, SyntheticConfig, generate
from novamind.pat.training.finetune import (
    FinetuneConfig,
    finetune,
    load_head,
    roc_auc,
    stratified_group_folds,
)
from novamind.pat.training.pretrain import PretrainConfig, pretrain

WEEKS_PER_CLASS = 12
LOW_ACTIVITY_DAYS = (0, 1, 2, 4, 5)
PROBE = FinetuneConfig(mode="linear_probe", folds=4, seed=0)


def _week(low_activity: bool, seed: int) -> np.ndarray:
    anomalies = tuple(Anomaly("low_activity_day", day) for day in LOW_ACTIVITY_DAYS) if low_activity else ()
    generated = generate(SyntheticConfig(days=7, epoch_seconds=60, anomalies=anomalies), seed=seed)
    week = next(iter(sliding_weeks(to_minutes(generated.recording), align_to_local_midnight=False)))
    return np.asarray(week.values, dtype=np.float64)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("base") / "pat-s-dev"
    pretrain(
        PretrainConfig(size="S", steps=2, batch_size=4, synthetic_recordings=4, synthetic_days=8),
        data_dir=None,
        out_dir=out,
    )
    return out


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("labelled")
    (folder / "weeks").mkdir()
    rows = []
    for i in range(2 * WEEKS_PER_CLASS):
        low_activity = i % 2 == 1
        name = f"weeks/week-{i:02d}.npy"
        np.save(folder / name, _week(low_activity, seed=100 + i))
        rows.append({"week_file": name, "label": int(low_activity), "subject": f"s{i // 2:02d}-{i % 2}"})
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    return folder / "labels.csv"


def _table(folder: Path, frame: pd.DataFrame) -> Path:
    path = folder / "table.csv"
    frame.to_csv(path, index=False)
    return path


def test_linear_probe_finds_the_planted_signal_and_is_deterministic(
    base: Path, labelled: Path, tmp_path: Path
) -> None:
    first = finetune(PROBE, base_dir=base, labels_path=labelled, out_dir=tmp_path / "a")
    second = finetune(PROBE, base_dir=base, labels_path=labelled, out_dir=tmp_path / "b")

    quality = first["quality"]
    assert len(quality["cv_auc"]) == 4
    assert quality["cv_auc_mean"] >= 0.8, quality
    assert first["sha256"] == second["sha256"], "same seed, same head"
    assert first["quality"] == second["quality"]
    assert first["data"]["class_balance"] == {"0": WEEKS_PER_CLASS, "1": WEEKS_PER_CLASS}
    assert first["data"]["cv_grouped_by"] == "subject"
    written = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert written["base"]["sha256"] == json.loads((base / "manifest.json").read_text())["sha256"]
    assert written["mode"] == "linear_probe"


def test_loaded_head_scores_low_activity_weeks_higher(base: Path, labelled: Path, tmp_path: Path) -> None:
    import torch

    from novamind.pat.domain.preprocessing import standardise
    from novamind.pat.model.weights import read_artifact
    from novamind.pat.training.pretrain import load_standardisation

    finetune(PROBE, base_dir=base, labels_path=labelled, out_dir=tmp_path / "head")
    head = load_head(tmp_path / "head")
    model, manifest = read_artifact(base)
    scaler = load_standardisation(base, manifest)
    weeks = np.stack([_week(False, seed=900), _week(True, seed=901)])
    x = torch.from_numpy(standardise(weeks, scaler).astype(np.float32))
    normal, low = head.probabilities(model.encoder, x)  # type: ignore[union-attr]
    assert low > normal


def test_full_fine_tune_writes_encoder_and_head(base: Path, labelled: Path, tmp_path: Path) -> None:
    config = FinetuneConfig(mode="full", folds=2, epochs=1, batch_size=8, seed=1)
    manifest = finetune(config, base_dir=base, labels_path=labelled, out_dir=tmp_path / "full")
    assert manifest["mode"] == "full" and len(manifest["quality"]["cv_auc"]) == 2
    assert load_head(tmp_path / "full").encoder_state is not None


def test_tampered_head_is_not_ready(base: Path, labelled: Path, tmp_path: Path) -> None:
    finetune(PROBE, base_dir=base, labels_path=labelled, out_dir=tmp_path / "head")
    with (tmp_path / "head" / "head.pt").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelNotReadyError, match="does not match"):
        load_head(tmp_path / "head")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns="label"), "lacks column"),
        (lambda t: t.assign(label=[2, *list(t["label"][1:])]), "0 or 1"),
        (lambda t: t.assign(label=0), "both classes"),
        (lambda t: t.head(6), "fewer than the 4 folds"),
        (lambda t: t.assign(week_file=["weeks/missing.npy", *list(t["week_file"][1:])]), "row 1"),
    ],
    ids=["missing column", "label not binary", "single class", "fewer than folds", "unreadable week"],
)
def test_bad_labelled_data_is_a_validation_error(
    base: Path, labelled: Path, change: object, message: str, tmp_path: Path
) -> None:
    table = change(pd.read_csv(labelled))  # type: ignore[operator]
    path = _table(labelled.parent, table)
    with pytest.raises(ValidationError, match=message):
        finetune(PROBE, base_dir=base, labels_path=path, out_dir=tmp_path / "head")


def test_a_week_file_no_reader_understands_names_its_row(base: Path, labelled: Path, tmp_path: Path) -> None:
    (labelled.parent / "weeks" / "garbage.csv").write_text("not,an\nactigraphy,file\n")
    table = pd.read_csv(labelled)
    table.loc[3, "week_file"] = "weeks/garbage.csv"
    with pytest.raises(ValidationError, match="row 4"):
        finetune(PROBE, base_dir=base, labels_path=_table(labelled.parent, table), out_dir=tmp_path / "h")


def test_auc_uses_average_ranks_for_ties() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert roc_auc([1, 0], [0.1, 0.9]) == 0.0


def test_folds_keep_subjects_whole_and_hold_both_classes() -> None:
    labels = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    groups = ["a", "a", "b", "b", "c", "d", "e", "f"]
    folds = stratified_group_folds(labels, groups, 2, seed=3)
    assert folds[0] == folds[1] and folds[2] == folds[3]
    for fold in (0, 1):
        assert set(labels[folds == fold]) == {0, 1}


def test_cli_prints_the_cross_validated_auc(
    base: Path, labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from novamind.pat.cli import main

    argv = ["finetune", "--base", str(base), "--labels", str(labelled), "--out", str(tmp_path / "h")]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--folds", "3"])
    assert exit_.value.code == 0
    assert "3-fold cross-validated ROC AUC" in capsys.readouterr().out
    assert (tmp_path / "h" / "head.pt").is_file()


def test_a_parquet_labels_table_gives_the_same_head_as_its_csv(
    base: Path, labelled: Path, tmp_path: Path
) -> None:
    parquet = labelled.with_suffix(".parquet")
    pd.read_csv(labelled).to_parquet(parquet, index=False)
    from_csv = finetune(PROBE, base_dir=base, labels_path=labelled, out_dir=tmp_path / "csv")
    from_parquet = finetune(PROBE, base_dir=base, labels_path=parquet, out_dir=tmp_path / "parquet")
    assert from_parquet["quality"] == from_csv["quality"]
    assert from_parquet["sha256"] == from_csv["sha256"]
