"""The forecasting ensemble: members trained on some patients, stacked and calibrated on others.

:func:`fit_ensemble` splits the training patients three ways (never by time, so every split
sees every season of the cohort):

* *fit* patients train each member (the quantile Transformer and the XGBoost direct models);
* *stacking* patients give validation windows on which the member weights are learned per
  quantile level and horizon bucket (:mod:`novamind.forecasting.domain.stacking`);
* *calibration* patients give windows on which conformalised quantile regression fixes the
  coverage of each central interval per horizon day (:mod:`novamind.forecasting.domain.conformal`).

:meth:`Ensemble.predict` runs the members, stacks them, applies the conformal corrections and
clips to the target's bounds. The members' own (raw, clipped) forecasts come back too, so a
response can show each member's share.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from novamind.core.errors import ValidationError
from novamind.forecasting.domain.conformal import ConformalCalibration, fit_conformal
from novamind.forecasting.domain.series import CovariateSchema, FloatArray, Panel, TargetSpec
from novamind.forecasting.domain.stacking import StackingWeights, fit_stacking
from novamind.forecasting.domain.windows import Windows, rolling_windows
from novamind.forecasting.models.base import DEFAULT_TRAINED_QUANTILES, FitContext, Importance, Member
from novamind.forecasting.models.gbm import GbmConfig, GbmQuantileModel, fit_gbm
from novamind.forecasting.models.transformer import QuantileTransformer, TransformerConfig, fit_transformer

log = logging.getLogger(__name__)

TRANSFORMER = "quantile-transformer"
GBM = "xgboost-quantile"
ENSEMBLE_FILE = "ensemble.json"
T = TypeVar("T")


@dataclass(frozen=True)
class EnsembleConfig:
    """Everything that shapes a trained ensemble (stored in the artifact)."""

    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    gbm: GbmConfig = field(default_factory=GbmConfig)
    #: Trained quantile levels; requests may ask for any subset.
    quantiles: tuple[float, ...] = DEFAULT_TRAINED_QUANTILES
    #: Longest horizon (days) the ensemble forecasts.
    max_horizon: int = 30
    #: Fewest observed target days a history needs.
    min_observed_days: int = 7
    #: Share of the training patients held back for stacking (half) and calibration (half).
    validation_share: float = 0.3
    #: Days between evaluation origins in the stacking and calibration windows.
    validation_stride: int = 2
    #: Horizon buckets of the stacking weights (inclusive day ranges).
    stacking_buckets: tuple[tuple[int, int], ...] = ((1, 3), (4, 7), (8, 14), (15, 30))

    @classmethod
    def quick(cls) -> EnsembleConfig:
        """A configuration that trains in well under a minute (tests, ``--quick`` benchmarks)."""
        return cls(
            transformer=TransformerConfig(
                context_days=42,
                d_model=16,
                heads=2,
                encoder_layers=1,
                decoder_layers=1,
                feedforward=32,
                batch_size=32,
                steps=150,
                eval_every=50,
                valid_windows=256,
            ),
            gbm=GbmConfig(
                buckets=((1, 1), (2, 3), (4, 7), (8, 14), (15, 30)),
                trials=2,
                startup_trials=2,
                cv_folds=2,
                max_rows_per_bucket=3000,
                max_tuning_rows=3000,
                max_rounds=60,
                tuning_horizons=(1, 7),
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EnsembleConfig:
        return _from_json(cls, data)


@dataclass(frozen=True)
class EnsemblePrediction:
    """Forecasts of N windows at the trained levels."""

    levels: tuple[float, ...]
    #: Calibrated, stacked, clipped ensemble quantiles [N, H, Q].
    quantiles: FloatArray
    #: Each member's raw quantiles [N, H, Q], clipped to the target's bounds.
    members: dict[str, FloatArray]
    #: Each member's weight at the median level per horizon day, [H] per member.
    median_weights: dict[str, FloatArray]


@dataclass
class Ensemble:
    """A trained ensemble for one target (see the module docstring)."""

    spec: TargetSpec
    schema: CovariateSchema
    config: EnsembleConfig
    members: dict[str, Member]
    stacking: StackingWeights
    conformal: ConformalCalibration
    #: How the ensemble was trained: patients per split, windows, seed.
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def levels(self) -> tuple[float, ...]:
        return self.config.quantiles

    @property
    def max_horizon(self) -> int:
        return self.config.max_horizon

    def predict(self, panels: Sequence[Panel], origins: Sequence[int], horizon: int) -> EnsemblePrediction:
        """Forecast ``horizon`` days from each (panel, origin)."""
        if not 1 <= horizon <= self.max_horizon:
            raise ValidationError(
                f"horizon of {horizon} days is outside 1-{self.max_horizon}", field="horizon_days"
            )
        raw = {name: member.predict(panels, origins, horizon) for name, member in self.members.items()}
        stacked = self.stacking.combine([raw[name] for name in self.stacking.members])
        calibrated = self.conformal.apply(stacked, self.levels)
        median = int(np.argmin(np.abs(np.asarray(self.levels) - 0.5)))
        per_day = self.stacking.per_day(horizon)[:, median, :]  # [H, K]
        return EnsemblePrediction(
            levels=self.levels,
            quantiles=np.sort(self.spec.clip(calibrated), axis=-1),
            members={name: np.sort(self.spec.clip(values), axis=-1) for name, values in raw.items()},
            median_weights={name: per_day[:, k].copy() for k, name in enumerate(self.stacking.members)},
        )

    def explain(self, panel: Panel, origin: int, horizon: int) -> list[Importance]:
        """Every member's named importances for one forecast."""
        out: list[Importance] = []
        for member in self.members.values():
            out.extend(member.explain(panel, origin, horizon))
        return out

    # ---- persistence ------------------------------------------------------------------------

    def save(self, directory: Path) -> list[Path]:
        """Write the members and ``ensemble.json`` into ``directory``; returns every file written."""
        directory.mkdir(parents=True, exist_ok=True)
        files: list[Path] = []
        for name, member in self.members.items():
            files.extend(member.save(directory / name))
        document = {
            "spec": asdict(self.spec),
            "schema": {"past": list(self.schema.past), "future": list(self.schema.future)},
            "config": self.config.to_json(),
            "stacking": self.stacking.to_json(),
            "conformal": self.conformal.to_json(),
            "provenance": self.provenance,
        }
        path = directory / ENSEMBLE_FILE
        path.write_text(json.dumps(document, sort_keys=True, indent=1) + "\n", encoding="utf-8")
        files.append(path)
        return sorted(files)

    @classmethod
    def load(cls, directory: Path, device: str = "cpu") -> Ensemble:
        document = json.loads((directory / ENSEMBLE_FILE).read_text(encoding="utf-8"))
        spec = TargetSpec(**document["spec"])
        schema = CovariateSchema(
            past=tuple(document["schema"]["past"]), future=tuple(document["schema"]["future"])
        )
        members: dict[str, Member] = {
            TRANSFORMER: QuantileTransformer.load(directory / TRANSFORMER, device=device),
            GBM: GbmQuantileModel.load(directory / GBM),
        }
        return cls(
            spec=spec,
            schema=schema,
            config=EnsembleConfig.from_json(document["config"]),
            members=members,
            stacking=StackingWeights.from_json(document["stacking"]),
            conformal=ConformalCalibration.from_json(document["conformal"]),
            provenance=document.get("provenance", {}),
        )


def split_patients(count: int, validation_share: float, seed: int) -> tuple[list[int], list[int], list[int]]:
    """Indices of the fit, stacking and calibration patients (a seeded shuffle)."""
    if count < 3:
        raise ValidationError(f"an ensemble needs at least 3 training series, got {count}", field="panels")
    order = np.random.default_rng(seed).permutation(count).tolist()
    held = max(2, round(count * validation_share))
    held = min(held, count - 1)
    stack_n = max(1, held // 2)
    validation = order[:held]
    return sorted(order[held:]), sorted(validation[:stack_n]), sorted(validation[stack_n:] or validation[:1])


def fit_ensemble(
    panels: Sequence[Panel],
    spec: TargetSpec,
    schema: CovariateSchema,
    config: EnsembleConfig,
    seed: int,
    device: str = "cpu",
) -> Ensemble:
    """Train, stack and calibrate an ensemble on ``panels`` (see the module docstring)."""
    fit_idx, stack_idx, calib_idx = split_patients(len(panels), config.validation_share, seed)
    context = FitContext(
        spec=spec,
        schema=schema,
        quantiles=tuple(sorted(config.quantiles)),
        max_horizon=config.max_horizon,
        min_observed_days=config.min_observed_days,
        seed=seed,
        device=device,
    )
    fit_panels = [panels[i] for i in fit_idx]
    stack_panels = [panels[i] for i in stack_idx]
    calib_panels = [panels[i] for i in calib_idx]
    log.info("training %s members on %d series", spec.name, len(fit_panels))
    members: dict[str, Member] = {
        TRANSFORMER: fit_transformer(fit_panels, context, config.transformer, valid=stack_panels),
        GBM: fit_gbm(fit_panels, context, config.gbm),
    }
    names = tuple(members)
    levels = context.quantiles

    stack_windows = _windows(stack_panels, config)
    stack_raw = _member_forecasts(members, stack_panels, stack_windows, config.max_horizon)
    stacking = fit_stacking(
        stack_windows.actual,
        [stack_raw[n] for n in names],
        names,
        levels,
        _buckets(config.stacking_buckets, config.max_horizon),
    )
    calib_windows = _windows(calib_panels, config)
    calib_raw = _member_forecasts(members, calib_panels, calib_windows, config.max_horizon)
    stacked = spec.clip(stacking.combine([calib_raw[n] for n in names]))
    conformal = fit_conformal(
        calib_windows.actual, stacked, levels, _buckets(config.stacking_buckets, config.max_horizon)
    )
    provenance = {
        "seed": seed,
        "series": {"fit": len(fit_panels), "stacking": len(stack_panels), "calibration": len(calib_panels)},
        "windows": {"stacking": len(stack_windows), "calibration": len(calib_windows)},
    }
    return Ensemble(
        spec=spec,
        schema=schema,
        config=replace(config, quantiles=levels),
        members=members,
        stacking=stacking,
        conformal=conformal,
        provenance=provenance,
    )


def _windows(panels: Sequence[Panel], config: EnsembleConfig) -> Windows:
    return rolling_windows(
        panels,
        config.max_horizon,
        stride=config.validation_stride,
        min_observed_days=config.min_observed_days,
    )


def _member_forecasts(
    members: Mapping[str, Member], panels: Sequence[Panel], windows: Windows, horizon: int
) -> dict[str, FloatArray]:
    chosen = windows.panels(panels)
    origins = windows.origins.tolist()
    return {name: member.predict(chosen, origins, horizon) for name, member in members.items()}


def _buckets(buckets: Sequence[tuple[int, int]], max_horizon: int) -> tuple[tuple[int, int], ...]:
    """The configured buckets cut to ``max_horizon`` (the last one stretched to reach it)."""
    out = [(a, min(z, max_horizon)) for a, z in buckets if a <= max_horizon]
    if not out:
        return ((1, max_horizon),)
    out[-1] = (out[-1][0], max_horizon)
    return tuple(out)


# ---- config (de)serialisation ---------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """``value`` with tuples as lists and dates as ISO strings (for sorted-key JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _from_json(cls: type[T], data: Mapping[str, Any]) -> T:
    """Rebuild a (nested) frozen dataclass from JSON, lists back to tuples."""
    try:
        defaults: Any = cls()
    except TypeError:
        defaults = None
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        value = data[f.name]
        default = getattr(defaults, f.name, None)
        if is_dataclass(default) and isinstance(value, Mapping):
            kwargs[f.name] = _from_json(type(default), value)
        else:
            kwargs[f.name] = _tuples(value)
    return cls(**kwargs)


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value
