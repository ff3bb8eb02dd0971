"""Input drift: per-week statistics and the population stability index, on plain values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.domain.drift import (
    REFERENCE_FORMAT,
    SIGNIFICANT_PSI,
    WEEK_STATISTICS,
    BinnedReference,
    DriftReference,
    fit_binned_reference,
    fit_reference,
    population_stability_index,
    sample_psi,
    week_statistics,
)


def _normal(n: int = 5000, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc=shift, scale=1.0, size=n)


# --- PSI --------------------------------------------------------------------------------------------


def test_psi_of_identical_proportions_is_zero() -> None:
    proportions = np.full(10, 0.1)

    assert population_stability_index(proportions, proportions) == 0.0


def test_psi_of_a_sample_from_the_reference_population_is_near_zero() -> None:
    reference = fit_binned_reference(_normal(seed=1))

    assert sample_psi(reference, _normal(seed=2)) < 0.01


def test_psi_of_the_reference_sample_itself_is_zero() -> None:
    sample = _normal(seed=1)

    assert sample_psi(fit_binned_reference(sample), sample) == pytest.approx(0.0, abs=1e-12)


def test_psi_of_a_one_sd_shift_is_significant() -> None:
    reference = fit_binned_reference(_normal(seed=1))

    assert sample_psi(reference, _normal(shift=1.0, seed=2)) > SIGNIFICANT_PSI


def test_psi_grows_with_the_shift() -> None:
    reference = fit_binned_reference(_normal(seed=1))
    shifts = [0.0, 0.1, 0.25, 0.5, 1.0, 2.0]

    psis = [sample_psi(reference, _normal(shift=s, seed=2)) for s in shifts]

    assert psis == sorted(psis)
    assert len(set(psis)) == len(psis)


def test_psi_matches_the_formula_by_hand() -> None:
    expected = [0.5, 0.5]
    actual = [0.8, 0.2]

    psi = population_stability_index(expected, actual)

    assert psi == pytest.approx(0.3 * math.log(0.8 / 0.5) + (-0.3) * math.log(0.2 / 0.5))


def test_an_empty_bin_gives_a_finite_psi_through_epsilon() -> None:
    psi = population_stability_index([0.5, 0.5], [1.0, 0.0], epsilon=1e-4)

    assert math.isfinite(psi)
    assert psi == pytest.approx(0.5 * math.log(1.0 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5))


def test_psi_refuses_mismatched_bins_and_a_non_positive_epsilon() -> None:
    with pytest.raises(ValidationError):
        population_stability_index([0.5, 0.5], [1.0])
    with pytest.raises(ValidationError):
        population_stability_index([0.5, 0.5], [0.5, 0.5], epsilon=0)


# --- binning ----------------------------------------------------------------------------------------


def test_reference_bins_are_deciles_of_the_reference_sample() -> None:
    reference = fit_binned_reference(np.arange(1, 101, dtype=float))

    np.testing.assert_array_equal(reference.cut_points, [10, 20, 30, 40, 50, 60, 70, 80, 90])
    np.testing.assert_allclose(reference.proportions, np.full(10, 0.1))


def test_bins_are_closed_on_the_right() -> None:
    reference = BinnedReference(np.array([1.0, 2.0]), np.array([0.25, 0.5, 0.25]))

    np.testing.assert_allclose(reference.proportions_of([1.0, 1.5, 2.0, 2.5]), [0.25, 0.5, 0.25])


def test_tied_cut_points_are_merged_so_no_reference_bin_is_empty() -> None:
    sample = np.concatenate([np.zeros(700), np.linspace(0.1, 1.0, 300)])

    reference = fit_binned_reference(sample)

    assert np.all(np.diff(reference.cut_points) > 0)
    assert np.all(reference.proportions > 0)
    assert reference.proportions[0] == pytest.approx(0.7)


def test_a_constant_reference_is_one_bin_and_never_drifts_by_its_own_values() -> None:
    reference = fit_binned_reference(np.full(50, 3.0))

    assert reference.cut_points.size == 0
    assert sample_psi(reference, np.full(10, 3.0)) == 0.0


def test_nan_values_are_ignored_when_binning() -> None:
    reference = fit_binned_reference(np.arange(1, 101, dtype=float))

    with_nan = reference.proportions_of([5.0, np.nan, 95.0])

    np.testing.assert_allclose(with_nan[[0, -1]], [0.5, 0.5])


def test_a_reference_needs_enough_values_and_two_bins() -> None:
    with pytest.raises(ValidationError):
        fit_binned_reference(np.arange(5, dtype=float), n_bins=10)
    with pytest.raises(ValidationError):
        fit_binned_reference(np.arange(50, dtype=float), n_bins=1)


# --- week statistics ---------------------------------------------------------------------------------


def test_week_statistics_of_a_hand_made_week() -> None:
    # Two days: nights (00:00-05:59) at 0 counts, the rest of each day at 100 counts/min.
    minute_of_day = np.arange(2880) % 1440
    counts = np.where(minute_of_day < 360, 0.0, 100.0)

    stats = week_statistics(counts)

    assert set(stats) == set(WEEK_STATISTICS)
    assert stats["mean"] == pytest.approx(75.0)
    assert stats["sd"] == pytest.approx(math.sqrt(0.25 * 0.75) * 100)
    assert stats["fraction_zero"] == pytest.approx(0.25)
    assert stats["log_mean"] == pytest.approx(0.75 * math.log(101))
    assert stats["night_mean"] == 0.0


def test_missing_minutes_are_left_out_of_every_statistic() -> None:
    counts = np.array([np.nan, 0.0, 10.0, np.nan])

    stats = week_statistics(counts)

    assert stats["mean"] == 5.0
    assert stats["fraction_zero"] == 0.5


def test_the_night_follows_the_local_clock_labels_when_given() -> None:
    counts = np.array([50.0, 10.0, 10.0])
    clock = np.array([120, 600, 700])  # only the first minute is at night

    assert week_statistics(counts, clock)["night_mean"] == 50.0


def test_a_week_without_night_data_has_a_nan_night_mean() -> None:
    counts = np.full(1440, np.nan)
    counts[720:] = 5.0

    assert math.isnan(week_statistics(counts)["night_mean"])


@pytest.mark.parametrize(
    "counts",
    [np.array([]), np.full(10, np.nan), np.array([1.0, -1.0]), np.array([1.0, np.inf]), np.zeros((2, 2))],
    ids=["empty", "all-missing", "negative", "infinite", "two-dimensional"],
)
def test_week_statistics_refuse_unusable_weeks(counts: np.ndarray) -> None:
    with pytest.raises(ValidationError):
        week_statistics(counts)


# --- the reference document ---------------------------------------------------------------------------


def test_a_fitted_reference_round_trips_through_json() -> None:
    rng = np.random.default_rng(5)
    weeks = [week_statistics(rng.poisson(rng.uniform(20, 200), size=1440).astype(float)) for _ in range(40)]

    reference = fit_reference(weeks)
    document = reference.to_json()
    restored = DriftReference.from_json(document)

    assert document["format"] == REFERENCE_FORMAT
    assert restored.n_weeks == 40
    assert set(restored.statistics) == set(WEEK_STATISTICS)
    for name, binned in reference.statistics.items():
        np.testing.assert_array_equal(restored.statistics[name].cut_points, binned.cut_points)
        np.testing.assert_array_equal(restored.statistics[name].proportions, binned.proportions)


@pytest.mark.parametrize(
    "document",
    [
        {"format": "something-else", "n_weeks": 1, "statistics": {}},
        {"format": REFERENCE_FORMAT, "n_weeks": 1},
        {"format": REFERENCE_FORMAT, "n_weeks": 1, "statistics": {"mean": {"cut_points": [2, 1]}}},
        {
            "format": REFERENCE_FORMAT,
            "n_weeks": 1,
            "statistics": {"mean": {"cut_points": [2.0, 1.0], "proportions": [0.2, 0.3, 0.5]}},
        },
        {
            "format": REFERENCE_FORMAT,
            "n_weeks": 1,
            "statistics": {"steps": {"cut_points": [], "proportions": [1.0]}},
        },
    ],
    ids=["format", "no-statistics", "no-proportions", "unsorted", "unknown-statistic"],
)
def test_a_malformed_reference_is_refused(document: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DriftReference.from_json(document)
