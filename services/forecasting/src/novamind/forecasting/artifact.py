"""Forecasting artifacts: train on the synthetic cohort, evaluate on held-out patients, verify on load.

An artifact directory holds one ensemble per target (``<target>/``: the members' files and
``ensemble.json``) and ``manifest.json``:

* ``name``, ``version``, ``seed``, ``config`` (ensemble and cohort), ``data`` (what it learned
  from: the generator, its parameters, patients per split, a hash of the generated arrays);
* ``backtest``: rolling-origin metrics of the ensemble, each member and seasonal naive on
  held-out patients that no model, stacking or calibration step saw;
* ``files``: every file's sha256, checked before anything is read;
* ``artifact_sha256``: one hash of all of the above except the wall-clock fields
  (``trained_at``, ``training_seconds``) — training is deterministic under a seed, so training
  twice gives the same ``artifact_sha256`` (and byte-identical files).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from novamind.core.errors import ModelNotReadyError
from novamind.forecasting.domain import synthetic
from novamind.forecasting.domain.baselines import seasonal_naive
from novamind.forecasting.domain.evaluation import ModelScore, mase_scales, score
from novamind.forecasting.domain.series import FloatArray, Panel
from novamind.forecasting.domain.windows import rolling_windows
from novamind.forecasting.models.ensemble import Ensemble, EnsembleConfig, fit_ensemble, jsonable

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
ARTIFACT_NAME = "symptom-forecast-ensemble"
VERSION = "0.1.0"
#: Fields of the manifest left out of ``artifact_sha256`` (they differ between identical runs).
VOLATILE = ("trained_at", "training_seconds", "artifact_sha256")
SEASONAL_NAIVE = "seasonal-naive"
ENSEMBLE = "ensemble"


@dataclass(frozen=True)
class TrainSpec:
    """What ``novamind-forecasting train`` builds."""

    cohort: synthetic.CohortConfig = field(default_factory=synthetic.CohortConfig)
    #: Extra patients generated for the held-out evaluation (never trained on).
    test_patients: int = 60
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    targets: tuple[str, ...] = tuple(synthetic.TARGETS)
    seed: int = 7
    #: Days between held-out evaluation origins.
    test_stride: int = 7
    #: CPU threads of PyTorch while training (results are identical only for one thread count).
    threads: int = 1


@dataclass
class ForecastArtifact:
    """A loaded, verified artifact."""

    directory: Path
    manifest: dict[str, Any]
    ensembles: dict[str, Ensemble]

    @property
    def sha256(self) -> str:
        return str(self.manifest["artifact_sha256"])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_hash(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest without its volatile fields (canonical JSON)."""
    stable = {k: v for k, v in manifest.items() if k not in VOLATILE}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _data_hash(panels: Sequence[Panel]) -> str:
    digest = hashlib.sha256()
    for panel in panels:
        for array in (panel.target, panel.past, panel.future):
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return digest.hexdigest()


def score_models(
    ensemble: Ensemble,
    panels: Sequence[Panel],
    origins: Sequence[int],
    actual: FloatArray,
    horizon: int,
    *,
    levels: Sequence[float] | None = None,
    season: int | None = None,
    models: Sequence[str] | None = None,
) -> list[ModelScore]:
    """Scores of the ensemble, its members and seasonal naive forecasting each (panel, origin).

    ``actual`` [N, horizon] holds what happened; ``levels`` (default: the trained ones) must be
    trained levels; ``season`` (default: the target's) sets seasonal naive and the MASE scale;
    ``models`` (default: all) picks and orders the scored models.
    """
    levels = tuple(levels or ensemble.levels)
    spec = ensemble.spec if season is None else replace(ensemble.spec, season=season)
    prediction = ensemble.predict(panels, origins, horizon)
    forecasts = {ENSEMBLE: prediction.quantiles, **prediction.members}
    forecasts[SEASONAL_NAIVE] = seasonal_naive(panels, origins, horizon, ensemble.levels, spec)
    index = [list(ensemble.levels).index(q) for q in levels]
    scales = mase_scales(panels, origins, spec.season)
    return [
        score(name, actual, forecasts[name][:, :, index], levels, scales) for name in (models or forecasts)
    ]


def evaluate(ensemble: Ensemble, panels: Sequence[Panel], *, horizon: int, stride: int) -> list[ModelScore]:
    """Rolling-origin scores of the ensemble, its members and seasonal naive on ``panels``."""
    windows = rolling_windows(
        panels, horizon, stride=stride, min_observed_days=ensemble.config.min_observed_days
    )
    return score_models(ensemble, windows.panels(panels), windows.origins.tolist(), windows.actual, horizon)


def train(spec: TrainSpec, out: Path, device: str = "cpu") -> dict[str, Any]:
    """Train every target's ensemble, evaluate it on held-out patients, write the artifact."""
    started = time.monotonic()
    torch.set_num_threads(spec.threads)
    cohort = synthetic.generate_cohort(spec.cohort, seed=spec.seed)
    test_config = replace(spec.cohort, patients=spec.test_patients)
    test_cohort = synthetic.generate_cohort(test_config, seed=spec.seed + 1_000_003)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    backtest: dict[str, Any] = {}
    data_hashes: dict[str, str] = {}
    for target in spec.targets:
        target_spec = synthetic.TARGETS[target]
        train_panels = synthetic.panels(cohort, target)
        test_panels = synthetic.panels(test_cohort, target)
        data_hashes[target] = _data_hash(train_panels)
        ensemble = fit_ensemble(
            train_panels, target_spec, synthetic.SCHEMA, spec.ensemble, seed=spec.seed, device=device
        )
        files.extend(ensemble.save(out / target))
        scores = evaluate(
            ensemble, test_panels, horizon=min(14, ensemble.max_horizon), stride=spec.test_stride
        )
        backtest[target] = {s.model: s.summary() for s in scores}
        log.info("trained %s: %s", target, backtest[target][ENSEMBLE])
    manifest: dict[str, Any] = {
        "name": ARTIFACT_NAME,
        "version": VERSION,
        "seed": spec.seed,
        "targets": list(spec.targets),
        "config": {
            "ensemble": spec.ensemble.to_json(),
            "test_stride": spec.test_stride,
            "threads": spec.threads,
        },
        "data": {
            "generator": "novamind synthetic cohort (docs/forecasting-cohort.md)",
            "cohort": jsonable(asdict(spec.cohort)),
            "test_cohort_patients": spec.test_patients,
            "train_data_sha256": data_hashes,
        },
        "backtest": {
            "description": "held-out synthetic patients, rolling origins every "
            f"{spec.test_stride} days, horizon 14 days",
            "metrics": backtest,
        },
        "files": {str(p.relative_to(out)): sha256_of(p) for p in sorted(files)},
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "training_seconds": round(time.monotonic() - started, 1),
    }
    manifest["artifact_sha256"] = content_hash(manifest)
    (out / MANIFEST).write_text(json.dumps(manifest, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    return manifest


def load(directory: Path, device: str = "cpu") -> ForecastArtifact:
    """Read and verify an artifact; ModelNotReadyError names what is wrong."""
    path = directory / MANIFEST
    if not path.is_file():
        raise ModelNotReadyError(f"no forecasting artifact at {directory} (manifest.json missing)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files: dict[str, str] = manifest["files"]
        targets: list[str] = manifest["targets"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelNotReadyError(f"unreadable forecasting manifest {path}: {exc}") from exc
    if content_hash(manifest) != manifest.get("artifact_sha256"):
        raise ModelNotReadyError(f"forecasting manifest {path} does not match its artifact_sha256")
    for name, expected in files.items():
        file = directory / name
        if not file.is_file():
            raise ModelNotReadyError(f"forecasting artifact file {file} is missing")
        if sha256_of(file) != expected:
            raise ModelNotReadyError(f"forecasting artifact file {file} does not match its sha256")
    try:
        ensembles = {target: Ensemble.load(directory / target, device=device) for target in targets}
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelNotReadyError(f"forecasting artifact {directory} could not be loaded: {exc}") from exc
    return ForecastArtifact(directory=directory, manifest=manifest, ensembles=ensembles)
