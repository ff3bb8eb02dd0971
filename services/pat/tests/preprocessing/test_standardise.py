"""PAT standardisation: sklearn StandardScaler per minute index, as the official notebooks do."""

from __future__ import annotations

import numpy as np
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.domain.preprocessing import (
    MINUTES_PER_WEEK,
    StandardScalerParameters,
    fit_standard_scaler,
    standardise,
)


def cohort() -> np.ndarray:
    # Two weeks. Column 0: 0 and 2 (mean 1, population SD 1); column 1: 2 and 2 (constant);
    # column 2: 5 and 1 (mean 3, SD 2); every other column is constant at 7.
    weeks = np.full((2, MINUTES_PER_WEEK), 7.0)
    weeks[:, 0] = [0.0, 2.0]
    weeks[:, 1] = [2.0, 2.0]
    weeks[:, 2] = [5.0, 1.0]
    return weeks


def test_fit_is_the_column_mean_and_population_sd_with_one_for_constant_columns() -> None:
    scaler = fit_standard_scaler(cohort())

    np.testing.assert_array_equal(scaler.mean[:4], [1.0, 2.0, 3.0, 7.0])
    np.testing.assert_array_equal(scaler.scale[:4], [1.0, 1.0, 2.0, 1.0])


def test_fitted_transform_matches_the_hand_computed_z_scores() -> None:
    weeks = cohort()
    scaler = fit_standard_scaler(weeks)

    z = standardise(weeks, scaler)

    np.testing.assert_array_equal(z[:, :3], [[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]])
    np.testing.assert_array_equal(z[:, 3:], 0.0)


def test_a_single_week_is_transformed_with_stored_parameters() -> None:
    mean = np.full(MINUTES_PER_WEEK, 10.0)
    scale = np.full(MINUTES_PER_WEEK, 4.0)
    week = np.full(MINUTES_PER_WEEK, 18.0)

    z = standardise(week, StandardScalerParameters(mean=mean, scale=scale))

    assert z.shape == (MINUTES_PER_WEEK,)
    np.testing.assert_array_equal(z, 2.0)


def test_fallback_without_parameters_uses_the_week_s_own_mean_and_sd() -> None:
    week = np.where(np.arange(MINUTES_PER_WEEK) % 2 == 0, 0.0, 10.0)  # mean 5, SD 5

    z = standardise(week)

    np.testing.assert_array_equal(z, np.where(week == 0, -1.0, 1.0))
    np.testing.assert_array_equal(standardise(np.full(MINUTES_PER_WEEK, 3.0)), 0.0)


def test_fitted_transform_of_the_training_cohort_has_zero_mean_and_unit_sd() -> None:
    weeks = np.random.default_rng(0).gamma(1.0, 200.0, size=(50, MINUTES_PER_WEEK))

    z = standardise(weeks, fit_standard_scaler(weeks))

    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-12)


@pytest.mark.parametrize(
    "values",
    [np.zeros(100), np.zeros((2, 3, MINUTES_PER_WEEK)), np.full(MINUTES_PER_WEEK, np.nan)],
    ids=["short", "three-dimensional", "not-imputed"],
)
def test_wrong_shapes_or_missing_values_are_rejected(values: np.ndarray) -> None:
    with pytest.raises(ValidationError):
        standardise(values)


def test_scaler_parameters_must_be_week_long_and_positive() -> None:
    with pytest.raises(ValidationError):
        StandardScalerParameters(mean=np.zeros(MINUTES_PER_WEEK), scale=np.zeros(MINUTES_PER_WEEK))
    with pytest.raises(ValidationError):
        fit_standard_scaler(np.zeros(MINUTES_PER_WEEK))
