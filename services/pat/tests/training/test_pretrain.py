"""Pretraining writes a verifiable, deterministic artifact with its quality against a baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from novamind.core.errors import ModelNotReadyError
from novamind.pat.model.weights import read_artifact
from novamind.pat.training.pretrain import (
    STANDARDISATION_FILE,
    PretrainConfig,
    WeekSource,
    load_standardisation,
    pretrain,
    split_sources,
)

TINY = PretrainConfig(size="S", steps=3, batch_size=4, synthetic_recordings=4, synthetic_days=8, seed=7)


def test_split_is_by_source_never_by_week() -> None:
    weeks = np.zeros((2, 10080))
    sources = [WeekSource(name, weeks) for name in ("b.AWD", "a.AWD", *(f"synthetic-{i}" for i in range(8)))]
    train, held = split_sources(sources)
    assert {s.name for s in held} == {"b.AWD", "synthetic-3", "synthetic-7"}
    assert not {s.name for s in train} & {s.name for s in held}


def test_pretraining_is_deterministic_and_its_manifest_says_what_and_how_well(tmp_path: Path) -> None:
    first = pretrain(TINY, data_dir=None, out_dir=tmp_path / "a")
    second = pretrain(TINY, data_dir=None, out_dir=tmp_path / "b")
    assert first.sha256 == second.sha256, "same seed, same weights"
    assert first.quality == second.quality

    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["architecture"] == "PATMaskedAutoencoder"
    assert manifest["training"]["seed"] == 7 and len(manifest["training"]["loss_curve"]) == 3
    assert manifest["data"]["held_out_sources"] and manifest["data"]["train_sources"]
    quality = manifest["quality"]
    assert quality["held_out_masked_mse"] > 0 and quality["mean_imputation_masked_mse"] > 0

    _, read_back = read_artifact(tmp_path / "a")
    scaler = load_standardisation(tmp_path / "a", read_back)
    assert scaler.mean.shape == (10080,)
    assert read_back.sha256 == first.sha256


def test_tampered_standardisation_is_not_served(tmp_path: Path) -> None:
    manifest = pretrain(TINY, data_dir=None, out_dir=tmp_path)
    np.savez(tmp_path / STANDARDISATION_FILE, mean=np.zeros(10080), scale=np.ones(10080))
    with pytest.raises(ModelNotReadyError) as caught:
        load_standardisation(tmp_path, manifest)
    assert caught.value.field == STANDARDISATION_FILE
