"""The contract every ensemble member keeps.

A member is trained once on many patients (a global model) and then forecasts any panel from
any origin. ``predict`` returns raw (uncalibrated) quantiles; the ensemble stacks members and
calibrates the intervals (:mod:`novamind.forecasting.models.ensemble`).

Shapes: ``predict(panels, origins, horizon)`` -> float64 [N, horizon, Q], where Q is the
member's ``quantiles`` in ascending order and each row is non-decreasing along Q.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from novamind.forecasting.domain.series import CovariateSchema, FloatArray, Panel, TargetSpec

#: Quantile levels every member is trained for unless configured otherwise.
DEFAULT_TRAINED_QUANTILES: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)


class ImportanceMethod(StrEnum):
    """How an importance was measured (the proto's ImportanceMethod)."""

    SHAP = "shap"
    ATTENTION = "attention"
    PERMUTATION = "permutation"


@dataclass(frozen=True)
class Importance:
    """How much one named input drove one forecast (non-negative)."""

    #: Readable feature name: a covariate name, "<target>_lag_<k>", "<target>_rolling_mean_<w>",
    #: "day_of_week", ...
    feature: str
    value: float
    method: ImportanceMethod
    #: The member's name.
    model: str
    #: Horizon day it applies to; 0 = aggregated over the forecast's horizon.
    horizon_day: int = 0


@dataclass(frozen=True)
class FitContext:
    """What every member's ``fit`` receives besides the data."""

    spec: TargetSpec
    schema: CovariateSchema
    #: Trained quantile levels, ascending.
    quantiles: tuple[float, ...]
    #: Longest horizon the member must forecast (days).
    max_horizon: int
    #: Fewest observed target days a history needs.
    min_observed_days: int
    #: Master seed; the same seed and data give byte-identical saved files.
    seed: int
    #: "cpu" or "cuda" (the Transformer honours it; XGBoost uses CUDA only when its build has it).
    device: str = "cpu"


class Member(Protocol):
    """A trained ensemble member."""

    #: Member name, e.g. "quantile-transformer", "xgboost-quantile".
    name: str
    #: Trained quantile levels, ascending.
    quantiles: tuple[float, ...]
    #: Longest horizon it forecasts.
    max_horizon: int

    def predict(self, panels: Sequence[Panel], origins: Sequence[int], horizon: int) -> FloatArray:
        """Raw quantiles [N, horizon, Q] for each (panel, origin) pair."""
        ...

    def explain(self, panel: Panel, origin: int, horizon: int) -> list[Importance]:
        """Named feature importances of one forecast, descending by value."""
        ...

    def save(self, directory: Path) -> list[Path]:
        """Write the member's files into ``directory`` (byte-identical for identical training)."""
        ...
