"""The quantile Transformer learns real structure, forecasts sanely without covariates, never reads
the future, works on any scale, explains itself by input name and trains deterministically.

The panels come from a small generator defined here: per patient an AR(1) target around its own
mean, pushed by a covariate that leads it by two days, lowered by a scheduled (known-future) dose,
plus a pure-noise covariate; days and covariates go missing at random, some patients have no
covariates at all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from novamind.core.errors import ValidationError
from novamind.forecasting.domain.metrics import mean_pinball
from novamind.forecasting.domain.series import CovariateSchema, FloatArray, Panel, TargetSpec
from novamind.forecasting.models.base import DEFAULT_TRAINED_QUANTILES, FitContext, ImportanceMethod
from novamind.forecasting.models.transformer import (
    QuantileTransformer,
    TransformerConfig,
    fit_transformer,
)

HORIZON = 7
LEVELS = DEFAULT_TRAINED_QUANTILES
SCHEMA = CovariateSchema(past=("leading", "noise"), future=("dose",))
SPEC = TargetSpec(name="score", unit="{score}")
TINY = TransformerConfig(
    context_days=28,
    d_model=16,
    heads=2,
    encoder_layers=1,
    decoder_layers=1,
    feedforward=32,
    dropout=0.0,
    batch_size=32,
    steps=250,
    learning_rate=5e-3,
    warmup_steps=20,
    eval_every=50,
    valid_windows=256,
)


def cohort(patients: int, days: int, seed: int, *, scale: float = 1.0, shift: float = 0.0) -> list[Panel]:
    """Panels of the generator described in the module docstring (target = scale * y + shift)."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(10.0, 3.0, patients)
    lead = np.zeros((patients, days))
    for t in range(1, days):
        lead[:, t] = 0.6 * lead[:, t - 1] + rng.normal(0.0, 1.0, patients)
    noise = rng.normal(0.0, 1.0, (patients, days))
    dose = np.zeros((patients, days + HORIZON))
    start = rng.integers(20, days, patients)
    on = rng.random(patients) < 0.5
    dose[on[:, None] & (np.arange(days + HORIZON)[None, :] >= start[:, None])] = 1.0
    level = mean.copy()
    y = np.empty((patients, days))
    for t in range(days):
        driver = lead[:, t - 2] if t >= 2 else 0.0
        level = mean + 0.7 * (level - mean) + 1.5 * driver - 2.0 * dose[:, t] + rng.normal(0.0, 0.8, patients)
        y[:, t] = level
    y[rng.random((patients, days)) < 0.2] = np.nan
    past = np.stack([lead, noise], axis=2)
    past[rng.random(past.shape) < 0.1] = np.nan
    past[rng.random(patients) < 0.2] = np.nan  # no wearable
    first = dt.date(2024, 1, 1)
    return [
        Panel(
            key=f"p{i}",
            start=first + dt.timedelta(days=int(rng.integers(0, 7))),
            target=scale * y[i] + shift,
            past=past[i],
            future=dose[i][:, None],
        )
        for i in range(patients)
    ]


def context(seed: int = 0) -> FitContext:
    return FitContext(
        spec=SPEC, schema=SCHEMA, quantiles=LEVELS, max_horizon=HORIZON, min_observed_days=5, seed=seed
    )


def windows(panels: list[Panel]) -> tuple[list[Panel], list[int], FloatArray]:
    """Every 5th origin from day 30 on with its actual horizon (NaN = unobserved)."""
    chosen, origins, actual = [], [], []
    for panel in panels:
        for origin in range(30, panel.length - HORIZON, 5):
            chosen.append(panel)
            origins.append(origin)
            actual.append(panel.target[origin + 1 : origin + 1 + HORIZON])
    return chosen, origins, np.stack(actual)


def last_value(panels: list[Panel], origins: list[int]) -> FloatArray:
    """The naive forecast: the last observed value at every level and horizon day."""
    values = []
    for panel, origin in zip(panels, origins, strict=True):
        history = panel.target[: origin + 1]
        values.append(history[np.isfinite(history)][-1])
    return np.broadcast_to(np.asarray(values)[:, None, None], (len(values), HORIZON, len(LEVELS))).copy()


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and a busy machine makes OpenMP threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> QuantileTransformer:
    return fit_transformer(cohort(80, 150, seed=1), context(), TINY, valid=cohort(20, 150, seed=2))


@pytest.fixture(scope="module")
def held_out() -> list[Panel]:
    return cohort(30, 150, seed=3)


def test_beats_the_last_value_forecast_with_sorted_quantiles(
    model: QuantileTransformer, held_out: list[Panel]
) -> None:
    panels, origins, actual = windows(held_out)
    forecast = model.predict(panels, origins, HORIZON)
    assert forecast.shape == (len(panels), HORIZON, len(LEVELS))
    assert forecast.dtype == np.float64
    assert np.isfinite(forecast).all()
    assert (np.diff(forecast, axis=-1) >= 0).all()
    naive = last_value(panels, origins)
    assert mean_pinball(actual, forecast, LEVELS) < 0.8 * mean_pinball(actual, naive, LEVELS)
    # Also on day 1, where the last value is hardest to beat.
    day1 = mean_pinball(actual[:, :1], forecast[:, :1], LEVELS)
    assert day1 < 0.9 * mean_pinball(actual[:, :1], naive[:, :1], LEVELS)
    # Validation selected a step and its loss was recorded.
    assert model.training["valid_loss"] is not None
    assert 0 < model.training["best_step"] <= TINY.steps
    # The central 80% interval covers a sensible share of held-out days (not collapsed, not vast).
    scored = np.isfinite(actual)
    inside = (actual >= forecast[..., 1]) & (actual <= forecast[..., -2])
    assert 0.5 < inside[scored].mean() < 0.97


def test_uses_the_leading_covariate(model: QuantileTransformer, held_out: list[Panel]) -> None:
    """Blanking the wearable costs accuracy on the next two days, which the covariate drives."""
    wearing = [p for p in held_out if np.isfinite(p.past).any()]
    blind = [dataclasses.replace(p, past=np.full_like(p.past, np.nan)) for p in wearing]
    panels, origins, actual = windows(wearing)
    blind_panels, _, _ = windows(blind)
    seen = mean_pinball(actual[:, :2], model.predict(panels, origins, 2), LEVELS)
    unseen = mean_pinball(actual[:, :2], model.predict(blind_panels, origins, 2), LEVELS)
    assert seen < 0.85 * unseen


def test_missing_covariates_and_short_histories_still_forecast(
    model: QuantileTransformer, held_out: list[Panel]
) -> None:
    panel = held_out[0]
    blind = dataclasses.replace(panel, past=np.full_like(panel.past, np.nan))
    no_dose = dataclasses.replace(panel, future=np.full_like(panel.future, np.nan))
    forecast = model.predict([blind, no_dose, panel, panel], [100, 100, 2, 0], HORIZON)
    assert np.isfinite(forecast).all()
    observed = panel.target[np.isfinite(panel.target)]
    spread = observed.max() - observed.min()
    medians = forecast[..., LEVELS.index(0.5)]
    assert (medians > observed.min() - spread).all()
    assert (medians < observed.max() + spread).all()


def test_reads_nothing_after_the_origin(model: QuantileTransformer, held_out: list[Panel]) -> None:
    panel, origin = held_out[1], 90
    full = model.predict([panel], [origin], HORIZON)
    truncated = model.predict([panel.truncated(origin, HORIZON)], [origin], HORIZON)
    np.testing.assert_array_equal(full, truncated)
    # A shorter horizon is a prefix of the longer one (known-future inputs up to each day only;
    # other matrix shapes may round differently in the last float32 bit).
    np.testing.assert_allclose(model.predict([panel], [origin], 3), full[:, :3], rtol=1e-5, atol=1e-5)
    # Changing the dose schedule after day origin + 1 leaves day 1 alone but moves later days.
    changed = panel.future.copy()
    changed[origin + 2 :] = 1.0 - changed[origin + 2 :]
    moved = model.predict([dataclasses.replace(panel, future=changed)], [origin], HORIZON)
    np.testing.assert_allclose(moved[:, 0], full[:, 0], rtol=1e-5, atol=1e-5)
    assert np.abs(moved[:, 1:] - full[:, 1:]).max() > 0.1


def test_explains_by_input_name_and_ranks_the_leading_covariate_above_noise(
    model: QuantileTransformer, held_out: list[Panel]
) -> None:
    with_wearable = [p for p in held_out if np.isfinite(p.past).any()]
    leading_wins = 0
    for panel in with_wearable[:10]:
        importances = model.explain(panel, 120, HORIZON)
        names = [i.feature for i in importances]
        assert sorted(names) == sorted(["score", "leading", "noise", "dose", "day_of_week"])
        values = [i.value for i in importances]
        assert values == sorted(values, reverse=True)
        assert sum(values) == pytest.approx(1.0, abs=1e-4)
        assert all(i.method is ImportanceMethod.ATTENTION for i in importances)
        assert all(i.model == "quantile-transformer" and i.horizon_day == 0 for i in importances)
        value = {i.feature: i.value for i in importances}
        leading_wins += value["leading"] > value["noise"]
    assert leading_wins == min(10, len(with_wearable))


def test_save_and_load_give_identical_forecasts(
    model: QuantileTransformer, held_out: list[Panel], tmp_path: Path
) -> None:
    files = model.save(tmp_path)
    assert {f.name for f in files} == {"quantile_transformer.json", "quantile_transformer.safetensors"}
    loaded = QuantileTransformer.load(tmp_path)
    panels, origins, _ = windows(held_out[:5])
    np.testing.assert_array_equal(
        loaded.predict(panels, origins, HORIZON), model.predict(panels, origins, HORIZON)
    )
    assert loaded.quantiles == model.quantiles and loaded.max_horizon == HORIZON
    assert loaded.explain(held_out[0], 100, 3) == model.explain(held_out[0], 100, 3)


def test_training_is_deterministic_under_a_seed(tmp_path: Path) -> None:
    small = dataclasses.replace(TINY, steps=15, eval_every=5)
    train, valid = cohort(12, 80, seed=4), cohort(4, 80, seed=5)

    def files(seed: int, name: str) -> dict[str, bytes]:
        saved = fit_transformer(train, context(seed), small, valid=valid).save(tmp_path / name)
        return {path.name: path.read_bytes() for path in saved}

    first, again, other = files(7, "a"), files(7, "b"), files(8, "c")
    assert first == again
    assert first["quantile_transformer.safetensors"] != other["quantile_transformer.safetensors"]


def test_rejects_horizons_beyond_the_trained_one_and_bad_inputs(
    model: QuantileTransformer, held_out: list[Panel]
) -> None:
    panel = held_out[0]
    with pytest.raises(ValidationError) as caught:
        model.predict([panel], [100], HORIZON + 1)
    assert caught.value.field == "horizon"
    with pytest.raises(ValidationError):
        model.predict([panel], [100], 0)
    with pytest.raises(ValidationError):
        model.explain(panel, 100, HORIZON + 1)
    with pytest.raises(ValidationError):
        model.predict([panel], [panel.length], 3)
    with pytest.raises(ValidationError):
        model.predict([dataclasses.replace(panel, past=panel.past[:, :1])], [100], 3)


def test_unbounded_scale(model: QuantileTransformer) -> None:
    """Per-window normalisation makes forecasts equivariant to the target's scale and offset, and
    a model trained on daily values in the hundreds is as good, relative to that scale."""
    plain, scaled = cohort(30, 150, seed=3), cohort(30, 150, seed=3, scale=100.0, shift=500.0)
    panels, origins, actual = windows(plain)
    big_panels, _, big_actual = windows(scaled)
    forecast = model.predict(panels, origins, HORIZON)
    big = model.predict(big_panels, origins, HORIZON)
    np.testing.assert_allclose(big, 100.0 * forecast + 500.0, rtol=1e-4, atol=1e-2)

    trained_big = fit_transformer(cohort(80, 150, seed=1, scale=100.0, shift=500.0), context(), TINY)
    own = trained_big.predict(big_panels, origins, HORIZON)
    loss = mean_pinball(big_actual, own, LEVELS)
    assert loss < 0.8 * mean_pinball(big_actual, last_value(big_panels, origins), LEVELS)
    assert loss == pytest.approx(100.0 * mean_pinball(actual, forecast, LEVELS), rel=0.2)
