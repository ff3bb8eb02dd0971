"""Conformalised quantile regression: intervals whose stated coverage holds on new patients.

Quantile models trained with pinball loss are often over- or under-confident, more so for a
stacked ensemble. Conformalised quantile regression (CQR; Romano, Patterson & Candès, NeurIPS
2019) fixes the coverage of each central interval [q_lo, q_hi] (lo + hi = 1) with a calibration
set the models never saw: with the conformity scores

    E_i = max(q_lo(x_i) - y_i,  y_i - q_hi(x_i))

and ``Q`` the ceil((n + 1)(1 - alpha)) / n empirical quantile of the n scores (1 - alpha =
hi - lo), the interval [q_lo - Q, q_hi + Q] covers a new exchangeable point with probability at
least 1 - alpha. ``Q`` may be negative (the raw interval was too wide) and then narrows it.

Calibration here is per horizon day (uncertainty grows with the horizon) and per interval; a
day with fewer than :data:`MIN_CALIBRATION_POINTS` scores uses the scores pooled over its
horizon bucket, then over all days. Exchangeability holds between patients (calibration
patients are disjoint from training patients); the several origins taken from one calibration
patient are correlated, which leaves the guarantee approximate, so the benchmark measures the
coverage on held-out patients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from novamind.forecasting.domain.series import FloatArray

#: Fewest scores a horizon day needs for its own correction.
MIN_CALIBRATION_POINTS = 50
METHOD = "conformalized quantile regression (Romano et al. 2019), per horizon day"


@dataclass(frozen=True)
class ConformalCalibration:
    """Additive corrections of each central interval, per horizon day."""

    #: (lower level, upper level) pairs, outermost first.
    pairs: tuple[tuple[float, float], ...]
    #: Shape [len(pairs), max_horizon]: subtract from the lower, add to the upper quantile.
    corrections: FloatArray
    #: Scores used per pair and day, shape [len(pairs), max_horizon].
    samples: FloatArray

    @property
    def max_horizon(self) -> int:
        return int(self.corrections.shape[1])

    def apply(self, forecasts: FloatArray, levels: Sequence[float]) -> FloatArray:
        """Widen (or narrow) each calibrated pair of ``forecasts`` [N, H, Q]; returns a sorted copy."""
        out = forecasts.copy()
        horizon = forecasts.shape[1]
        index = {round(q, 9): i for i, q in enumerate(levels)}
        for p, (low, high) in enumerate(self.pairs):
            lo_i, hi_i = index.get(round(low, 9)), index.get(round(high, 9))
            if lo_i is None or hi_i is None:
                continue
            shift = self.corrections[p, :horizon][None, :]
            lower = out[:, :, lo_i] - shift
            upper = out[:, :, hi_i] + shift
            # a narrowing correction never lets the bounds cross
            middle = (lower + upper) / 2.0
            out[:, :, lo_i] = np.minimum(lower, middle)
            out[:, :, hi_i] = np.maximum(upper, middle)
        return np.asarray(np.sort(out, axis=-1), dtype=np.float64)

    def total_samples(self, pair: int = 0) -> int:
        """Calibration scores behind one pair, summed over horizon days."""
        return int(self.samples[pair].sum())

    def to_json(self) -> dict[str, object]:
        return {
            "method": METHOD,
            "pairs": [list(p) for p in self.pairs],
            "corrections": np.round(self.corrections, 12).tolist(),
            "samples": self.samples.astype(int).tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ConformalCalibration:
        pairs = data["pairs"]
        assert isinstance(pairs, list)
        return cls(
            pairs=tuple((float(p[0]), float(p[1])) for p in pairs),
            corrections=np.asarray(data["corrections"], dtype=np.float64),
            samples=np.asarray(data["samples"], dtype=np.float64),
        )


def central_pairs(levels: Sequence[float]) -> tuple[tuple[float, float], ...]:
    """Symmetric (lo, hi) pairs among ``levels`` with lo < 0.5, outermost first."""
    rounded = {round(q, 9) for q in levels}
    pairs = [(q, round(1.0 - q, 9)) for q in sorted(rounded) if q < 0.5 and round(1.0 - q, 9) in rounded]
    return tuple(pairs)


def conformal_quantile(scores: FloatArray, miscoverage: float) -> float:
    """The finite-sample conformal quantile of ``scores`` at level 1 - ``miscoverage``."""
    n = scores.size
    if n == 0:
        return 0.0
    rank = math.ceil((n + 1) * (1.0 - miscoverage))
    if rank > n:
        return float(np.max(scores))
    return float(np.sort(scores)[rank - 1])


def fit_conformal(
    actual: FloatArray,
    forecasts: FloatArray,
    levels: Sequence[float],
    buckets: Sequence[tuple[int, int]],
) -> ConformalCalibration:
    """Corrections from calibration ``actual`` [N, H] (NaN = unscored) and ``forecasts`` [N, H, Q]."""
    pairs = central_pairs(levels)
    horizon = actual.shape[1]
    index = {round(q, 9): i for i, q in enumerate(levels)}
    corrections = np.zeros((len(pairs), horizon), dtype=np.float64)
    samples = np.zeros((len(pairs), horizon), dtype=np.float64)
    for p, (low, high) in enumerate(pairs):
        scores = np.maximum(
            forecasts[:, :, index[round(low, 9)]] - actual, actual - forecasts[:, :, index[round(high, 9)]]
        )
        miscoverage = 1.0 - (high - low)
        everything = scores[np.isfinite(scores)]
        for day in range(horizon):
            own = scores[:, day][np.isfinite(scores[:, day])]
            pool = own
            if own.size < MIN_CALIBRATION_POINTS:
                first, last = next(((a, z) for a, z in buckets if a <= day + 1 <= z), (1, horizon))
                block = scores[:, first - 1 : min(last, horizon)]
                pool = block[np.isfinite(block)]
            if pool.size < MIN_CALIBRATION_POINTS:
                pool = everything
            corrections[p, day] = conformal_quantile(pool, miscoverage)
            samples[p, day] = own.size
    return ConformalCalibration(pairs=pairs, corrections=corrections, samples=samples)
