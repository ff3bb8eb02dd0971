"""Masked-autoencoder pretraining of PAT on the minute-level weeks we have (§4.2 of the paper).

Data: sliding weeks (one-day stride) of the real recordings in a directory of device files, plus
weeks from the synthetic generator. The split is by source, never by week, because overlapping
weeks of one recording are near copies: every recording whose name sorts last and every fourth
synthetic recording are held out.

Standardisation: per-minute-of-week mean and SD fitted on the training weeks (the official
code's ``StandardScaler``), written beside the weights as ``standardisation.npz``.

Quality: the mean squared error (standard deviations², per minute) of the reconstruction of the
masked patches of held-out weeks, next to the mean-imputation baseline that predicts every
masked minute as the mean of the week's visible minutes. Both go into the manifest with the loss
curve, so an artifact shows whether it learned anything.

Deterministic under ``seed``: one thread for intra-op work, seeded torch/numpy generators, fixed
mask permutations for evaluation.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from novamind.core.errors import ModelNotReadyError, ValidationError
from novamind.pat.domain.drift import DEFAULT_BINS, fit_reference, week_statistics
from novamind.pat.domain.preprocessing import (
    StandardScalerParameters,
    fit_standard_scaler,
    sliding_weeks,
    standardise,
    to_minutes,
)
from novamind.pat.domain.synthetic import SyntheticConfig, generate
from novamind.pat.model.pat import PATConfig, PATMaskedAutoencoder
from novamind.pat.model.weights import ArtifactManifest, write_artifact
from novamind.pat.readers import read_recording
from novamind.pat.serving.drift_metrics import REFERENCE_FILENAME

STANDARDISATION_FILE = "standardisation.npz"
DEVICE_SUFFIXES = {".awd", ".csv", ".agd", ".mtn"}


@dataclass(frozen=True)
class PretrainConfig:
    size: str = "S"
    steps: int = 300
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    synthetic_recordings: int = 16
    synthetic_days: int = 10
    seed: int = 0
    eval_masks: int = 4  # fixed mask permutations averaged for the held-out error


@dataclass(frozen=True)
class WeekSource:
    """Weeks of one recording; ``name`` is a file name or ``synthetic-<seed>``."""

    name: str
    weeks: np.ndarray  # (n_weeks, 10080) counts per minute, imputed


def _weeks_of(recording: Any) -> np.ndarray:
    weeks = [w.values for w in sliding_weeks(to_minutes(recording), align_to_local_midnight=False)]
    return np.stack(weeks) if weeks else np.empty((0, 10080))


def real_sources(data_dir: Path) -> Iterator[WeekSource]:
    """Sliding weeks of every device file in ``data_dir`` that holds at least one week."""
    for path in sorted(data_dir.iterdir()):
        if path.suffix.lower() not in DEVICE_SUFFIXES:
            continue
        weeks = _weeks_of(read_recording(path))
        if len(weeks):
            yield WeekSource(path.name, weeks)


def synthetic_sources(count: int, days: int, seed: int) -> Iterator[WeekSource]:
    for i in range(count):
        generated = generate(SyntheticConfig(days=days), seed=seed * 1000 + i)
        yield WeekSource(f"synthetic-{seed * 1000 + i}", _weeks_of(generated.recording))


def split_sources(sources: Iterable[WeekSource]) -> tuple[list[WeekSource], list[WeekSource]]:
    """(train, held out): the last real recording by name and every fourth synthetic one held out."""
    materialised = list(sources)
    real_names = sorted(s.name for s in materialised if not s.name.startswith("synthetic-"))
    held_real = {real_names[-1]} if len(real_names) > 1 else set()
    train, held = [], []
    synthetic_index = 0
    for source in materialised:
        if source.name.startswith("synthetic-"):
            (held if synthetic_index % 4 == 3 else train).append(source)
            synthetic_index += 1
        else:
            (held if source.name in held_real else train).append(source)
    return train, held


def _stack(sources: list[WeekSource]) -> np.ndarray:
    return np.concatenate([s.weeks for s in sources]) if sources else np.empty((0, 10080))


def masked_errors(
    model: PATMaskedAutoencoder, weeks: torch.Tensor, n_masks: int, seed: int
) -> tuple[float, float]:
    """Held-out MSE of the model and of mean imputation on masked minutes (SD² per minute)."""
    config = model.config
    generator = torch.Generator().manual_seed(seed)
    model_err, baseline_err = [], []
    model.eval()
    with torch.inference_mode():
        for _ in range(n_masks):
            shuffle = torch.randperm(config.num_patches, generator=generator)
            out = model(weeks, shuffle=shuffle)
            patches = weeks.view(weeks.shape[0], config.num_patches, config.patch_size)
            recon = out.reconstruction.view_as(patches)
            masked = shuffle[: config.num_masked]
            visible = shuffle[config.num_masked :]
            truth = patches[:, masked]
            model_err.append(float(((recon[:, masked] - truth) ** 2).mean()))
            visible_mean = patches[:, visible].mean(dim=(1, 2), keepdim=True)
            baseline_err.append(float(((visible_mean - truth) ** 2).mean()))
    return float(np.mean(model_err)), float(np.mean(baseline_err))


def pretrain(config: PretrainConfig, *, data_dir: Path | None, out_dir: Path) -> ArtifactManifest:
    """Pretrain PAT-``config.size`` and write the artifact to ``out_dir``; returns its manifest."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(1)
    sources = list(real_sources(data_dir)) if data_dir is not None and data_dir.is_dir() else []
    sources += list(synthetic_sources(config.synthetic_recordings, config.synthetic_days, config.seed))
    train_sources, held_sources = split_sources(sources)
    train_weeks, held_weeks = _stack(train_sources), _stack(held_sources)
    if len(train_weeks) < 2 or len(held_weeks) < 1:
        raise ValidationError("too few weeks to pretrain: need two training weeks and one held out")
    scaler = fit_standard_scaler(train_weeks)
    x_train = torch.from_numpy(standardise(train_weeks, scaler).astype(np.float32))
    x_held = torch.from_numpy(standardise(held_weeks, scaler).astype(np.float32))

    model = PATMaskedAutoencoder(PATConfig.for_size(config.size))
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    started = time.perf_counter()
    model.train()
    for _ in range(config.steps):
        batch = x_train[torch.randint(len(x_train), (config.batch_size,), generator=generator)]
        out = model(batch, generator=generator)
        optimiser.zero_grad(set_to_none=True)
        out.loss.backward()
        optimiser.step()
        losses.append(float(out.loss.detach()))
    seconds = time.perf_counter() - started
    model_mse, baseline_mse = masked_errors(model, x_held, config.eval_masks, config.seed + 1)

    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / STANDARDISATION_FILE, mean=scaler.mean, scale=scaler.scale)
    # The input distribution the model was trained on, for the service's drift gauges (it needs
    # one training week per reference bin; tiny test runs go without).
    drift_reference: str | None = None
    if len(train_weeks) >= DEFAULT_BINS:
        reference = fit_reference([week_statistics(w) for w in train_weeks])
        (out_dir / REFERENCE_FILENAME).write_text(json.dumps(reference.to_json(), indent=2) + "\n")
        drift_reference = REFERENCE_FILENAME
    scaler_sha = hashlib.sha256((out_dir / STANDARDISATION_FILE).read_bytes()).hexdigest()
    every = max(1, config.steps // 50)
    return write_artifact(
        out_dir,
        model,
        {
            "name": f"pat-{config.size.lower()}-mae",
            "version": f"dev-seed{config.seed}-steps{config.steps}",
            "training": {
                "objective": "masked autoencoder, MSE on masked patches",
                "steps": config.steps,
                "batch_size": config.batch_size,
                "optimiser": f"AdamW lr={config.learning_rate} weight_decay={config.weight_decay}",
                "seed": config.seed,
                "seconds": round(seconds, 1),
                "loss_curve": [round(v, 5) for v in losses[::every]],
            },
            "data": {
                "train_sources": [s.name for s in train_sources],
                "held_out_sources": [s.name for s in held_sources],
                "train_weeks": len(train_weeks),
                "held_out_weeks": len(held_weeks),
                "synthetic": {"recordings": config.synthetic_recordings, "days": config.synthetic_days},
                "standardisation": {"file": STANDARDISATION_FILE, "sha256": scaler_sha},
                "drift_reference": drift_reference,
            },
            "quality": {
                "held_out_masked_mse": round(model_mse, 5),
                "mean_imputation_masked_mse": round(baseline_mse, 5),
                "improvement_over_baseline": round(1 - model_mse / baseline_mse, 4),
            },
        },
    )


def load_standardisation(artifact_dir: Path, manifest: ArtifactManifest) -> StandardScalerParameters:
    """The standardisation parameters beside an artifact's weights, checked against its manifest.

    Raises ModelNotReadyError when the file is missing or its sha256 differs from the manifest's.
    """
    path = artifact_dir / STANDARDISATION_FILE
    expected = manifest.data.get("standardisation", {}).get("sha256")
    if not path.is_file():
        raise ModelNotReadyError(f"standardisation parameters not found at {path}", field=path.name)
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != expected:
        raise ModelNotReadyError(f"sha256 {actual} does not match the manifest's {expected}", field=path.name)
    with np.load(path) as data:
        return StandardScalerParameters(mean=data["mean"], scale=data["scale"])
