"""Stacked generalisation of quantile forecasters: weights learned, not fixed.

For each quantile level and horizon bucket the ensemble forecast is a convex combination of
the members' forecasts at that level, ``sum_k w_k f_k`` with ``w >= 0`` and ``sum w = 1``. The
weights minimise the pinball loss of that level on a validation window (patients the members
never saw). Pinball loss is piecewise linear in ``w``, so the problem is a linear program and is
solved exactly (HiGHS through :func:`scipy.optimize.linprog`):

    minimise   sum_i  q u_i + (1 - q) v_i
    subject to sum_k w_k f_ik + u_i - v_i = y_i,   sum_k w_k = 1,   w, u, v >= 0

(the classic LP form of quantile regression, Koenker & Bassett 1978, restricted to the simplex).
A bucket with too few validation points keeps equal weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_matrix, hstack, identity, vstack

from novamind.forecasting.domain.series import FloatArray

#: Fewest scored validation points a (level, bucket) needs before its weights are learned.
MIN_STACKING_POINTS = 30


@dataclass(frozen=True)
class StackingWeights:
    """Member weights per quantile level and horizon bucket."""

    #: Member names in the weights' order.
    members: tuple[str, ...]
    #: Quantile levels in the weights' order.
    levels: tuple[float, ...]
    #: Horizon buckets as inclusive (first_day, last_day) pairs covering 1..max_horizon.
    buckets: tuple[tuple[int, int], ...]
    #: Shape [len(levels), len(buckets), len(members)]; each last-axis row sums to 1.
    weights: FloatArray

    def per_day(self, horizon: int) -> FloatArray:
        """Weights for horizon days 1..horizon: shape [horizon, len(levels), len(members)]."""
        out = np.empty((horizon, len(self.levels), len(self.members)), dtype=np.float64)
        for day in range(1, horizon + 1):
            out[day - 1] = self.weights[:, self.bucket_of(day), :]
        return out

    def bucket_of(self, day: int) -> int:
        """Index of the bucket holding horizon ``day`` (the last bucket beyond the range)."""
        for index, (first, last) in enumerate(self.buckets):
            if first <= day <= last:
                return index
        return len(self.buckets) - 1

    def combine(self, member_forecasts: Sequence[FloatArray]) -> FloatArray:
        """Stack member forecasts [N, H, Q] (in ``members`` order) into one [N, H, Q]."""
        stacked = np.stack(member_forecasts, axis=-1)  # [N, H, Q, K]
        horizon = stacked.shape[1]
        combined = np.einsum("nhqk,hqk->nhq", stacked, self.per_day(horizon))
        return np.asarray(np.sort(combined, axis=-1), dtype=np.float64)

    def to_json(self) -> dict[str, object]:
        return {
            "members": list(self.members),
            "levels": list(self.levels),
            "buckets": [list(b) for b in self.buckets],
            "weights": np.round(self.weights, 12).tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> StackingWeights:
        members = data["members"]
        levels = data["levels"]
        buckets = data["buckets"]
        assert isinstance(members, list) and isinstance(levels, list) and isinstance(buckets, list)
        return cls(
            members=tuple(str(m) for m in members),
            levels=tuple(float(q) for q in levels),
            buckets=tuple((int(b[0]), int(b[1])) for b in buckets),
            weights=np.asarray(data["weights"], dtype=np.float64),
        )


def fit_stacking(
    actual: FloatArray,
    member_forecasts: Sequence[FloatArray],
    members: Sequence[str],
    levels: Sequence[float],
    buckets: Sequence[tuple[int, int]],
) -> StackingWeights:
    """Learn weights from validation ``actual`` [N, H] (NaN = unscored) and member forecasts."""
    k = len(members)
    weights = np.full((len(levels), len(buckets), k), 1.0 / k, dtype=np.float64)
    horizon = actual.shape[1]
    for b, (first, last) in enumerate(buckets):
        days = slice(first - 1, min(last, horizon))
        y_block = actual[:, days]
        for j, level in enumerate(levels):
            f_block = np.stack([f[:, days, j] for f in member_forecasts], axis=-1)  # [N, D, K]
            scored = np.isfinite(y_block)
            if int(scored.sum()) < MIN_STACKING_POINTS:
                continue
            weights[j, b] = _simplex_quantile_regression(y_block[scored], f_block[scored], level)
    return StackingWeights(
        members=tuple(members),
        levels=tuple(float(q) for q in levels),
        buckets=tuple((int(a), int(z)) for a, z in buckets),
        weights=weights,
    )


def _simplex_quantile_regression(y: FloatArray, f: FloatArray, level: float) -> FloatArray:
    """Weights on the simplex minimising the pinball loss of ``f @ w`` against ``y`` (see above)."""
    n, k = f.shape
    if k == 1:
        return np.ones(1, dtype=np.float64)
    cost = np.concatenate([np.zeros(k), np.full(n, level), np.full(n, 1.0 - level)])
    eye = identity(n, format="csr", dtype=np.float64)
    rows = hstack([csr_matrix(f), eye, -eye], format="csr")
    simplex = csr_matrix(np.concatenate([np.ones(k), np.zeros(2 * n)])[None, :])
    a_eq = vstack([rows, simplex], format="csr")
    b_eq = np.concatenate([y, [1.0]])
    result = linprog(cost, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    if not result.success or result.x is None:
        return np.full(k, 1.0 / k, dtype=np.float64)
    w = np.clip(np.asarray(result.x[:k], dtype=np.float64), 0.0, None)
    total = float(w.sum())
    return w / total if total > 0 else np.full(k, 1.0 / k, dtype=np.float64)
