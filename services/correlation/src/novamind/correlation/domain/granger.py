"""Granger-causality tests between daily biometrics and symptoms, on a gappy day grid.

For each (biometric ``x``, symptom ``y``) pair: do ``x``'s past days improve the prediction of
``y`` beyond ``y``'s own past (Granger 1969)?

1. Stationarity: each series gets an augmented Dickey-Fuller test (statsmodels ``adfuller``,
   constant, lag length by AIC) on its observed days; when the unit root is not rejected at 0.05
   the series is replaced by its first difference (a day's difference is missing when either day
   is), and a note says so, e.g. ``"sleep: first difference (ADF p=0.21)"``.
2. Lag order ``p``: the bivariate VAR(p) for ``p = 1..max_lag`` fitted by OLS on one common sample
   (days with every lag up to ``max_lag`` present) and ``p`` chosen by AIC
   (``log det Sigma + 2 k^2 p / T``, Luetkepohl 2005), the same criterion as statsmodels'
   ``VAR.select_order``, which cannot take missing days.
3. F test of the restriction "all ``p`` lags of ``x`` are zero" in the ``y`` equation
   (``y_t ~ 1 + y_{t-1..p} + x_{t-1..p}``), on every day whose regressors are present:
   ``F = ((RSS_r - RSS_u) / p) / (RSS_u / (T - 2p - 1))`` with ``(p, T - 2p - 1)`` degrees of
   freedom; identical to statsmodels ``grangercausalitytests``' ``ssr_ftest`` without gaps.
4. Benjamini-Hochberg q-values across the Granger tests of the request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.tsa.stattools import adfuller  # type: ignore[import-untyped]

from novamind.core.errors import ValidationError
from novamind.correlation.domain.engine import MAX_LAG_DAYS, BoolArray, FloatArray, benjamini_hochberg

#: ADF p-value above which a series is differenced.
ADF_ALPHA = 0.05
#: Fewest observed days for the ADF test; shorter series are used as they are.
MIN_ADF_DAYS = 20
#: Fewest residual degrees of freedom the F test needs.
MIN_RESIDUAL_DOF = 10


@dataclass(frozen=True)
class GrangerResult:
    """One Granger test: does the biometric's past help predict the symptom?"""

    biometric: str
    symptom: str
    lag_order: int
    f_statistic: float
    df_numerator: int
    df_denominator: int
    p_value: float
    q_value: float
    significant: bool
    n_observations: int
    #: Transformations applied for stationarity.
    notes: tuple[str, ...]


@dataclass(frozen=True)
class GrangerAnalysis:
    """Every Granger test of one request, ordered by q-value, and non-fatal caveats."""

    results: tuple[GrangerResult, ...]
    warnings: tuple[str, ...]


def make_stationary(name: str, values: FloatArray) -> tuple[FloatArray, tuple[str, ...]]:
    """The series, first-differenced when ADF does not reject a unit root, and a note."""
    observed = values[np.isfinite(values)]
    if observed.shape[0] < MIN_ADF_DAYS or np.ptp(observed) == 0.0:
        return values, ()
    p_value = float(adfuller(observed, regression="c", autolag="AIC", result_object=True).pvalue)
    if p_value <= ADF_ALPHA:
        return values, ()
    differenced = np.full_like(values, np.nan)
    differenced[1:] = values[1:] - values[:-1]
    return differenced, (f"{name}: first difference (ADF p={p_value:.2f})",)


def _lag_matrix(series: FloatArray, lags: int) -> FloatArray:
    """Columns ``series[t - 1], ..., series[t - lags]`` for every day ``t`` (NaN before the start)."""
    n = series.shape[0]
    out = np.full((n, lags), np.nan)
    for j in range(1, lags + 1):
        out[j:, j - 1] = series[: n - j]
    return out


def _rss(target: FloatArray, regressors: FloatArray) -> float:
    design = np.column_stack([np.ones(target.shape[0]), regressors])
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    resid = target - design @ coef
    return float(resid @ resid)


def select_lag_order(x: FloatArray, y: FloatArray, max_lag: int) -> int:
    """VAR lag order in ``1..max_lag`` minimising AIC on the common sample; 1 if none fits."""
    both = np.column_stack([y, x])
    full = np.column_stack([_lag_matrix(y, max_lag), _lag_matrix(x, max_lag)])
    rows: BoolArray = np.asarray(np.isfinite(both).all(axis=1) & np.isfinite(full).all(axis=1))
    t_obs = int(rows.sum())
    best, best_aic = 1, math.inf
    for p in range(1, max_lag + 1):
        if t_obs - (2 * p + 1) < MIN_RESIDUAL_DOF:
            break
        regressors = np.column_stack([full[rows, :p], full[rows, max_lag : max_lag + p]])
        design = np.column_stack([np.ones(t_obs), regressors])
        coef, *_ = np.linalg.lstsq(design, both[rows], rcond=None)
        resid = both[rows] - design @ coef
        sign, logdet = np.linalg.slogdet(resid.T @ resid / t_obs)
        if sign <= 0:
            continue
        aic = float(logdet) + 2.0 * 4 * p / t_obs
        if aic < best_aic:
            best, best_aic = p, aic
    return best


def granger_f_test(x: FloatArray, y: FloatArray, lags: int) -> tuple[float, int, int, float, int] | None:
    """F test that ``x``'s ``lags`` past days add nothing to ``y``'s own: (F, df1, df2, p, T).

    ``None`` when fewer than :data:`MIN_RESIDUAL_DOF` residual degrees of freedom remain.
    """
    own = _lag_matrix(y, lags)
    other = _lag_matrix(x, lags)
    rows = np.isfinite(y) & np.isfinite(own).all(axis=1) & np.isfinite(other).all(axis=1)
    t_obs = int(rows.sum())
    df2 = t_obs - 2 * lags - 1
    if df2 < MIN_RESIDUAL_DOF:
        return None
    rss_r = _rss(y[rows], own[rows])
    rss_u = _rss(y[rows], np.column_stack([own[rows], other[rows]]))
    if rss_u <= 0.0:
        return None
    f = max((rss_r - rss_u) / lags / (rss_u / df2), 0.0)
    return f, lags, df2, float(stats.f.sf(f, lags, df2)), t_obs


def granger_tests(
    biometrics: Mapping[str, FloatArray],
    symptoms: Mapping[str, FloatArray],
    max_lag: int = MAX_LAG_DAYS,
    fdr_alpha: float = 0.05,
) -> GrangerAnalysis:
    """Granger tests of every biometric -> symptom pair, BH-adjusted across the pairs.

    ``max_lag`` 0 tests lag order 1 (a Granger test needs a past). Pairs with too few complete
    days are skipped with a warning.
    """
    if not 0 <= max_lag <= MAX_LAG_DAYS:
        raise ValidationError(f"max_lag_days must be 0-{MAX_LAG_DAYS}", field="max_lag_days")
    if not 0.0 < fdr_alpha < 1.0:
        raise ValidationError("fdr_alpha must be in (0, 1)", field="fdr_alpha")
    stationary_b = {k: make_stationary(k, np.asarray(v, dtype=np.float64)) for k, v in biometrics.items()}
    stationary_s = {k: make_stationary(k, np.asarray(v, dtype=np.float64)) for k, v in symptoms.items()}
    raw: list[tuple[str, str, tuple[float, int, int, float, int], tuple[str, ...]]] = []
    warnings: list[str] = []
    for b_name, (x, x_notes) in stationary_b.items():
        for s_name, (y, y_notes) in stationary_s.items():
            if x.shape != y.shape:
                raise ValidationError("all series must be on one common day grid", field="biometrics")
            order = select_lag_order(x, y, max(max_lag, 1))
            test = granger_f_test(x, y, order)
            if test is None:
                warnings.append(f"{b_name} -> {s_name}: Granger test skipped, too few complete days")
                continue
            raw.append((b_name, s_name, test, x_notes + y_notes))
    q_values = benjamini_hochberg([t[2][3] for t in raw])
    results = [
        GrangerResult(
            biometric=b_name,
            symptom=s_name,
            lag_order=df1,
            f_statistic=f,
            df_numerator=df1,
            df_denominator=df2,
            p_value=p,
            q_value=float(q),
            significant=bool(q <= fdr_alpha),
            n_observations=t_obs,
            notes=notes,
        )
        for (b_name, s_name, (f, df1, df2, p, t_obs), notes), q in zip(raw, q_values, strict=True)
    ]
    results.sort(key=lambda r: (r.q_value, r.biometric, r.symptom))
    return GrangerAnalysis(results=tuple(results), warnings=tuple(warnings))
