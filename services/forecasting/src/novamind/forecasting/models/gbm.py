"""The XGBoost ensemble member: direct multi-horizon quantile regression with gradient-boosted trees.

One global model per *horizon bucket* (default: days 1, 2, ..., 7, then 8-14, 15-21, 22-30;
``horizon`` is a feature inside a bucket) is trained on tabular features of many
(patient, origin, horizon day) rows (:mod:`novamind.forecasting.domain.features`). Each
booster uses XGBoost's ``reg:quantileerror`` objective with ``quantile_alpha`` set to every
trained level, so one booster predicts all levels at once; outputs are sorted along the levels
so quantiles never cross. Targets are learnt in the normalised space of the features
(``(y - level) / scale``) and mapped back, then clipped to the target's bounds.

Hyper-parameters are tuned once by Optuna's TPE sampler (Bergstra et al. 2011; seeded, one job)
on rows of a few representative horizons pooled together, with time-ordered cross-validation
(:func:`time_folds`): each fold trains on the rows whose *target day* is on or before a cut and
validates on origins after the cut, so no validation forecast sees a training target from its
own future. The objective is the mean pinball loss in target units at each fold's
early-stopped round count. Every bucket's booster is then trained on its own rows with the best
parameters and the best trial's mean round count (scaled by ``round_scale`` for the larger
training set). The tuning outcome is kept in :attr:`GbmQuantileModel.tuning` and in the saved
manifest.

Training rows are origins with at least ``min_observed_days`` observed target days, every
``origin_stride`` days, for every horizon day whose target is observed; buckets with more rows
than ``max_rows_per_bucket`` are subsampled (seeded). Missing covariates, including a patient
without any wearable data, are plain NaN features that the trees route with learnt defaults.

Saved files: ``xgboost_model.json`` (the manifest: levels, buckets, parameters, tuning result,
feature names, normalisation floor; keys sorted) and one ``xgboost_bucket_<i>.ubj`` booster per
bucket (XGBoost's binary JSON). Training with the same data, configuration and seed writes
byte-identical files: the learner runs with a fixed thread count and seed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import optuna
import xgboost as xgb

from novamind.core.errors import ValidationError
from novamind.forecasting.domain.features import FeatureMatrix, build_features, feature_names
from novamind.forecasting.domain.metrics import mean_pinball
from novamind.forecasting.domain.series import CovariateSchema, FloatArray, Panel, TargetSpec
from novamind.forecasting.models.base import FitContext, Importance, ImportanceMethod

IntArray = npt.NDArray[np.int64]

MODEL_NAME = "xgboost-quantile"
MANIFEST_FILE = "xgboost_model.json"
FORMAT_VERSION = 1

#: One direct model per bucket of horizon days (inclusive ranges).
DEFAULT_BUCKETS: tuple[tuple[int, int], ...] = (
    (1, 1),
    (2, 2),
    (3, 3),
    (4, 4),
    (5, 5),
    (6, 6),
    (7, 7),
    (8, 14),
    (15, 21),
    (22, 30),
)


@dataclass(frozen=True)
class SearchSpace:
    """Bounds of the tuned hyper-parameters (inclusive; the float ones searched on a log scale
    where marked in :func:`_suggest`)."""

    learning_rate: tuple[float, float] = (0.05, 0.3)
    max_depth: tuple[int, int] = (2, 6)
    min_child_weight: tuple[float, float] = (1.0, 200.0)
    subsample: tuple[float, float] = (0.5, 1.0)
    colsample_bytree: tuple[float, float] = (0.4, 1.0)
    reg_lambda: tuple[float, float] = (0.01, 30.0)


@dataclass(frozen=True)
class GbmConfig:
    """Training settings; the defaults are the development artifact (about a minute per target
    on two cores for 200 patients x 180 days)."""

    #: Inclusive horizon-day ranges, contiguous from day 1; the last one is stretched or cut to
    #: the context's ``max_horizon``.
    buckets: tuple[tuple[int, int], ...] = DEFAULT_BUCKETS
    #: Days between consecutive training origins of one patient.
    origin_stride: int = 2
    #: Row cap per bucket (seeded subsample above it).
    max_rows_per_bucket: int = 8_000
    #: Optuna trials (the first one is the search space's middle point) and random start-up trials.
    trials: int = 8
    startup_trials: int = 3
    #: Time-ordered cross-validation folds.
    cv_folds: int = 2
    #: Horizon days whose rows are pooled for tuning, and their row cap.
    tuning_horizons: tuple[int, ...] = (1, 3, 7, 14, 28)
    max_tuning_rows: int = 8_000
    search: SearchSpace = field(default_factory=SearchSpace)
    #: Boosting rounds: cap, early-stopping patience during tuning, and the factor applied to the
    #: best trial's mean early-stopped round count for the final boosters.
    max_rounds: int = 200
    early_stopping_rounds: int = 15
    round_scale: float = 1.1
    #: Histogram bins per feature.
    max_bin: int = 64
    #: Learner threads, fixed so that files are reproducible (the same data, seed and thread
    #: count give identical boosters). One thread keeps training predictable on shared CPUs and
    #: meets the time budget; more threads help only on idle cores.
    nthread: int = 1
    #: Learn ``(y - level) / scale`` instead of raw values (see the features module).
    normalize: bool = True

    def __post_init__(self) -> None:
        if self.origin_stride < 1 or self.trials < 1 or self.cv_folds < 1 or self.max_rounds < 1:
            raise ValidationError(
                "origin_stride, trials, cv_folds and max_rounds must be >= 1", field="config"
            )
        if self.nthread < 1 or self.max_rows_per_bucket < 1 or self.max_tuning_rows < 1:
            raise ValidationError("nthread and row caps must be >= 1", field="config")
        _check_buckets(self.buckets)

    @classmethod
    def tiny(cls) -> GbmConfig:
        """A seconds-fast configuration for tests and smoke runs."""
        return cls(
            buckets=((1, 1), (2, 3), (4, 7), (8, 14)),
            origin_stride=3,
            max_rows_per_bucket=2_000,
            trials=3,
            startup_trials=2,
            cv_folds=2,
            tuning_horizons=(1, 4, 10),
            max_tuning_rows=2_000,
            max_rounds=60,
            early_stopping_rounds=10,
            max_bin=32,
            nthread=1,
        )


@dataclass(frozen=True)
class TuningResult:
    """What the hyper-parameter search found."""

    #: Best trial's parameters (XGBoost names).
    best_params: dict[str, float | int]
    #: Its mean cross-validated pinball loss (target units).
    best_loss: float
    #: Boosting rounds used for the final boosters.
    rounds: int
    #: Number of trials run and of cross-validation folds.
    trials: int
    folds: int
    #: Every trial's loss, in trial order.
    trial_losses: tuple[float, ...]


def _check_buckets(buckets: Sequence[tuple[int, int]]) -> None:
    expected = 1
    if not buckets:
        raise ValidationError("at least one horizon bucket is required", field="config.buckets")
    for low, high in buckets:
        if low != expected or high < low:
            raise ValidationError("horizon buckets must be contiguous from day 1", field="config.buckets")
        expected = high + 1


def effective_buckets(buckets: Sequence[tuple[int, int]], max_horizon: int) -> tuple[tuple[int, int], ...]:
    """The buckets cut to ``max_horizon``, the last one stretched to reach it."""
    _check_buckets(buckets)
    if max_horizon < 1:
        raise ValidationError("max_horizon must be >= 1", field="max_horizon")
    kept = [(low, min(high, max_horizon)) for low, high in buckets if low <= max_horizon]
    low, high = kept[-1]
    kept[-1] = (low, max(high, max_horizon))
    return tuple(kept)


def training_rows(
    panels: Sequence[Panel], min_observed_days: int, max_horizon: int, stride: int
) -> tuple[IntArray, IntArray, IntArray]:
    """(panel index, origin, horizon day) of every training row, in panel/origin/horizon order.

    Origins have at least ``min_observed_days`` observed target days (and at least one), come
    every ``stride`` days from the first such day, and keep the horizon days whose target is
    observed.
    """
    which: list[IntArray] = []
    origin: list[IntArray] = []
    horizon: list[IntArray] = []
    days = np.arange(1, max_horizon + 1, dtype=np.int64)
    for index, panel in enumerate(panels):
        observed = np.isfinite(panel.target)
        count = np.cumsum(observed)
        eligible = np.flatnonzero(count >= max(1, min_observed_days))
        if eligible.size == 0:
            continue
        origins = np.arange(int(eligible[0]), panel.length - 1, stride, dtype=np.int64)
        o = np.repeat(origins, max_horizon)
        h = np.tile(days, origins.size)
        day = o + h
        inside = day < panel.length
        keep = inside.copy()
        keep[inside] = observed[day[inside]]
        which.append(np.full(int(keep.sum()), index, dtype=np.int64))
        origin.append(o[keep])
        horizon.append(h[keep])
    if not which:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), empty.copy()
    return np.concatenate(which), np.concatenate(origin), np.concatenate(horizon)


def time_folds(
    origins: npt.ArrayLike, horizons: npt.ArrayLike, folds: int
) -> list[tuple[IntArray, IntArray]]:
    """Expanding-window cross-validation folds over rows ordered in time by origin day index.

    The origin range is cut into ``folds + 1`` equal blocks of days. Fold ``k`` validates on the
    rows whose origin lies in block ``k + 1`` and trains on the rows whose target day
    (origin + horizon) lies before that block, so every validation origin is later than every
    training target day. Returns (train row indices, validation row indices) per non-empty fold.
    """
    origin = np.asarray(origins, dtype=np.int64).reshape(-1)
    target_day = origin + np.asarray(horizons, dtype=np.int64).reshape(-1)
    if origin.size == 0:
        return []
    first, last = int(origin.min()), int(origin.max())
    span = last - first + 1
    edges = [first + (span * k) // (folds + 1) for k in range(folds + 2)]
    result: list[tuple[IntArray, IntArray]] = []
    for k in range(1, folds + 1):
        train = np.flatnonzero(target_day < edges[k])
        valid = np.flatnonzero((origin >= edges[k]) & (origin < edges[k + 1]))
        if train.size and valid.size:
            result.append((train.astype(np.int64), valid.astype(np.int64)))
    return result


def xgboost_device(requested: str) -> str:
    """XGBoost's training device: "cuda" only when asked for and this XGBoost build has CUDA."""
    info = xgb.build_info()
    return "cuda" if requested == "cuda" and bool(info.get("USE_CUDA", False)) else "cpu"


def _base_params(context: FitContext, config: GbmConfig, device: str) -> dict[str, Any]:
    return {
        "objective": "reg:quantileerror",
        "quantile_alpha": list(context.quantiles),
        "tree_method": "hist",
        "max_bin": config.max_bin,
        "nthread": config.nthread,
        "seed": context.seed,
        "device": device,
        "verbosity": 0,
    }


def _middle(space: SearchSpace) -> dict[str, float | int]:
    """The search space's geometric/arithmetic middle: the first trial, a sane default."""
    return {
        "learning_rate": math.sqrt(space.learning_rate[0] * space.learning_rate[1]),
        "max_depth": (space.max_depth[0] + space.max_depth[1]) // 2,
        "min_child_weight": math.sqrt(space.min_child_weight[0] * space.min_child_weight[1]),
        "subsample": (space.subsample[0] + space.subsample[1]) / 2,
        "colsample_bytree": (space.colsample_bytree[0] + space.colsample_bytree[1]) / 2,
        "reg_lambda": math.sqrt(space.reg_lambda[0] * space.reg_lambda[1]),
    }


def _suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, float | int]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", *space.learning_rate, log=True),
        "max_depth": trial.suggest_int("max_depth", *space.max_depth),
        "min_child_weight": trial.suggest_float("min_child_weight", *space.min_child_weight, log=True),
        "subsample": trial.suggest_float("subsample", *space.subsample),
        "colsample_bytree": trial.suggest_float("colsample_bytree", *space.colsample_bytree),
        "reg_lambda": trial.suggest_float("reg_lambda", *space.reg_lambda, log=True),
    }


def _to_target(
    output: npt.NDArray[Any], level: FloatArray, scale: FloatArray, spec: TargetSpec
) -> FloatArray:
    """Booster outputs [N, Q] (normalised) -> sorted, clipped quantiles in target units."""
    values = np.asarray(output, dtype=np.float64).reshape(level.shape[0], -1)
    quantiles = level[:, None] + scale[:, None] * values
    return spec.clip(np.sort(quantiles, axis=1))


def _scale_floor(panels: Sequence[Panel]) -> float:
    """A tenth of the median per-patient standard deviation of the observed target (1.0 if 0)."""
    stds = [float(np.nanstd(p.target)) for p in panels if np.isfinite(p.target).sum() >= 2]
    median = float(np.median(stds)) if stds else 0.0
    return 0.1 * median if median > 0 else 1.0


def _subsample(indices: IntArray, cap: int, rng: np.random.Generator) -> IntArray:
    if indices.size <= cap:
        return indices
    return np.sort(rng.choice(indices, size=cap, replace=False))


def _tune(
    features: FeatureMatrix,
    target_z: FloatArray,
    actual: FloatArray,
    origins: IntArray,
    horizons: IntArray,
    context: FitContext,
    config: GbmConfig,
    base: dict[str, Any],
) -> TuningResult:
    """Optuna TPE over time-ordered folds of the pooled tuning rows."""
    folds = time_folds(origins, horizons, config.cv_folds)
    if not folds:
        raise ValidationError("too little history for time-ordered cross-validation", field="train")
    data = []
    for train, valid in folds:
        dtrain = xgb.QuantileDMatrix(
            features.values[train], label=target_z[train], max_bin=config.max_bin, nthread=config.nthread
        )
        dvalid = xgb.DMatrix(features.values[valid], label=target_z[valid], nthread=config.nthread)
        data.append((dtrain, dvalid, valid))

    def objective(trial: optuna.Trial) -> float:
        params = {**base, **_suggest(trial, config.search)}
        losses: list[float] = []
        rounds: list[int] = []
        for dtrain, dvalid, valid in data:
            booster = xgb.train(
                params,
                dtrain,
                num_boost_round=config.max_rounds,
                evals=[(dvalid, "valid")],
                early_stopping_rounds=config.early_stopping_rounds,
                verbose_eval=False,
            )
            best = booster.best_iteration + 1
            output = booster.predict(dvalid, iteration_range=(0, best))
            predicted = _to_target(output, features.level[valid], features.scale[valid], context.spec)
            losses.append(mean_pinball(actual[valid, None], predicted[:, None, :], context.quantiles))
            rounds.append(best)
        trial.set_user_attr("rounds", rounds)
        return float(np.mean(losses))

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        sampler = optuna.samplers.TPESampler(seed=context.seed, n_startup_trials=config.startup_trials)
        study = optuna.create_study(direction="minimize", sampler=sampler)
        study.enqueue_trial(_middle(config.search))
        study.optimize(objective, n_trials=config.trials, n_jobs=1, show_progress_bar=False)
    finally:
        optuna.logging.set_verbosity(verbosity)
    best = study.best_trial
    mean_rounds = float(np.mean(best.user_attrs["rounds"]))
    rounds = int(min(config.max_rounds, max(1, round(mean_rounds * config.round_scale))))
    return TuningResult(
        best_params={key: best.params[key] for key in sorted(best.params)},
        best_loss=float(best.value if best.value is not None else math.nan),
        rounds=rounds,
        trials=len(study.trials),
        folds=len(folds),
        trial_losses=tuple(float(t.value) if t.value is not None else math.nan for t in study.trials),
    )


def fit_gbm(train: Sequence[Panel], context: FitContext, config: GbmConfig) -> GbmQuantileModel:
    """Tune and train the bucketed quantile boosters on ``train`` (see the module docstring)."""
    if not context.quantiles or list(context.quantiles) != sorted(context.quantiles):
        raise ValidationError("quantiles must be given in ascending order", field="quantiles")
    buckets = effective_buckets(config.buckets, context.max_horizon)
    which, origins, horizons = training_rows(
        train, context.min_observed_days, context.max_horizon, config.origin_stride
    )
    if which.size == 0:
        raise ValidationError("no training rows: histories too short or targets missing", field="train")
    rng = np.random.default_rng(context.seed)
    tuning_pool = np.flatnonzero(np.isin(horizons, np.asarray(config.tuning_horizons)))
    if tuning_pool.size == 0:
        tuning_pool = np.arange(which.size, dtype=np.int64)
    tuning_rows = _subsample(tuning_pool, config.max_tuning_rows, rng)
    bucket_rows = [
        _subsample(np.flatnonzero((horizons >= low) & (horizons <= high)), config.max_rows_per_bucket, rng)
        for low, high in buckets
    ]
    selected = np.unique(np.concatenate([tuning_rows, *bucket_rows]))
    floor = _scale_floor(train)
    features = build_features(
        train,
        which[selected],
        origins[selected],
        horizons[selected],
        context.spec.name,
        context.schema,
        normalize=config.normalize,
        scale_floor=floor,
    )
    actual = np.array(
        [
            train[i].target[o + h]
            for i, o, h in zip(which[selected], origins[selected], horizons[selected], strict=True)
        ],
        dtype=np.float64,
    )
    if config.normalize:
        target_z = (actual - features.level) / features.scale
    else:
        target_z = actual.copy()
        features = FeatureMatrix(features.values, features.names, np.zeros_like(actual), np.ones_like(actual))
    usable = np.isfinite(target_z)

    def local(rows: IntArray) -> IntArray:
        position = np.searchsorted(selected, rows)
        return position[usable[position]].astype(np.int64)

    device = xgboost_device(context.device)
    base = _base_params(context, config, device)
    tune_local = local(tuning_rows)
    tune_features = FeatureMatrix(
        features.values[tune_local], features.names, features.level[tune_local], features.scale[tune_local]
    )
    tuning = _tune(
        tune_features,
        target_z[tune_local],
        actual[tune_local],
        origins[selected][tune_local],
        horizons[selected][tune_local],
        context,
        config,
        base,
    )
    params = {**base, **tuning.best_params}
    boosters: list[xgb.Booster] = []
    for rows in bucket_rows:
        index = local(rows)
        if index.size == 0:
            raise ValidationError("a horizon bucket has no training rows", field="train")
        dtrain = xgb.QuantileDMatrix(
            features.values[index], label=target_z[index], max_bin=config.max_bin, nthread=config.nthread
        )
        booster = xgb.train(params, dtrain, num_boost_round=tuning.rounds)
        booster.set_param({"device": "cpu"})
        boosters.append(booster)
    return GbmQuantileModel(
        spec=context.spec,
        schema=context.schema,
        quantiles=tuple(context.quantiles),
        max_horizon=context.max_horizon,
        buckets=buckets,
        boosters=boosters,
        scale_floor=floor,
        normalize=config.normalize,
        train_nthread=config.nthread,
        tuning=tuning,
    )


class GbmQuantileModel:
    """Trained bucketed XGBoost quantile boosters (a :class:`~novamind.forecasting.models.base.Member`)."""

    name = MODEL_NAME

    def __init__(
        self,
        *,
        spec: TargetSpec,
        schema: CovariateSchema,
        quantiles: tuple[float, ...],
        max_horizon: int,
        buckets: tuple[tuple[int, int], ...],
        boosters: Sequence[xgb.Booster],
        scale_floor: float,
        normalize: bool,
        train_nthread: int,
        tuning: TuningResult,
        nthread: int = 1,
    ) -> None:
        if len(boosters) != len(buckets):
            raise ValueError("one booster per horizon bucket is required")
        self.spec = spec
        self.schema = schema
        self.quantiles = quantiles
        self.max_horizon = max_horizon
        self.buckets = buckets
        self.boosters = list(boosters)
        self.scale_floor = scale_floor
        self.normalize = normalize
        self.train_nthread = train_nthread
        #: Prediction threads: a forecast is a few dozen rows, where one thread is fastest.
        self.nthread = nthread
        self.tuning = tuning
        self.feature_names = feature_names(spec.name, schema)
        for booster in self.boosters:
            booster.set_param({"nthread": nthread, "device": "cpu"})

    # -- forecasting -------------------------------------------------------------------------

    def _check(self, panels: Sequence[Panel], origins: Sequence[int], horizon: int) -> None:
        if horizon < 1 or horizon > self.max_horizon:
            raise ValidationError(f"horizon must be between 1 and {self.max_horizon} days", field="horizon")
        if len(panels) != len(origins):
            raise ValidationError("one origin per panel is required", field="origins")
        for i, (panel, origin) in enumerate(zip(panels, origins, strict=True)):
            if not 0 <= int(origin) < panel.length:
                raise ValidationError("origin outside the panel's history", field=f"origins[{i}]")
            if panel.past.ndim != 2 or panel.past.shape[1] != len(self.schema.past):
                raise ValidationError("past covariates do not match the model's schema", field=f"panels[{i}]")
            if panel.future.ndim != 2 or panel.future.shape[1] != len(self.schema.future):
                raise ValidationError(
                    "known-future covariates do not match the model's schema", field=f"panels[{i}]"
                )
            if not np.isfinite(panel.target[: int(origin) + 1]).any():
                raise ValidationError("the history has no observed target value", field=f"origins[{i}]")

    def _features(self, panels: Sequence[Panel], origins: Sequence[int], horizon: int) -> FeatureMatrix:
        unique: dict[int, int] = {}
        distinct: list[Panel] = []
        for panel in panels:
            if id(panel) not in unique:
                unique[id(panel)] = len(distinct)
                distinct.append(panel)
        which = np.repeat(np.array([unique[id(p)] for p in panels], dtype=np.int64), horizon)
        origin = np.repeat(np.asarray(origins, dtype=np.int64), horizon)
        days = np.tile(np.arange(1, horizon + 1, dtype=np.int64), len(panels))
        matrix = build_features(
            distinct,
            which,
            origin,
            days,
            self.spec.name,
            self.schema,
            normalize=self.normalize,
            scale_floor=self.scale_floor,
        )
        if not self.normalize:
            rows = matrix.values.shape[0]
            matrix = FeatureMatrix(matrix.values, matrix.names, np.zeros(rows), np.ones(rows))
        return matrix

    def _bucket_rows(self, horizon: int, rows: int) -> list[tuple[xgb.Booster, IntArray]]:
        days = np.tile(np.arange(1, horizon + 1, dtype=np.int64), rows // horizon)
        out = []
        for (low, high), booster in zip(self.buckets, self.boosters, strict=True):
            selected = np.flatnonzero((days >= low) & (days <= high))
            if selected.size:
                out.append((booster, selected.astype(np.int64)))
        return out

    def predict(self, panels: Sequence[Panel], origins: Sequence[int], horizon: int) -> FloatArray:
        """Quantiles [N, horizon, Q], sorted along Q and clipped to the target's bounds."""
        self._check(panels, origins, horizon)
        levels = len(self.quantiles)
        if not panels:
            return np.zeros((0, horizon, levels))
        matrix = self._features(panels, origins, horizon)
        output = np.empty((matrix.values.shape[0], levels), dtype=np.float64)
        for booster, rows in self._bucket_rows(horizon, matrix.values.shape[0]):
            output[rows] = np.asarray(booster.inplace_predict(matrix.values[rows])).reshape(rows.size, levels)
        quantiles = _to_target(output, matrix.level, matrix.scale, self.spec)
        return quantiles.reshape(len(panels), horizon, levels)

    def explain(self, panel: Panel, origin: int, horizon: int) -> list[Importance]:
        """SHAP importances (TreeSHAP, Lundberg et al. 2020) of the median-level forecast.

        Mean absolute contribution per feature over the horizon days (``horizon_day`` 0),
        followed by the absolute contributions for day 1 (``horizon_day`` 1); each block is
        descending and omits zero contributions. Values are in target units (the normalised
        contributions times the row's scale); they explain the forecast's departure from the
        history's level, which is the baseline the boosters learn against.
        """
        self._check([panel], [origin], horizon)
        matrix = self._features([panel], [origin], horizon)
        levels = len(self.quantiles)
        median = int(np.argmin(np.abs(np.asarray(self.quantiles) - 0.5)))
        width = len(self.feature_names)
        contributions = np.zeros((horizon, width), dtype=np.float64)
        for booster, rows in self._bucket_rows(horizon, horizon):
            raw = booster.predict(xgb.DMatrix(matrix.values[rows], nthread=self.nthread), pred_contribs=True)
            per_level = np.asarray(raw, dtype=np.float64).reshape(rows.size, levels, width + 1)
            contributions[rows] = per_level[:, median, :width]
        contributions = np.abs(contributions) * matrix.scale[:, None]
        result: list[Importance] = []
        for day, values in ((0, contributions.mean(axis=0)), (1, contributions[0])):
            order = np.argsort(-values, kind="stable")
            result.extend(
                Importance(
                    feature=self.feature_names[j],
                    value=float(values[j]),
                    method=ImportanceMethod.SHAP,
                    model=self.name,
                    horizon_day=day,
                )
                for j in order
                if values[j] > 0
            )
        return result

    # -- persistence -------------------------------------------------------------------------

    def _manifest(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "spec": asdict(self.spec),
            "schema": {"past": list(self.schema.past), "future": list(self.schema.future)},
            "quantiles": list(self.quantiles),
            "max_horizon": self.max_horizon,
            "buckets": [list(bucket) for bucket in self.buckets],
            "booster_files": [_booster_file(i) for i in range(len(self.buckets))],
            "feature_names": list(self.feature_names),
            "scale_floor": self.scale_floor,
            "normalize": self.normalize,
            "train_nthread": self.train_nthread,
            "tuning": {
                "best_params": self.tuning.best_params,
                "best_loss": self.tuning.best_loss,
                "rounds": self.tuning.rounds,
                "trials": self.tuning.trials,
                "folds": self.tuning.folds,
                "trial_losses": list(self.tuning.trial_losses),
            },
        }

    def save(self, directory: Path) -> list[Path]:
        """Write the manifest and one booster file per bucket; returns the paths written."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        manifest = directory / MANIFEST_FILE
        manifest.write_text(json.dumps(self._manifest(), sort_keys=True, indent=2) + "\n", encoding="utf-8")
        paths = [manifest]
        for i, booster in enumerate(self.boosters):
            path = directory / _booster_file(i)
            path.write_bytes(bytes(booster.save_raw("ubj")))
            paths.append(path)
        return paths

    @classmethod
    def load(cls, directory: Path, nthread: int = 1) -> GbmQuantileModel:
        """Read a model written by :meth:`save`; ``nthread`` threads serve its predictions."""
        directory = Path(directory)
        manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
        if manifest.get("format_version") != FORMAT_VERSION or manifest.get("name") != MODEL_NAME:
            raise ValidationError("not an XGBoost quantile model of a supported version", field="directory")
        boosters = []
        for file in manifest["booster_files"]:
            booster = xgb.Booster()
            booster.load_model(bytearray((directory / file).read_bytes()))
            boosters.append(booster)
        tuning = manifest["tuning"]
        spec = manifest["spec"]
        model = cls(
            spec=TargetSpec(**spec),
            schema=CovariateSchema(
                past=tuple(manifest["schema"]["past"]), future=tuple(manifest["schema"]["future"])
            ),
            quantiles=tuple(float(q) for q in manifest["quantiles"]),
            max_horizon=int(manifest["max_horizon"]),
            buckets=tuple((int(low), int(high)) for low, high in manifest["buckets"]),
            boosters=boosters,
            scale_floor=float(manifest["scale_floor"]),
            normalize=bool(manifest["normalize"]),
            train_nthread=int(manifest["train_nthread"]),
            nthread=nthread,
            tuning=TuningResult(
                best_params=dict(tuning["best_params"]),
                best_loss=float(tuning["best_loss"]),
                rounds=int(tuning["rounds"]),
                trials=int(tuning["trials"]),
                folds=int(tuning["folds"]),
                trial_losses=tuple(float(v) for v in tuning["trial_losses"]),
            ),
        )
        if tuple(manifest["feature_names"]) != model.feature_names:
            raise ValidationError(
                "saved feature names do not match this version's features", field="directory"
            )
        return model


def _booster_file(index: int) -> str:
    return f"xgboost_bucket_{index:02d}.ubj"
