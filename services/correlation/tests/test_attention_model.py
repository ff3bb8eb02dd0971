"""The attention model finds the planted coupling of the synthetic cohort and is reproducible."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from novamind.correlation.domain.synthetic import (
    SyntheticCohort,
    SyntheticCohortConfig,
    generate_cohort,
)
from novamind.correlation.models.attention import (
    SPEC_FILE,
    WEIGHTS_FILE,
    AttentionModel,
    AttentionModelConfig,
    lag_of_row,
    make_windows,
)

TRAIN_PATIENTS = 60
TEST_PATIENTS = 20
TINY = AttentionModelConfig(window_days=14, embed_dim=16, hidden_dim=16, steps=200)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cohort() -> SyntheticCohort:
    return generate_cohort(SyntheticCohortConfig(patients=TRAIN_PATIENTS + TEST_PATIENTS, days=90), seed=2)


@pytest.fixture(scope="module")
def model(cohort: SyntheticCohort) -> AttentionModel:
    torch.set_num_threads(1)
    train = slice(0, TRAIN_PATIENTS)
    return AttentionModel.fit(
        cohort.biometrics[train], cohort.symptom[train], cohort.signal_names, "mood_rating", TINY, seed=0
    )


@pytest.fixture(scope="module")
def held_out(cohort: SyntheticCohort, model: AttentionModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    test = slice(TRAIN_PATIENTS, None)
    windows, targets = make_windows(cohort.biometrics[test], cohort.symptom[test], TINY.window_days)
    predictions, weights = model.predict_batch(windows)
    return targets, predictions, weights


def test_synthetic_cohort_is_deterministic_and_planted() -> None:
    config = SyntheticCohortConfig(patients=5, days=40)
    a, b = generate_cohort(config, seed=7), generate_cohort(config, seed=7)
    np.testing.assert_array_equal(a.biometrics, b.biometrics)
    np.testing.assert_array_equal(a.symptom, b.symptom)
    assert a.biometrics.shape == (5, 40, len(config.signals))
    assert np.isnan(a.biometrics).any() and np.isnan(a.symptom).any()
    # within a patient the planted effect is exactly linear in the planted signal L days earlier,
    # with slope planted_strength / sd (one sd of the signal moves the symptom by the strength)
    k, lag = config.planted_index, config.planted_lag_days
    slope_expected = config.planted_strength / config.signals[k].sd
    for patient in range(config.patients):
        x = a.biometrics[patient, : 40 - lag, k]
        effect = a.planted_effect[patient, lag:]
        ok = ~np.isnan(x)
        slope, intercept = np.polyfit(x[ok], effect[ok], 1)
        assert slope == pytest.approx(slope_expected, rel=1e-9)
        np.testing.assert_allclose(slope * x[ok] + intercept, effect[ok], atol=1e-9)


def test_attention_mass_is_highest_on_the_planted_signal(
    cohort: SyntheticCohort, held_out: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    mass = held_out[2].mean(axis=0).sum(axis=0)
    planted = cohort.config.planted_index
    assert int(np.argmax(mass)) == planted
    others = np.delete(mass, planted)
    assert mass[planted] > 2 * others.max()


def test_attention_over_days_peaks_at_the_planted_lag(
    cohort: SyntheticCohort, held_out: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    by_row = held_out[2].mean(axis=0).sum(axis=1)
    peak_row = int(np.argmax(by_row))
    assert lag_of_row(peak_row, TINY.window_days) == cohort.config.planted_lag_days
    # and the single heaviest (day, signal) cell is the planted signal at the planted lag
    joint = held_out[2].mean(axis=0)
    row, col = np.unravel_index(int(np.argmax(joint)), joint.shape)
    assert (lag_of_row(int(row), TINY.window_days), int(col)) == (
        cohort.config.planted_lag_days,
        cohort.config.planted_index,
    )


def test_prediction_beats_the_mean_predictor(held_out: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    targets, predictions, _ = held_out
    mse = float(np.mean((predictions - targets) ** 2))
    baseline = float(np.mean((targets - targets.mean()) ** 2))
    assert mse < 0.7 * baseline


def test_weights_are_a_distribution(
    model: AttentionModel, held_out: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    weights = held_out[2]
    assert weights.shape[1:] == (TINY.window_days, len(model.signal_names))
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(axis=(1, 2)), 1.0, atol=1e-9)


def test_single_window_with_gaps(cohort: SyntheticCohort, model: AttentionModel) -> None:
    window = cohort.biometrics[TRAIN_PATIENTS, :14].copy()
    window[3, :] = np.nan
    window[:, 4] = np.nan
    value, weights, names = model.predict_with_attention(window)
    assert np.isfinite(value)
    assert names == cohort.signal_names
    assert weights.shape == (14, len(names))
    assert np.all(weights >= 0) and weights.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        model.predict_with_attention(window[:10])


def test_save_load_round_trip(tmp_path: Path, cohort: SyntheticCohort, model: AttentionModel) -> None:
    paths = model.save(tmp_path)
    assert sorted(p.name for p in paths) == sorted([SPEC_FILE, WEIGHTS_FILE])
    loaded = AttentionModel.load(tmp_path)
    assert loaded.signal_names == model.signal_names and loaded.config == model.config
    windows, _ = make_windows(cohort.biometrics[TRAIN_PATIENTS:], cohort.symptom[TRAIN_PATIENTS:], 14)
    p1, w1 = model.predict_batch(windows[:200])
    p2, w2 = loaded.predict_batch(windows[:200])
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(w1, w2)


def test_training_is_deterministic(tmp_path: Path, cohort: SyntheticCohort) -> None:
    config = dataclasses.replace(TINY, steps=15)
    train = slice(0, 20)
    saved = []
    for run in ("a", "b"):
        fitted = AttentionModel.fit(
            cohort.biometrics[train],
            cohort.symptom[train],
            cohort.signal_names,
            "mood_rating",
            config,
            seed=3,
        )
        fitted.save(tmp_path / run)
        saved.append(
            ((tmp_path / run / WEIGHTS_FILE).read_bytes(), (tmp_path / run / SPEC_FILE).read_bytes())
        )
    assert saved[0] == saved[1]
    other = AttentionModel.fit(
        cohort.biometrics[train], cohort.symptom[train], cohort.signal_names, "mood_rating", config, seed=4
    )
    other.save(tmp_path / "c")
    assert (tmp_path / "c" / WEIGHTS_FILE).read_bytes() != saved[0][0]


def test_attention_follows_a_different_planting() -> None:
    """Planting another signal at another lag moves the attention there (no built-in bias)."""
    config = SyntheticCohortConfig(
        patients=TRAIN_PATIENTS + TEST_PATIENTS, days=90, planted_signal="hrv_rmssd", planted_lag_days=5
    )
    other = generate_cohort(config, seed=2)
    train, test = slice(0, TRAIN_PATIENTS), slice(TRAIN_PATIENTS, None)
    fitted = AttentionModel.fit(
        other.biometrics[train], other.symptom[train], other.signal_names, "mood_rating", TINY, seed=0
    )
    windows, _ = make_windows(other.biometrics[test], other.symptom[test], TINY.window_days)
    joint = fitted.predict_batch(windows)[1].mean(axis=0)
    assert int(np.argmax(joint.sum(axis=0))) == config.planted_index
    assert lag_of_row(int(np.argmax(joint.sum(axis=1))), TINY.window_days) == 5
