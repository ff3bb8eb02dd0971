"""The lagged correlation engine: finds planted couplings at the right lag, keeps false discoveries
near the nominal rate on autocorrelated series where naive p-values do not, and validates input."""

from __future__ import annotations

import numpy as np
import pytest

from novamind.core.errors import ValidationError
from novamind.correlation.domain.engine import (
    AnalysisOptions,
    FloatArray,
    Method,
    analyze,
    benjamini_hochberg,
    effective_sample_size,
    naive_lagged_correlations,
)
from novamind.correlation.domain.granger import granger_f_test, granger_tests


def ar1(rng: np.random.Generator, n: int, phi: float) -> FloatArray:
    """A stationary AR(1) series with unit innovation variance."""
    z = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = z[0] / np.sqrt(1.0 - phi * phi)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + z[t]
    return x


def planted(
    rng: np.random.Generator, n: int = 90, lag: int = 2, beta: float = 0.8
) -> tuple[FloatArray, FloatArray]:
    """AR(1) sleep driving AR(1)-noise mood ``lag`` days later with coefficient ``beta``."""
    burn = 10
    sleep = ar1(rng, n + burn, 0.6)
    mood = ar1(rng, n + burn, 0.5)
    mood[lag:] += beta * sleep[:-lag]
    return sleep[burn:], mood[burn:]


def test_planted_coupling_is_found_at_its_lag_with_its_sign() -> None:
    rng = np.random.default_rng(7)
    sleep, mood = planted(rng)
    sleep[rng.random(sleep.shape[0]) < 0.1] = np.nan  # gaps on both sides
    mood[rng.random(mood.shape[0]) < 0.1] = np.nan
    noise = ar1(rng, 90, 0.7)

    result = analyze({"sleep": sleep, "steps": noise}, {"mood": -mood})

    assert result.tests_performed == 2 * 8 * 2
    top = result.correlations[0]
    assert (top.biometric, top.symptom, top.lag_days) == ("sleep", "mood", 2)
    assert top.coefficient < -0.3 and top.significant
    assert top.ci_low < top.coefficient < top.ci_high < 0
    assert 3 <= top.n_effective < top.n_pairs < 90
    significant = [c for c in result.correlations if c.significant]
    assert all(c.biometric == "sleep" for c in significant)
    by_q = [c.q_value for c in result.correlations]
    assert by_q == sorted(by_q)
    assert any("Pyper & Peterman 1998" in note for note in result.notes)
    assert any("BH-FDR over 32 tests at alpha 0.05; lags 0-7 d" in note for note in result.notes)
    assert result.warnings == ()


def test_benjamini_hochberg_matches_a_hand_computation() -> None:
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    # sorted: 0.005, 0.01, 0.03, 0.04, 0.5 -> x 5/rank: 0.025, 0.025, 0.05, 0.05, 0.5
    expected = [0.025, 0.05, 0.05, 0.025, 0.5]
    np.testing.assert_allclose(benjamini_hochberg(p), expected)
    # Step-up monotonicity: a larger p-value's scaled value can lower a smaller one's q.
    np.testing.assert_allclose(benjamini_hochberg([0.02, 0.021, 0.022]), [0.022, 0.022, 0.022])
    assert benjamini_hochberg([]).shape == (0,)


def test_effective_sample_size_shrinks_for_autocorrelated_series_only() -> None:
    rng = np.random.default_rng(3)
    n = 200
    full = np.ones(n, dtype=bool)
    persistent = [effective_sample_size(ar1(rng, n, 0.9), ar1(rng, n, 0.9), full) for _ in range(20)]
    white = [effective_sample_size(rng.standard_normal(n), rng.standard_normal(n), full) for _ in range(20)]
    # Bartlett: n_eff ~ n (1 - phi^2) / (1 + phi^2) ~ 0.1 n for two AR(1) with phi = 0.9.
    assert np.median(persistent) < 0.35 * n
    assert np.median(white) > 0.85 * n
    assert all(3 <= v <= n for v in persistent + white)


def test_independent_autocorrelated_series_naive_rejects_often_engine_does_not() -> None:
    rng = np.random.default_rng(11)
    options = AnalysisOptions(max_lag=0, methods=(Method.PEARSON,))
    naive_rejections = engine_rejections = 0
    trials = 200
    for _ in range(trials):
        x = {"x": ar1(rng, 90, 0.8)}
        y = {"y": ar1(rng, 90, 0.8)}
        naive_rejections += naive_lagged_correlations(x, y, max_lag=0)[0].p_value < 0.05
        engine_rejections += analyze(x, y, options).correlations[0].p_value < 0.05
    assert naive_rejections / trials > 0.2
    assert engine_rejections / trials <= 0.09


def test_gaps_are_paired_only_where_both_days_exist() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal(40)
    y = rng.standard_normal(40)
    x[[0, 5, 6, 7]] = np.nan
    y[[10, 11]] = np.nan
    result = analyze({"x": x}, {"y": y}, AnalysisOptions(max_lag=1, methods=(Method.PEARSON,)))
    by_lag = {c.lag_days: c for c in result.correlations}
    assert by_lag[0].n_pairs == 40 - 4 - 2
    # lag 1: t in 0..38, x[t] missing at 0,5,6,7; y[t+1] missing at t=9,10
    assert by_lag[1].n_pairs == 39 - 4 - 2
    mask = np.isfinite(x) & np.isfinite(y)
    assert by_lag[0].coefficient == pytest.approx(np.corrcoef(x[mask], y[mask])[0, 1])
    assert all(
        np.isfinite([c.p_value, c.q_value, c.n_effective, c.ci_low, c.ci_high]).all() for c in by_lag.values()
    )


def test_short_pairs_are_skipped_with_a_warning() -> None:
    rng = np.random.default_rng(1)
    sparse = np.full(60, np.nan)
    sparse[:10] = rng.standard_normal(10)
    result = analyze(
        {"dense": rng.standard_normal(60), "sparse": sparse},
        {"mood": rng.standard_normal(60)},
        AnalysisOptions(),
    )
    assert {c.biometric for c in result.correlations} == {"dense"}
    assert any("sparse x mood" in w and "fewer than 14" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (AnalysisOptions(max_lag=8), "max_lag_days"),
        (AnalysisOptions(max_lag=-1), "max_lag_days"),
        (AnalysisOptions(fdr_alpha=0.0), "fdr_alpha"),
        (AnalysisOptions(fdr_alpha=1.0), "fdr_alpha"),
        (AnalysisOptions(confidence_level=1.0), "confidence_level"),
        (AnalysisOptions(confidence_level=0.0), "confidence_level"),
    ],
)
def test_out_of_range_parameters_are_validation_errors(options: AnalysisOptions, field: str) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValidationError) as caught:
        analyze({"x": rng.standard_normal(30)}, {"y": rng.standard_normal(30)}, options)
    assert caught.value.field == field


def test_too_little_overlap_everywhere_is_a_validation_error() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(30)
    y = rng.standard_normal(30)
    x[::2] = np.nan
    y[1::2] = np.nan  # never both present on the same day at lag 0, 2, 4, ...
    with pytest.raises(ValidationError, match="too little overlap"):
        analyze({"x": x}, {"y": y}, AnalysisOptions(max_lag=0))
    with pytest.raises(ValidationError):
        analyze({"x": x[:20]}, {"y": y}, AnalysisOptions(max_lag=0))


# Granger causality (novamind.correlation.domain.granger) -----------------------------------------


def test_granger_f_test_matches_statsmodels_without_gaps() -> None:
    from statsmodels.tsa.stattools import grangercausalitytests  # type: ignore[import-untyped]

    rng = np.random.default_rng(2)
    sleep, mood = planted(rng, n=120, lag=2, beta=0.4)
    ours = granger_f_test(sleep, mood, 3)
    assert ours is not None
    f, df1, df2, p, t_obs = ours
    reference = grangercausalitytests(np.column_stack([mood, sleep]), [3])[3][0]["ssr_ftest"]
    assert f == pytest.approx(reference[0]) and p == pytest.approx(reference[1])
    assert (df1, df2) == (int(reference[3]), int(reference[2])) and t_obs == 117


def test_granger_finds_the_driver_not_the_reverse_and_differences_random_walks() -> None:
    rng = np.random.default_rng(4)
    sleep, mood = planted(rng, n=120, lag=2, beta=0.8)
    sleep[rng.random(120) < 0.1] = np.nan
    walk = np.cumsum(rng.standard_normal(120))

    forward = granger_tests({"sleep": sleep, "walk": walk}, {"mood": mood}, max_lag=7)
    by_pair = {r.biometric: r for r in forward.results}
    assert by_pair["sleep"].significant and by_pair["sleep"].lag_order >= 2
    assert by_pair["sleep"].df_numerator == by_pair["sleep"].lag_order
    assert by_pair["sleep"].n_observations < 120
    assert not by_pair["walk"].significant
    assert any(note.startswith("walk: first difference (ADF p=") for note in by_pair["walk"].notes)

    reverse = granger_tests({"mood": mood}, {"sleep": sleep}, max_lag=7)
    assert not reverse.results[0].significant


def test_granger_false_positive_rate_is_near_nominal_on_independent_series() -> None:
    rng = np.random.default_rng(9)
    trials = 100
    rejections = 0
    for _ in range(trials):
        x, y = ar1(rng, 90, 0.6), ar1(rng, 90, 0.6)
        x[rng.random(90) < 0.1] = np.nan
        rejections += granger_tests({"x": x}, {"y": y}, max_lag=7).results[0].p_value < 0.05
    assert rejections / trials <= 0.12
    with pytest.raises(ValidationError):
        granger_tests({"x": x}, {"y": y}, max_lag=9)
