"""The seasonal-naive baseline every model is compared with (and the MASE scale's forecaster).

The point forecast for day ``o + h`` is the last observed value on the same day of the season
(``o + h - m k`` for the smallest ``k >= 1`` reaching into the history, skipping missing days).
Its quantiles follow fable's SNAIVE (Hyndman & Athanasopoulos, *Forecasting: Principles and
Practice*, 3rd ed., §5.5): the history's seasonal differences ``y_t - y_{t-m}`` give the one-season
error distribution, and a forecast ``k = ceil(h / m)`` seasons ahead has that spread times
``sqrt(k)``. The empirical quantiles of the differences are used instead of a normal
assumption, since scores are bounded and skewed; with fewer than ``MIN_DIFFERENCES`` of them
the spread falls back to that of the history itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from novamind.forecasting.domain.series import FloatArray, Panel, TargetSpec

MIN_DIFFERENCES = 5


def seasonal_naive(
    panels: Sequence[Panel], origins: Sequence[int], horizon: int, levels: Sequence[float], spec: TargetSpec
) -> FloatArray:
    """Seasonal-naive quantiles [N, horizon, Q], clipped to the target's bounds."""
    season = max(1, spec.season)
    q = np.asarray(levels, dtype=np.float64)
    out = np.full((len(panels), horizon, q.size), np.nan, dtype=np.float64)
    for n, (panel, origin) in enumerate(zip(panels, origins, strict=True)):
        history = panel.target[: origin + 1]
        observed = history[np.isfinite(history)]
        if observed.size == 0:
            continue
        diffs = history[season:] - history[:-season] if history.size > season else np.empty(0)
        diffs = diffs[np.isfinite(diffs)]
        if diffs.size >= MIN_DIFFERENCES:
            spread = np.quantile(diffs, q)
        else:
            spread = np.quantile(observed - observed.mean(), q)
        for h in range(1, horizon + 1):
            point = _seasonal_point(history, origin + h, season)
            if point is None:
                point = float(observed[-1])
            out[n, h - 1] = point + spread * math.sqrt(math.ceil(h / season))
    return np.sort(spec.clip(out), axis=-1)


def _seasonal_point(history: FloatArray, day: int, season: int) -> float | None:
    """The last observed value on ``day``'s position in the season, within the history."""
    index = day - season
    while index >= history.shape[0]:
        index -= season
    while index >= 0:
        value = history[index]
        if np.isfinite(value):
            return float(value)
        index -= season
    return None
