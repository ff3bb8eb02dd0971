"""The synthetic cohort plants what it documents, and its oracle is a calibrated noise floor."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from novamind.core.errors import ValidationError
from novamind.forecasting.domain.metrics import coverage, mean_pinball
from novamind.forecasting.domain.series import FloatArray
from novamind.forecasting.domain.synthetic import (
    EXTRA_KEY,
    SCHEMA,
    TARGETS,
    CohortConfig,
    SyntheticPatient,
    generate_cohort,
    oracle_quantiles,
    panels,
)

SMALL = CohortConfig(patients=40, days=90)


@pytest.fixture(scope="module")
def cohort() -> list[SyntheticPatient]:
    """A mid-sized cohort shared by the statistical tests (everyone wears a device)."""
    return generate_cohort(CohortConfig(patients=150, days=120, no_wearable_share=0.0), seed=5)


def _arrays(patients: list[SyntheticPatient]) -> list[FloatArray]:
    out: list[FloatArray] = []
    for patient in patients:
        out.extend(patient.targets[name] for name in TARGETS)
        out.extend([patient.past, patient.future, patient.latent.severity])
    return out


def test_same_seed_gives_identical_arrays_and_another_seed_does_not() -> None:
    first, again, other = (generate_cohort(SMALL, seed) for seed in (3, 3, 4))
    assert [p.key for p in first] == [p.key for p in again]
    assert [p.start for p in first] == [p.start for p in again]
    for a, b in zip(_arrays(first), _arrays(again), strict=True):
        assert np.array_equal(a, b, equal_nan=True)
    assert not all(
        np.array_equal(a, b, equal_nan=True) for a, b in zip(_arrays(first), _arrays(other), strict=True)
    )


def test_shapes_bounds_keys_and_calendar() -> None:
    config = SMALL
    patients = generate_cohort(config, seed=1)
    assert len(patients) == config.patients
    assert [p.key for p in patients[:2]] == ["syn-0001", "syn-0002"]
    assert len({p.key for p in patients}) == config.patients
    assert len({p.start.weekday() for p in patients}) == 7
    for patient in patients:
        for name, spec in TARGETS.items():
            values = patient.targets[name]
            assert values.shape == (config.days,)
            seen = values[np.isfinite(values)]
            assert seen.size > 0
            assert spec.lower is not None and spec.upper is not None
            assert (seen >= spec.lower).all() and (seen <= spec.upper).all()
            assert np.array_equal(seen, np.round(seen))
            assert not np.signbit(seen).any()
        assert patient.past.shape == (config.days, len(SCHEMA.past))
        assert patient.future.shape == (config.days + config.future_days, len(SCHEMA.future))
        schedule = patient.future[:, 0]
        assert set(np.unique(schedule)) <= {0.0, 1.0}
        assert (np.diff(schedule) >= 0).all()  # once started, the antidepressant continues
        if patient.traits.has_medication:
            on = np.arange(schedule.size) >= patient.traits.medication_start
            assert np.array_equal(schedule, on.astype(np.float64))
        else:
            assert not schedule.any()
        sleep, efficiency, steps, heart_rate, shift = (patient.past[:, k] for k in range(5))
        worn = np.isfinite(sleep)
        if worn.any():
            assert (sleep[worn] > 60).all() and (sleep[worn] < 800).all()
            assert (efficiency[worn] >= 50).all() and (efficiency[worn] <= 99.5).all()
            assert (steps[worn] >= 0).all() and np.median(steps[worn]) > 500
            assert (heart_rate[worn] > 30).all() and (heart_rate[worn] < 130).all()
            assert (np.abs(shift[worn]) < 2).all()


def test_panels_carry_the_target_covariates_and_the_patient() -> None:
    patients = generate_cohort(SMALL, seed=2)
    for name in TARGETS:
        made = panels(patients, name)
        assert [panel.key for panel in made] == [p.key for p in patients]
        for panel, patient in zip(made, patients, strict=True):
            assert panel.extra[EXTRA_KEY] is patient
            assert np.array_equal(panel.target, patient.targets[name], equal_nan=True)
            assert panel.future.shape[0] >= panel.length + 30
            assert panel.start == patient.start
    with pytest.raises(ValidationError):
        panels(patients, "unknown_score")


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValidationError):
        CohortConfig(patients=0)
    with pytest.raises(ValidationError):
        CohortConfig(relapse_rate=1.5)
    with pytest.raises(ValidationError):
        CohortConfig(severity_persistence=1.0)


def test_planted_measurement_noise_is_recovered(cohort: list[SyntheticPatient]) -> None:
    # Away from the bounds a readout is rint(mean + noise); with a continuous mean the rounding
    # error is uniform and independent of the noise, so E[(y - mean)^2] = sd^2 + 1/12.
    for name, spec in TARGETS.items():
        squared: list[FloatArray] = []
        planted: list[FloatArray] = []
        for patient in cohort:
            sd = patient.traits.noise_sd(name)
            mean = patient.readout_mean(name)
            observed = patient.targets[name]
            assert spec.lower is not None and spec.upper is not None
            inside = np.isfinite(observed) & (mean > spec.lower + 4 * sd) & (mean < spec.upper - 4 * sd)
            squared.append((observed[inside] - mean[inside]) ** 2)
            planted.append(np.full(int(inside.sum()), sd**2 + 1.0 / 12.0))
        recovered = np.sqrt(np.concatenate(squared).mean())
        expected = np.sqrt(np.concatenate(planted).mean())
        assert np.concatenate(squared).size > 2000
        assert recovered == pytest.approx(expected, rel=0.04), name


def test_sleep_drives_severity_at_the_planted_lag(cohort: list[SyntheticPatient]) -> None:
    lag = cohort[0].config.sleep_lag_days
    correlations = []
    for k in range(6):
        deviations, changes = [], []
        for patient in cohort:
            sleep = patient.past[:, 0]
            weekday = patient.panel("phq9_total").day_of_week(patient.days)
            deviation = sleep.copy()
            for day in range(7):
                deviation[weekday == day] -= np.nanmean(sleep[weekday == day])
            score = patient.targets["phq9_total"]
            change = np.full_like(score, np.nan)
            change[1:] = np.diff(score)
            deviations.append(deviation[: patient.days - k])
            changes.append(change[k:])
        x, y = np.concatenate(deviations), np.concatenate(changes)
        scored = np.isfinite(x) & np.isfinite(y)
        correlations.append(float(np.corrcoef(x[scored], y[scored])[0, 1]))
    # Less sleep -> higher severity: the most negative correlation is at the planted lag.
    assert int(np.argmin(correlations)) == lag
    assert correlations[lag] < -0.1
    assert correlations[lag] < 1.5 * min(correlations[lag - 1], correlations[lag + 1])


def test_missing_days_follow_adherence_and_dropout_runs() -> None:
    config = CohortConfig(patients=200, days=150)
    patients = generate_cohort(config, seed=8)
    observed = np.mean([np.isfinite(p.targets["phq9_total"]).mean() for p in patients])
    expected = (
        config.adherence_mean
        * (1 - config.skip_probability)
        / (1 + config.dropout_start_probability * config.dropout_mean_days)
    )
    assert observed == pytest.approx(expected, abs=0.025)

    # With near-perfect adherence the gaps are the dropout runs: geometric, mean dropout_mean_days.
    runs_only = dataclasses.replace(
        config, adherence_mean=0.999, adherence_concentration=1e5, skip_probability=0.0
    )
    lengths: list[int] = []
    for patient in generate_cohort(runs_only, seed=8):
        missing = np.isnan(patient.targets["mood_rating"]).astype(np.int8)
        edges = np.diff(np.concatenate([[0], missing, [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        inner = (starts > 0) & (ends < missing.size)  # runs cut by the window are biased short
        lengths.extend(int(n) for n in (ends - starts)[inner])
    assert len(lengths) > 200
    assert np.mean(lengths) == pytest.approx(config.dropout_mean_days, rel=0.15)


def test_patients_without_a_wearable_have_no_covariates() -> None:
    config = CohortConfig(patients=200, days=60, no_wearable_share=0.3, wear_missing_probability=0.1)
    patients = generate_cohort(config, seed=9)
    without = [p for p in patients if not p.traits.has_wearable]
    assert len(without) / len(patients) == pytest.approx(0.3, abs=0.08)
    for patient in without:
        assert np.isnan(patient.past).all()
        assert np.isfinite(patient.targets["phq9_total"]).any()
    worn = np.stack([p.past for p in patients if p.traits.has_wearable])
    missing_day = np.isnan(worn).all(axis=2)
    assert missing_day.mean() == pytest.approx(0.1, abs=0.02)
    assert np.array_equal(np.isnan(worn).any(axis=2), missing_day)  # a day is worn or not


def test_antidepressant_lowers_severity_after_its_start() -> None:
    # Observed PHQ-9 two weeks before the start vs. weeks 5-8 after it, against patients
    # without treatment over the same (random) days. Relapses and the floor at 0 add noise and
    # shrink the drop, so a large cohort is compared with a conservative threshold.
    config = CohortConfig(patients=600, days=150)
    drops: list[float] = []
    controls: list[float] = []
    for patient in generate_cohort(config, seed=5):
        start = patient.traits.medication_start
        if not 28 <= start <= config.days - 56:
            continue
        score = patient.targets["phq9_total"]
        before, after = score[start - 14 : start], score[start + 28 : start + 56]
        if np.isnan(before).all() or np.isnan(after).all():
            continue  # a dropout run covered a window
        drop = float(np.nanmean(before) - np.nanmean(after))
        (drops if patient.traits.has_medication else controls).append(drop)
    assert len(drops) >= 50 and len(controls) >= 30
    assert abs(np.mean(controls)) < 1.5
    assert np.mean(drops) - np.mean(controls) > 0.4 * config.medication_effect


@pytest.fixture(scope="module")
def continuations() -> tuple[list[SyntheticPatient], list[int], int]:
    """A longer cohort: origins well inside it, actual continuations 30 days after each."""
    return generate_cohort(CohortConfig(patients=60, days=150), seed=11), [40, 60, 80, 100, 119], 30


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_oracle_is_calibrated_against_the_actual_continuations(
    continuations: tuple[list[SyntheticPatient], list[int], int], target: str
) -> None:
    patients, origins, horizon = continuations
    levels = (0.1, 0.5, 0.9)
    quantiles = np.concatenate(
        [oracle_quantiles(p, target, origins, horizon, levels, 500, seed=1) for p in patients]
    )
    actual = np.concatenate(
        [np.stack([p.targets[target][o + 1 : o + 1 + horizon] for o in origins]) for p in patients]
    )
    assert quantiles.shape == (*actual.shape, 3)
    assert (np.diff(quantiles, axis=2) >= 0).all()
    scored = np.isfinite(actual)
    # Scores are integers, so a correct quantile q of level a has P(y < q) <= a <= P(y <= q).
    for k, level in enumerate(levels):
        below = (actual < quantiles[..., k])[scored].mean()
        at_or_below = (actual <= quantiles[..., k])[scored].mean()
        assert below <= level + 0.03 and at_or_below >= level - 0.03, (level, below, at_or_below)
    # Hence the 80 % interval covers 80 % of the outcomes: counting its endpoints at least,
    # without them at most.
    inclusive = coverage(actual, quantiles[..., 0], quantiles[..., 2])
    strict = ((actual > quantiles[..., 0]) & (actual < quantiles[..., 2]))[scored].mean()
    assert strict - 0.03 <= 0.8 <= inclusive + 0.03


def _seasonal_naive(
    patient: SyntheticPatient, target: str, origin: int, horizon: int, levels: tuple[float, ...]
) -> FloatArray:
    """Last observed same-weekday value plus the history's seasonal-difference quantiles."""
    history = patient.targets[target][: origin + 1]
    differences = history[7:] - history[:-7]
    spread = np.nanquantile(differences, levels) if np.isfinite(differences).any() else np.zeros(len(levels))
    forecast = np.empty((horizon, len(levels)))
    for h in range(1, horizon + 1):
        day = origin + h - 7 * ((h + 6) // 7)
        while day >= 0 and np.isnan(history[day]):
            day -= 7
        point = history[day] if day >= 0 else np.nanmean(history)
        forecast[h - 1] = point + spread
    return forecast


def test_oracle_beats_seasonal_naive(continuations: tuple[list[SyntheticPatient], list[int], int]) -> None:
    patients, origins, horizon = continuations
    levels = (0.1, 0.25, 0.5, 0.75, 0.9)
    for target in TARGETS:
        oracle = np.concatenate(
            [oracle_quantiles(p, target, origins, horizon, levels, 300, seed=2) for p in patients]
        )
        naive = np.stack([_seasonal_naive(p, target, o, horizon, levels) for p in patients for o in origins])
        actual = np.stack([p.targets[target][o + 1 : o + 1 + horizon] for p in patients for o in origins])
        assert mean_pinball(actual, oracle, levels) < 0.8 * mean_pinball(actual, naive, levels), target


def test_oracle_is_deterministic_and_reads_panels() -> None:
    patient = generate_cohort(SMALL, seed=4)[0]
    levels = (0.05, 0.5, 0.95)
    first = oracle_quantiles(patient, "gad7_total", [10, 50], 14, levels, 200, seed=7)
    again = oracle_quantiles(patient.panel("gad7_total"), "gad7_total", [10, 50], 14, levels, 200, seed=7)
    other = oracle_quantiles(patient, "gad7_total", [10, 50], 14, levels, 200, seed=8)
    assert first.shape == (2, 14, 3)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    with pytest.raises(ValidationError):
        oracle_quantiles(patient, "gad7_total", [SMALL.days], 14, levels, 200)
    with pytest.raises(ValidationError):
        oracle_quantiles(patient, "gad7_total", [10], 14, (0.5, 0.1), 200)


def test_oracle_knows_the_hidden_state() -> None:
    # One day ahead the oracle's median follows the latent severity far better than the last
    # observation does: it sees through the measurement noise.
    patients = generate_cohort(CohortConfig(patients=60, days=80), seed=12)
    origins = list(range(20, 79, 3))
    errors_oracle, errors_last = [], []
    for patient in patients:
        median = oracle_quantiles(patient, "phq9_total", origins, 1, (0.5,), 400, seed=3)[:, 0, 0]
        score = patient.targets["phq9_total"]
        actual = score[np.asarray(origins) + 1]
        seen = [score[: o + 1][np.isfinite(score[: o + 1])] for o in origins]
        last = np.array([values[-1] if values.size else np.nan for values in seen])
        scored = np.isfinite(actual) & np.isfinite(last)
        errors_oracle.append(np.abs(actual - median)[scored])
        errors_last.append(np.abs(actual - last)[scored])
    assert np.concatenate(errors_oracle).mean() < 0.85 * np.concatenate(errors_last).mean()
