"""The XGBoost quantile member learns a simple cohort, explains itself, tunes in time order and
saves reproducibly."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from novamind.core.errors import ValidationError
from novamind.forecasting.domain.metrics import mean_pinball
from novamind.forecasting.domain.series import CovariateSchema, Panel, TargetSpec
from novamind.forecasting.models.base import DEFAULT_TRAINED_QUANTILES, FitContext, ImportanceMethod
from novamind.forecasting.models.gbm import (
    MANIFEST_FILE,
    GbmConfig,
    GbmQuantileModel,
    effective_buckets,
    fit_gbm,
    time_folds,
    training_rows,
    xgboost_device,
)

SPEC = TargetSpec(name="phq9_total", unit="{score}", lower=0.0, upper=27.0, integer=True)
SCHEMA = CovariateSchema(past=("sleep_deviation", "noise"), future=("antidepressant_active",))
LEVELS = DEFAULT_TRAINED_QUANTILES
HORIZON = 14


def make_panels(patients: int, days: int, seed: int, future_days: int = 30) -> list[Panel]:
    """AR(1) severity around a patient mean, driven by a sleep covariate with a 2-day lead.

    ``noise`` is an unrelated covariate; a medication switched on at a random day lowers the
    score over three weeks; 20 % of target days and 10 % of covariate days are missing and a
    fifth of the patients have no covariates at all.
    """
    rng = np.random.default_rng(seed)
    panels = []
    for i in range(patients):
        total = days + future_days
        sleep = np.zeros(total)
        state = np.zeros(total)
        for t in range(1, total):
            sleep[t] = 0.6 * sleep[t - 1] + rng.normal()
            state[t] = 0.7 * state[t - 1] + rng.normal()
        medication = np.zeros(total)
        effect = np.zeros(total)
        if rng.random() < 0.5:
            start = int(rng.integers(20, total))
            medication[start:] = 1.0
            effect[start:] = -3.0 * np.minimum(1.0, (np.arange(total - start) + 1) / 21.0)
        lead = np.concatenate([[0.0, 0.0], sleep[:-2]])
        score = rng.uniform(6, 18) + state + 2.0 * lead + effect + rng.normal(0, 0.5, total)
        score = np.clip(np.round(score), 0, 27)
        target = score[:days].copy()
        target[rng.random(days) < 0.2] = np.nan
        past = np.stack([sleep[:days], rng.normal(size=days)], axis=1)
        past[rng.random(past.shape) < 0.1] = np.nan
        if rng.random() < 0.2:
            past[:] = np.nan
        panels.append(
            Panel(
                key=f"p{i}",
                start=dt.date(2024, 1, 1) + dt.timedelta(days=int(rng.integers(0, 7))),
                target=target,
                past=past,
                future=medication[:, None].copy(),
            )
        )
    return panels


def context(seed: int = 11, max_horizon: int = HORIZON) -> FitContext:
    return FitContext(
        spec=SPEC,
        schema=SCHEMA,
        quantiles=LEVELS,
        max_horizon=max_horizon,
        min_observed_days=14,
        seed=seed,
    )


CONFIG = GbmConfig.tiny()


@pytest.fixture(scope="module")
def model() -> GbmQuantileModel:
    return fit_gbm(make_panels(60, 110, seed=1), context(), CONFIG)


@pytest.fixture(scope="module")
def held_out() -> list[Panel]:
    return make_panels(40, 110, seed=2)


def test_beats_last_value_on_held_out_panels(model: GbmQuantileModel, held_out: list[Panel]) -> None:
    origins = [60, 80, 95]
    panels = [p for p in held_out for _ in origins]
    starts = origins * len(held_out)
    forecast = model.predict(panels, starts, HORIZON)
    assert forecast.shape == (len(panels), HORIZON, len(LEVELS))
    assert np.all(np.diff(forecast, axis=2) >= 0)
    assert forecast.min() >= 0 and forecast.max() <= 27
    actual = np.stack([p.target[o + 1 : o + 1 + HORIZON] for p, o in zip(panels, starts, strict=True)])
    last = np.array(
        [p.target[: o + 1][np.isfinite(p.target[: o + 1])][-1] for p, o in zip(panels, starts, strict=True)]
    )
    naive = np.broadcast_to(last[:, None, None], forecast.shape)
    model_loss = mean_pinball(actual, forecast, LEVELS)
    naive_loss = mean_pinball(actual, naive, LEVELS)
    assert model_loss < 0.6 * naive_loss
    # The central 80 % interval covers roughly 80 % of the held-out days.
    inside = (actual >= forecast[..., 1]) & (actual <= forecast[..., 5])
    assert 0.6 < inside[np.isfinite(actual)].mean() < 0.95


def test_leading_covariate_outranks_noise_in_shap(model: GbmQuantileModel, held_out: list[Panel]) -> None:
    lead: list[float] = []
    noise: list[float] = []
    for panel in held_out:
        if not np.isfinite(panel.past).any():
            continue
        found = {e.feature: e.value for e in model.explain(panel, 90, 2) if e.horizon_day == 1}
        lead.append(found.get("sleep_deviation_lag_2", 0.0))
        noise.append(max((v for k, v in found.items() if k.startswith("noise_")), default=0.0))
    assert np.mean(lead) > 3 * np.mean(noise)


def test_explain_shape(model: GbmQuantileModel, held_out: list[Panel]) -> None:
    importances = model.explain(held_out[0], 70, 10)
    assert importances
    assert {e.horizon_day for e in importances} == {0, 1}
    assert all(e.method is ImportanceMethod.SHAP and e.model == "xgboost-quantile" for e in importances)
    assert all(e.value > 0 and e.feature in model.feature_names for e in importances)
    for day in (0, 1):
        values = [e.value for e in importances if e.horizon_day == day]
        assert values == sorted(values, reverse=True)
    first_block = [e.horizon_day for e in importances]
    assert first_block == sorted(first_block)


def test_tuning_ran_the_configured_trials(model: GbmQuantileModel, tmp_path: Path) -> None:
    tuning = model.tuning
    assert tuning.trials == CONFIG.trials == len(tuning.trial_losses)
    assert tuning.folds == CONFIG.cv_folds
    assert tuning.best_loss == min(tuning.trial_losses)
    assert 1 <= tuning.rounds <= CONFIG.max_rounds
    assert set(tuning.best_params) == {
        "learning_rate",
        "max_depth",
        "min_child_weight",
        "subsample",
        "colsample_bytree",
        "reg_lambda",
    }
    model.save(tmp_path)
    saved = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert saved["tuning"]["best_loss"] == tuning.best_loss
    assert saved["tuning"]["trials"] == CONFIG.trials


def test_time_folds_never_train_on_targets_after_a_validation_origin() -> None:
    panels = make_panels(10, 90, seed=4)
    _, origins, horizons = training_rows(panels, 14, 10, 1)
    folds = time_folds(origins, horizons, 3)
    assert len(folds) == 3
    previous_train = 0
    seen_valid: set[int] = set()
    for train, valid in folds:
        assert (origins[train] + horizons[train]).max() < origins[valid].min()
        assert train.size > previous_train  # expanding window
        previous_train = train.size
        assert not seen_valid & set(valid.tolist())
        seen_valid |= set(valid.tolist())


def test_training_rows_respect_history_and_missing_targets() -> None:
    panels = make_panels(5, 60, seed=5)
    which, origins, horizons = training_rows(panels, 14, 7, 2)
    assert which.size > 0
    for i, o, h in zip(which, origins, horizons, strict=True):
        target = panels[i].target
        assert np.isfinite(target[: o + 1]).sum() >= 14
        assert np.isfinite(target[o + h]) and 1 <= h <= 7


def test_cuda_only_when_the_build_has_it() -> None:
    has_cuda = bool(xgb.build_info().get("USE_CUDA", False))
    assert xgboost_device("cpu") == "cpu"
    assert xgboost_device("cuda") == ("cuda" if has_cuda else "cpu")


def test_effective_buckets_follow_max_horizon() -> None:
    assert effective_buckets(GbmConfig().buckets, 10)[-1] == (8, 10)
    assert effective_buckets(GbmConfig().buckets, 40)[-1] == (22, 40)
    assert effective_buckets(GbmConfig().buckets, 3) == ((1, 1), (2, 2), (3, 3))
    with pytest.raises(ValidationError):
        GbmConfig(buckets=((1, 2), (4, 5)))


def test_save_and_load_give_identical_predictions(
    model: GbmQuantileModel, held_out: list[Panel], tmp_path: Path
) -> None:
    files = model.save(tmp_path)
    assert {f.name for f in files} == {f.name for f in tmp_path.iterdir()}
    loaded = GbmQuantileModel.load(tmp_path)
    origins = [70] * len(held_out)
    np.testing.assert_array_equal(model.predict(held_out, origins, 9), loaded.predict(held_out, origins, 9))
    assert loaded.tuning == model.tuning
    assert [e.feature for e in loaded.explain(held_out[3], 70, 5)] == [
        e.feature for e in model.explain(held_out[3], 70, 5)
    ]


def test_same_seed_writes_identical_files(tmp_path: Path) -> None:
    panels = make_panels(20, 80, seed=6)
    config = dataclasses.replace(
        CONFIG, trials=2, max_rounds=15, max_rows_per_bucket=800, max_tuning_rows=800
    )
    written = []
    for run, seed in enumerate((3, 3, 4)):
        directory = tmp_path / str(run)
        fit_gbm(panels, context(seed=seed, max_horizon=7), config).save(directory)
        written.append({p.name: p.read_bytes() for p in sorted(directory.iterdir())})
    assert written[0] == written[1]
    assert written[0] != written[2]


def test_rejects_bad_requests_and_handles_missing_covariates(
    model: GbmQuantileModel, held_out: list[Panel]
) -> None:
    panel = held_out[0]
    with pytest.raises(ValidationError) as caught:
        model.predict([panel], [60], HORIZON + 1)
    assert caught.value.field == "horizon"
    with pytest.raises(ValidationError):
        model.predict([panel], [60], 0)
    with pytest.raises(ValidationError):
        model.predict([panel], [panel.length], 3)
    with pytest.raises(ValidationError):
        model.explain(panel, 60, HORIZON + 1)
    with pytest.raises(ValidationError):
        model.predict([dataclasses.replace(panel, past=panel.past[:, :1])], [60], 3)

    no_wearable = dataclasses.replace(panel, past=np.full_like(panel.past, np.nan))
    forecast = model.predict([no_wearable, panel], [60, 60], HORIZON)
    assert np.isfinite(forecast).all()
    assert np.all(np.diff(forecast, axis=2) >= 0)
    # Without covariates the median stays near the patient's recent level.
    recent = np.nanmean(panel.target[40:61])
    assert abs(float(np.median(forecast[0, :, 3])) - recent) < 4
