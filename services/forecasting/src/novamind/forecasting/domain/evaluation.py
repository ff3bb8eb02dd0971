"""Scoring a model's forecasts of a set of windows: WQL, MASE, interval coverage, per horizon."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from novamind.forecasting.domain import metrics
from novamind.forecasting.domain.conformal import central_pairs
from novamind.forecasting.domain.series import FloatArray, Panel


@dataclass(frozen=True)
class IntervalScore:
    lower: float
    upper: float
    coverage: float
    mean_width: float

    @property
    def nominal(self) -> float:
        return round(self.upper - self.lower, 9)


@dataclass(frozen=True)
class HorizonScore:
    horizon_day: int
    wql: float
    mase: float
    coverage: float


@dataclass(frozen=True)
class ModelScore:
    """Accuracy of one model over a set of windows."""

    model: str
    wql: float
    mase: float
    intervals: tuple[IntervalScore, ...]
    by_horizon: tuple[HorizonScore, ...] = field(default=())
    windows: int = 0
    scored_points: int = 0

    def coverage(self, nominal: float) -> float:
        """Coverage of the central interval with that nominal coverage (NaN if not scored)."""
        for interval in self.intervals:
            if abs(interval.nominal - nominal) < 1e-6:
                return interval.coverage
        return float("nan")

    def summary(self) -> dict[str, float]:
        """Headline numbers (for manifests and model info)."""
        out = {"wql": self.wql, "mase": self.mase}
        for interval in self.intervals:
            out[f"coverage_{round(interval.nominal * 100)}"] = interval.coverage
        return {k: round(v, 6) for k, v in out.items() if np.isfinite(v)}


def mase_scales(panels: Sequence[Panel], origins: Sequence[int], season: int) -> FloatArray:
    """Each window's MASE scale: the mean absolute seasonal difference of its history."""
    return np.asarray(
        [metrics.seasonal_scale(p.target[: o + 1], season) for p, o in zip(panels, origins, strict=True)],
        dtype=np.float64,
    )


def score(
    model: str,
    actual: FloatArray,
    forecasts: FloatArray,
    levels: Sequence[float],
    scales: FloatArray,
) -> ModelScore:
    """Score ``forecasts`` [N, H, Q] at ``levels`` against ``actual`` [N, H]."""
    index = {round(q, 9): i for i, q in enumerate(levels)}
    median = forecasts[:, :, _nearest(levels, 0.5)]
    pairs = central_pairs(levels)
    intervals = tuple(
        IntervalScore(
            lower=lo,
            upper=hi,
            coverage=metrics.coverage(
                actual, forecasts[:, :, index[round(lo, 9)]], forecasts[:, :, index[round(hi, 9)]]
            ),
            mean_width=metrics.mean_width(
                actual, forecasts[:, :, index[round(lo, 9)]], forecasts[:, :, index[round(hi, 9)]]
            ),
        )
        for lo, hi in pairs
    )
    by_horizon: list[HorizonScore] = []
    outer = pairs[0] if pairs else None
    for h in range(actual.shape[1]):
        a = actual[:, h : h + 1]
        if not np.isfinite(a).any():
            continue
        f = forecasts[:, h : h + 1]
        cov = float("nan")
        if outer is not None:
            cov = metrics.coverage(a, f[:, :, index[round(outer[0], 9)]], f[:, :, index[round(outer[1], 9)]])
        by_horizon.append(
            HorizonScore(
                horizon_day=h + 1,
                wql=metrics.weighted_quantile_loss(a, f, levels),
                mase=metrics.mase(a, median[:, h : h + 1], scales),
                coverage=cov,
            )
        )
    return ModelScore(
        model=model,
        wql=metrics.weighted_quantile_loss(actual, forecasts, levels),
        mase=metrics.mase(actual, median, scales),
        intervals=intervals,
        by_horizon=tuple(by_horizon),
        windows=int(actual.shape[0]),
        scored_points=int(np.isfinite(actual).sum()),
    )


def _nearest(levels: Sequence[float], level: float) -> int:
    return int(np.argmin(np.abs(np.asarray(levels, dtype=np.float64) - level)))
