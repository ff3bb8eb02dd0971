"""Stacking weights and conformal corrections on constructed forecasts with known answers."""

from __future__ import annotations

import numpy as np

from novamind.forecasting.domain import metrics
from novamind.forecasting.domain.conformal import central_pairs, conformal_quantile, fit_conformal
from novamind.forecasting.domain.stacking import fit_stacking

LEVELS = (0.1, 0.5, 0.9)
BUCKETS = ((1, 3), (4, 6))


def test_stacking_prefers_the_accurate_member_and_beats_both() -> None:
    rng = np.random.default_rng(0)
    n, h = 400, 6
    truth = rng.normal(10, 2, size=(n, h))
    z = np.array([-1.2816, 0.0, 1.2816])
    # member a: right centre, right spread; member b: biased by +3
    a = truth[..., None] * 0 + 10 + 2 * z
    b = a + 3
    weights = fit_stacking(truth, [a, b], ("a", "b"), LEVELS, BUCKETS)
    assert weights.weights.shape == (3, 2, 2)
    assert np.allclose(weights.weights.sum(axis=-1), 1.0)
    assert (weights.weights[:, :, 0] > 0.8).all()
    combined = weights.combine([a, b])
    assert metrics.mean_pinball(truth, combined, LEVELS) <= metrics.mean_pinball(truth, b, LEVELS)


def test_stacking_mixes_two_members_biased_in_opposite_directions() -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(0, 0.5, size=(300, 3))
    low = np.repeat(np.full((300, 3, 1), -2.0), 3, axis=-1) + np.array([-0.6, 0, 0.6])
    high = low + 4.0
    weights = fit_stacking(truth, [low, high], ("low", "high"), LEVELS, ((1, 3),))
    median = weights.weights[1, 0]
    assert abs(median[0] - 0.5) < 0.1
    combined = weights.combine([low, high])
    best_single = min(metrics.mean_pinball(truth, m, LEVELS) for m in (low, high))
    assert metrics.mean_pinball(truth, combined, LEVELS) < 0.5 * best_single


def test_too_few_points_keep_equal_weights() -> None:
    truth = np.full((5, 3), np.nan)
    truth[0, 0] = 1.0
    forecasts = [np.zeros((5, 3, 3)), np.ones((5, 3, 3))]
    weights = fit_stacking(truth, forecasts, ("a", "b"), LEVELS, ((1, 3),))
    assert np.allclose(weights.weights, 0.5)


def test_conformal_quantile_is_the_finite_sample_rank() -> None:
    scores = np.arange(1.0, 11.0)  # n = 10
    assert conformal_quantile(scores, 0.2) == 9.0  # ceil(11 * 0.8) = 9th smallest
    assert conformal_quantile(scores, 0.01) == 10.0  # rank beyond n: the maximum
    assert central_pairs((0.05, 0.1, 0.5, 0.9, 0.95)) == ((0.05, 0.95), (0.1, 0.9))


def test_conformal_calibration_restores_coverage_of_overconfident_intervals() -> None:
    rng = np.random.default_rng(2)
    n, h = 3000, 4
    scale = np.array([1.0, 1.5, 2.0, 2.5])  # spread grows with the horizon
    truth = rng.normal(0, 1, size=(n, h)) * scale
    # intervals half as wide as they should be at every horizon
    z = np.array([-1.2816, 0.0, 1.2816])
    raw = np.broadcast_to((0.5 * scale)[None, :, None] * z, (n, h, 3)).copy()
    calibration = fit_conformal(truth[:1500], raw[:1500], LEVELS, ((1, 4),))
    before = metrics.coverage(truth[1500:], raw[1500:, :, 0], raw[1500:, :, 2])
    fixed = calibration.apply(raw[1500:], LEVELS)
    after = metrics.coverage(truth[1500:], fixed[:, :, 0], fixed[:, :, 2])
    assert before < 0.6
    assert 0.77 <= after <= 0.83
    assert (np.diff(calibration.corrections[0]) > 0).all()  # wider corrections further out
    per_day = [metrics.coverage(truth[1500:, d], fixed[:, d, 0], fixed[:, d, 2]) for d in range(h)]
    assert all(0.75 <= c <= 0.85 for c in per_day)


def test_conformal_narrows_intervals_that_are_too_wide() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(0, 1, size=(2000, 2))
    raw = np.broadcast_to(np.array([-5.0, 0.0, 5.0]), (2000, 2, 3)).copy()
    calibration = fit_conformal(truth, raw, LEVELS, ((1, 2),))
    fixed = calibration.apply(raw, LEVELS)
    assert (calibration.corrections < 0).all()
    assert 0.77 <= metrics.coverage(truth, fixed[:, :, 0], fixed[:, :, 2]) <= 0.83
    assert (fixed[:, :, 0] <= fixed[:, :, 1]).all() and (fixed[:, :, 1] <= fixed[:, :, 2]).all()
