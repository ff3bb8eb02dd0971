"""Probabilistic forecast accuracy: pinball loss, weighted quantile loss, MASE and coverage.

Arrays follow one convention: ``actual`` has shape [N, H] (NaN where there is no observation,
those points are not scored) and ``quantiles`` has shape [N, H, Q] for the levels ``levels``.

* Pinball (quantile) loss of level q: ``max(q (y - f), (q - 1)(y - f))``.
* Weighted quantile loss (WQL; Salinas et al. 2020, the GluonTS / AWS definition):
  ``2 * sum pinball / sum |y|`` over scored points, averaged over levels.
* MASE (Hyndman & Koehler 2006): mean absolute error of the median divided by the in-sample
  mean absolute seasonal difference of each series' history (scale given per row).
* Coverage of a central interval: the fraction of scored actuals inside [lower, upper].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from novamind.forecasting.domain.series import FloatArray


def pinball(actual: FloatArray, quantiles: FloatArray, levels: Sequence[float]) -> FloatArray:
    """Pinball loss per point and level, shape [N, H, Q]; NaN where ``actual`` is NaN."""
    q = np.asarray(levels, dtype=np.float64).reshape(1, 1, -1)
    diff = actual[..., None] - quantiles
    return np.maximum(q * diff, (q - 1.0) * diff)


def mean_pinball(actual: FloatArray, quantiles: FloatArray, levels: Sequence[float]) -> float:
    """Mean pinball loss over scored points and levels (NaN when nothing is scored)."""
    loss = pinball(actual, quantiles, levels)
    return float(np.nanmean(loss)) if np.isfinite(loss).any() else float("nan")


def weighted_quantile_loss(actual: FloatArray, quantiles: FloatArray, levels: Sequence[float]) -> float:
    """WQL: 2 x summed pinball loss / summed |actual|, averaged over levels."""
    scored = np.isfinite(actual)
    if not scored.any():
        return float("nan")
    denominator = float(np.abs(actual[scored]).sum())
    loss = pinball(actual, quantiles, levels)
    per_level = 2.0 * np.nansum(loss, axis=(0, 1)) / max(denominator, 1e-12)
    return float(np.mean(per_level))


def seasonal_scale(history: FloatArray, season: int) -> float:
    """Mean absolute seasonal difference of one history (NaN pairs skipped); NaN if none."""
    if history.shape[0] <= season:
        return float("nan")
    diffs = np.abs(history[season:] - history[:-season])
    diffs = diffs[np.isfinite(diffs)]
    return float(diffs.mean()) if diffs.size else float("nan")


def mase(actual: FloatArray, median: FloatArray, scales: FloatArray) -> float:
    """MASE of ``median`` [N, H] against ``actual`` [N, H] with one scale per row [N].

    Rows whose scale is not a positive finite number are skipped. The absolute errors of all
    scored points, each divided by its row's scale, are averaged.
    """
    scale = np.asarray(scales, dtype=np.float64).reshape(-1, 1)
    usable = np.isfinite(scale) & (scale > 0)
    errors = np.abs(actual - median) / np.where(usable, scale, np.nan)
    errors = errors[np.isfinite(errors)]
    return float(errors.mean()) if errors.size else float("nan")


def coverage(actual: FloatArray, lower: FloatArray, upper: FloatArray) -> float:
    """Fraction of scored actuals within [lower, upper] (NaN when nothing is scored)."""
    scored = np.isfinite(actual)
    if not scored.any():
        return float("nan")
    inside = (actual >= lower) & (actual <= upper)
    return float(inside[scored].mean())


def mean_width(actual: FloatArray, lower: FloatArray, upper: FloatArray) -> float:
    """Mean interval width over scored points."""
    scored = np.isfinite(actual)
    return float((upper - lower)[scored].mean()) if scored.any() else float("nan")
