"""Lagged biometric-symptom correlations with autocorrelation-aware significance and FDR control.

Input: daily series already aligned on one common day grid (index ``t`` = day ``t``; ``NaN`` =
no value that day). For every biometric ``x``, symptom ``y``, lag ``k`` in ``0..max_lag`` and
method (Pearson, Spearman) the engine pairs ``x[t]`` with ``y[t + k]`` on the days where both are
present and reports the coefficient, a confidence interval, a p-value, a Benjamini-Hochberg
q-value and the effective sample size.

Why not plain p-values: daily mood, sleep and activity are strongly autocorrelated, and the
correlation of two *independent* autocorrelated series has a much larger variance than
``1 / n``, so the textbook t test rejects far too often; testing 8 lags x 2 methods x every pair
multiplies those false discoveries. The engine therefore

* replaces ``n`` by the effective sample size of Bartlett (1935) in the form of Pyper & Peterman
  (1998)::

      1 / n_eff = 1 / n + (2 / n) * sum_{j=1..J} ((n - j) / n) * r_xx(j) * r_yy(j),   J = n / 5

  where ``r_xx``, ``r_yy`` are the autocorrelations of the *paired* series (``x[t]`` and
  ``y[t + k]`` on the paired days) with the ``n / (n - j)`` small-sample correction of
  Pyper & Peterman. Gaps are handled directly: the lag-``j`` autocorrelation uses the pairs of
  paired days ``j`` calendar days apart, and ``(n - j) / n`` becomes ``n_j / n`` with ``n_j`` the
  number of such pairs (identical when nothing is missing). ``n_eff`` is clipped to ``[3, n]``;
* takes the two-sided p-value from Student's t with ``n_eff - 2`` degrees of freedom, for
  Spearman on the ranks with the same adjustment (autocorrelations of the ranks);
* gives Fisher-z confidence intervals with standard error ``1 / sqrt(n_eff - 3)`` (Spearman:
  ``sqrt(1.06 / (n_eff - 3))``, Fieller, Hartley & Pearson 1957);
* adjusts all p-values of one request together with the Benjamini-Hochberg (1995) step-up
  procedure; a test is *significant* when ``q <= fdr_alpha`` and ``|r| >= min_abs_coefficient``.

:func:`naive_lagged_correlations` is the approach this replaces (plain Pearson p-values with
``n - 2`` degrees of freedom, no multiplicity correction), kept for the validity benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy import stats

from novamind.core.errors import ValidationError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Largest lag the contract allows, in days.
MAX_LAG_DAYS = 7
#: Smallest effective sample size reported (the t test needs n_eff > 2, the CI n_eff > 3).
MIN_EFFECTIVE_N = 3.0
#: Fewest pairs of days at distance j for the lag-j autocorrelation to be used.
MIN_AUTOCORRELATION_PAIRS = 3
#: Variance factor of Fisher's z for Spearman's rho (Fieller, Hartley & Pearson 1957).
SPEARMAN_Z_VARIANCE = 1.06


class Method(StrEnum):
    """Correlation coefficients."""

    PEARSON = "pearson"
    SPEARMAN = "spearman"


@dataclass(frozen=True)
class AnalysisOptions:
    """Parameters of one analysis, with the contract's defaults."""

    max_lag: int = MAX_LAG_DAYS
    methods: tuple[Method, ...] = (Method.PEARSON, Method.SPEARMAN)
    fdr_alpha: float = 0.05
    min_abs_coefficient: float = 0.3
    min_overlap_days: int = 14
    confidence_level: float = 0.95


@dataclass(frozen=True)
class LaggedCorrelation:
    """One lagged correlation test: ``biometric[t]`` against ``symptom[t + lag_days]``."""

    biometric: str
    symptom: str
    lag_days: int
    method: Method
    coefficient: float
    ci_low: float
    ci_high: float
    #: Two-sided p-value with the effective sample size.
    p_value: float
    #: Benjamini-Hochberg adjusted p-value over every test of the analysis.
    q_value: float
    n_effective: float
    #: Days with both values present.
    n_pairs: int
    significant: bool


@dataclass(frozen=True)
class CorrelationAnalysis:
    """Every test of one analysis, ordered by q-value then |coefficient| descending."""

    correlations: tuple[LaggedCorrelation, ...]
    tests_performed: int
    fdr_alpha: float
    #: How p-values were computed and adjusted, for people.
    notes: tuple[str, ...]
    #: Non-fatal caveats (pairs skipped for too little overlap or no variation).
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class NaiveCorrelation:
    """A plain lagged Pearson test (no autocorrelation adjustment, no multiplicity correction)."""

    biometric: str
    symptom: str
    lag_days: int
    coefficient: float
    p_value: float
    n_pairs: int


def benjamini_hochberg(p_values: Sequence[float] | FloatArray) -> FloatArray:
    """Benjamini-Hochberg (1995) adjusted p-values (q-values), in the input's order.

    ``q_(i) = min_{k >= i} min(1, m p_(k) / k)`` for the p-values sorted ascending.
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.shape[0]
    if m == 0:
        return np.empty(0, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1, dtype=np.float64)
    adjusted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    q = np.empty(m, dtype=np.float64)
    q[order] = adjusted
    return q


def paired_autocorrelations(
    values: FloatArray, mask: BoolArray, max_distance: int
) -> tuple[FloatArray, FloatArray]:
    """Gap-aware autocorrelations ``r(j)`` and pair counts ``n_j`` for ``j = 1..max_distance``.

    ``values[t]`` counts only where ``mask[t]``. ``r(j)`` is the mean product of deviations over
    the pairs of counted days ``j`` apart divided by the variance over all counted days (the
    ``n / (n - j)``-corrected estimator of Pyper & Peterman 1998); ``0`` where fewer than
    :data:`MIN_AUTOCORRELATION_PAIRS` pairs exist. Values are clipped to [-1, 1].
    """
    m = mask.astype(np.float64)
    n = float(m.sum())
    if max_distance < 1 or n < 2:
        return np.zeros(max(max_distance, 0)), np.zeros(max(max_distance, 0))
    mean = float(values[mask].mean())
    dev = np.where(mask, values - mean, 0.0)
    variance = float((dev * dev).sum()) / n
    length = dev.shape[0]
    # np.correlate(a, a, "full")[length - 1 + j] = sum_t a[t] a[t + j].
    products = np.correlate(dev, dev, mode="full")[length : length + max_distance]
    counts = np.correlate(m, m, mode="full")[length : length + max_distance]
    if products.shape[0] < max_distance:  # distances beyond the grid have no pairs
        pad = max_distance - products.shape[0]
        products = np.concatenate([products, np.zeros(pad)])
        counts = np.concatenate([counts, np.zeros(pad)])
    counts = np.rint(counts)
    usable = counts >= MIN_AUTOCORRELATION_PAIRS
    if variance <= 0.0:
        return np.zeros(max_distance), counts
    r = np.where(usable, products / np.maximum(counts, 1.0) / variance, 0.0)
    return np.clip(r, -1.0, 1.0), counts


def effective_sample_size(a: FloatArray, b: FloatArray, mask: BoolArray) -> float:
    """Effective sample size of the correlation of ``a`` and ``b`` over the days in ``mask``.

    Bartlett (1935) / Pyper & Peterman (1998) with ``J = n // 5`` and gap-aware
    autocorrelations (:func:`paired_autocorrelations`), clipped to ``[3, n]``.
    """
    n = int(mask.sum())
    if n <= MIN_EFFECTIVE_N:
        return float(n)
    distances = max(1, n // 5)
    r_a, counts = paired_autocorrelations(a, mask, distances)
    r_b, _ = paired_autocorrelations(b, mask, distances)
    weights = counts / n
    inverse = 1.0 / n + (2.0 / n) * float(np.sum(weights * r_a * r_b))
    if inverse <= 0.0:
        return float(n)
    return float(min(max(1.0 / inverse, MIN_EFFECTIVE_N), n))


def _t_test_p_value(r: float, dof: float) -> float:
    """Two-sided p-value of a correlation ``r`` from Student's t with ``dof`` degrees of freedom."""
    if abs(r) >= 1.0:
        return 0.0
    t = abs(r) * math.sqrt(dof / (1.0 - r * r))
    return float(2.0 * stats.t.sf(t, dof))


def _fisher_interval(
    r: float, n_eff: float, confidence: float, variance_factor: float
) -> tuple[float, float]:
    """Fisher-z interval of ``r`` with standard error ``sqrt(variance_factor / (n_eff - 3))``."""
    if n_eff <= MIN_EFFECTIVE_N or abs(r) >= 1.0:
        return (-1.0, 1.0) if abs(r) < 1.0 else (r, r)
    z = math.atanh(r)
    half = float(stats.norm.ppf(0.5 + confidence / 2.0)) * math.sqrt(variance_factor / (n_eff - 3.0))
    return math.tanh(z - half), math.tanh(z + half)


def _pearson(a: FloatArray, b: FloatArray) -> float:
    da = a - a.mean()
    db = b - b.mean()
    denominator = math.sqrt(float(np.dot(da, da)) * float(np.dot(db, db)))
    return float(np.clip(np.dot(da, db) / denominator, -1.0, 1.0)) if denominator > 0 else float("nan")


def _ranks_on_mask(values: FloatArray, mask: BoolArray) -> FloatArray:
    """Average ranks of the masked values, placed back on the grid (0 elsewhere)."""
    ranked = np.zeros_like(values)
    ranked[mask] = stats.rankdata(values[mask])
    return ranked


def _lagged(x: FloatArray, y: FloatArray, lag: int) -> tuple[FloatArray, FloatArray, BoolArray]:
    """``x[t]`` and ``y[t + lag]`` on the grid of ``t`` (length ``len - lag``) and where both exist."""
    length = x.shape[0] - lag
    a = x[:length]
    b = y[lag : lag + length]
    mask = np.isfinite(a) & np.isfinite(b)
    return np.where(mask, a, 0.0), np.where(mask, b, 0.0), mask


def _validate(
    biometrics: Mapping[str, FloatArray], symptoms: Mapping[str, FloatArray], options: AnalysisOptions
) -> int:
    """Checks the request; returns the common grid length."""
    if not 0 <= options.max_lag <= MAX_LAG_DAYS:
        raise ValidationError(f"max_lag_days must be 0-{MAX_LAG_DAYS}", field="max_lag_days")
    if not 0.0 < options.fdr_alpha < 1.0:
        raise ValidationError("fdr_alpha must be in (0, 1)", field="fdr_alpha")
    if not 0.0 < options.confidence_level < 1.0:
        raise ValidationError("confidence_level must be in (0, 1)", field="confidence_level")
    if not 0.0 <= options.min_abs_coefficient <= 1.0:
        raise ValidationError("min_abs_coefficient must be 0-1", field="min_abs_coefficient")
    if options.min_overlap_days < 4:
        raise ValidationError("min_overlap_days must be at least 4", field="min_overlap_days")
    if not options.methods:
        raise ValidationError("at least one correlation method is needed", field="methods")
    if not biometrics:
        raise ValidationError("at least one biometric series is needed", field="biometrics")
    if not symptoms:
        raise ValidationError("at least one symptom series is needed", field="symptoms")
    lengths = {np.asarray(v).shape for v in (*biometrics.values(), *symptoms.values())}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise ValidationError("all series must be one-dimensional on one common day grid", field="biometrics")
    return int(next(iter(lengths))[0])


@dataclass(frozen=True)
class _RawTest:
    biometric: str
    symptom: str
    lag: int
    method: Method
    coefficient: float
    ci_low: float
    ci_high: float
    p_value: float
    n_effective: float
    n_pairs: int


def analyze(
    biometrics: Mapping[str, FloatArray],
    symptoms: Mapping[str, FloatArray],
    options: AnalysisOptions | None = None,
) -> CorrelationAnalysis:
    """Every (biometric, symptom, lag, method) test, effective-N p-values and BH q-values.

    Raises :class:`ValidationError` for parameters outside the contract's ranges, series of
    different lengths, or when no (biometric, symptom, lag) has ``min_overlap_days`` paired days.
    Tests with too little overlap or a constant side are skipped with a warning.
    """
    options = options or AnalysisOptions()
    length = _validate(biometrics, symptoms, options)
    methods = tuple(dict.fromkeys(options.methods))
    raw: list[_RawTest] = []
    warnings: list[str] = []
    for b_name, b_values in biometrics.items():
        x = np.asarray(b_values, dtype=np.float64)
        for s_name, s_values in symptoms.items():
            y = np.asarray(s_values, dtype=np.float64)
            short_lags: list[int] = []
            constant_lags: list[int] = []
            for lag in range(min(options.max_lag, max(length - 1, 0)) + 1):
                a, b, mask = _lagged(x, y, lag)
                n = int(mask.sum())
                if n < options.min_overlap_days:
                    short_lags.append(lag)
                    continue
                if np.ptp(a[mask]) == 0.0 or np.ptp(b[mask]) == 0.0:
                    constant_lags.append(lag)
                    continue
                for method in methods:
                    spearman = method is Method.SPEARMAN
                    a_m = _ranks_on_mask(a, mask) if spearman else a
                    b_m = _ranks_on_mask(b, mask) if spearman else b
                    factor = SPEARMAN_Z_VARIANCE if spearman else 1.0
                    r = _pearson(a_m[mask], b_m[mask])
                    n_eff = effective_sample_size(a_m, b_m, mask)
                    low, high = _fisher_interval(r, n_eff, options.confidence_level, factor)
                    p_value = _t_test_p_value(r, n_eff - 2.0)
                    raw.append(_RawTest(b_name, s_name, lag, method, r, low, high, p_value, n_eff, n))
            if short_lags:
                warnings.append(
                    f"{b_name} x {s_name}: lags {_lag_list(short_lags)} d skipped, fewer than "
                    f"{options.min_overlap_days} overlapping days"
                )
            if constant_lags:
                warnings.append(
                    f"{b_name} x {s_name}: lags {_lag_list(constant_lags)} d skipped, a series is constant "
                    "over the overlapping days"
                )
    if not raw:
        raise ValidationError(
            f"too little overlap: no biometric-symptom pair has {options.min_overlap_days} overlapping "
            "days with variation at any lag",
            field="min_overlap_days",
        )
    q_values = benjamini_hochberg([t.p_value for t in raw])
    results = [
        LaggedCorrelation(
            biometric=t.biometric,
            symptom=t.symptom,
            lag_days=t.lag,
            method=t.method,
            coefficient=t.coefficient,
            ci_low=t.ci_low,
            ci_high=t.ci_high,
            p_value=t.p_value,
            q_value=float(q),
            n_effective=t.n_effective,
            n_pairs=t.n_pairs,
            significant=bool(q <= options.fdr_alpha and abs(t.coefficient) >= options.min_abs_coefficient),
        )
        for t, q in zip(raw, q_values, strict=True)
    ]
    results.sort(key=lambda c: (c.q_value, -abs(c.coefficient), c.biometric, c.symptom, c.lag_days, c.method))
    notes = (
        "p-values use the effective sample size (Bartlett; Pyper & Peterman 1998) from the paired "
        "days' autocorrelations up to lag n/5, t test with n_eff - 2 df",
        f"BH-FDR over {len(results)} tests at alpha {options.fdr_alpha:g}; lags 0-{options.max_lag} d",
        f"significant: q <= {options.fdr_alpha:g} and |r| >= {options.min_abs_coefficient:g}",
        f"{options.confidence_level:.0%} intervals: Fisher z with n_eff - 3"
        + (" (Spearman variance 1.06, Fieller et al. 1957)" if Method.SPEARMAN in methods else ""),
    )
    return CorrelationAnalysis(
        correlations=tuple(results),
        tests_performed=len(results),
        fdr_alpha=options.fdr_alpha,
        notes=notes,
        warnings=tuple(warnings),
    )


def _lag_list(lags: Iterable[int]) -> str:
    return ", ".join(str(lag) for lag in lags)


def naive_lagged_correlations(
    biometrics: Mapping[str, FloatArray],
    symptoms: Mapping[str, FloatArray],
    max_lag: int = MAX_LAG_DAYS,
    min_overlap_days: int = 14,
) -> list[NaiveCorrelation]:
    """The naive baseline: lagged Pearson r with the textbook p-value (t, ``n - 2`` df).

    No autocorrelation adjustment and no multiplicity correction; pairs with fewer than
    ``min_overlap_days`` days or a constant side are left out. For the validity benchmark only.
    """
    out: list[NaiveCorrelation] = []
    for b_name, b_values in biometrics.items():
        x = np.asarray(b_values, dtype=np.float64)
        for s_name, s_values in symptoms.items():
            y = np.asarray(s_values, dtype=np.float64)
            for lag in range(min(max_lag, max(x.shape[0] - 1, 0)) + 1):
                a, b, mask = _lagged(x, y, lag)
                n = int(mask.sum())
                if n < max(min_overlap_days, 3):
                    continue
                r = _pearson(a[mask], b[mask])
                if math.isnan(r):
                    continue
                out.append(NaiveCorrelation(b_name, s_name, lag, r, _t_test_p_value(r, n - 2.0), n))
    return out
