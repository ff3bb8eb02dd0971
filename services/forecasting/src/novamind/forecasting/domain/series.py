"""The data model every forecaster consumes: one patient's daily series on a dense day grid.

A :class:`Panel` holds one patient's target score and covariates aligned to consecutive
calendar days starting at ``start`` (index 0). Missing days are ``NaN``; they are normal and
every model handles them. Covariates come in two kinds (Lim et al., 2021, Temporal Fusion
Transformers): *past-only* ones (sleep, activity, a summary of the PAT embedding) are observed
up to the forecast origin only, *known-future* ones (scheduled medication) are known for the
forecast days too, so their array is longer than the target's when a panel is forecast.
Calendar features (day of week) are derived from the dates, never stored.

An *origin* is the index of the last history day: a forecast from origin ``o`` covers days
``o + 1 .. o + horizon`` and may read ``target[: o + 1]``, ``past[: o + 1]`` and
``future[: o + 1 + horizon]`` only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TargetSpec:
    """What is forecast: a daily score (or any daily quantity) and its natural bounds."""

    #: Stable machine name, e.g. "phq9_total"; lags are named "<name>_lag_<k>".
    name: str
    #: UCUM unit, e.g. "{score}".
    unit: str
    #: Smallest possible value (None: unbounded); forecasts are clipped to it.
    lower: float | None = None
    #: Largest possible value (None: unbounded); forecasts are clipped to it.
    upper: float | None = None
    #: Observed values are whole numbers (questionnaire totals).
    integer: bool = False
    #: Seasonal period in days (seasonal-naive baseline, MASE scale).
    season: int = 7

    def clip(self, values: FloatArray) -> FloatArray:
        """``values`` clipped to the bounds (a copy)."""
        low = -np.inf if self.lower is None else self.lower
        high = np.inf if self.upper is None else self.upper
        return np.clip(values, low, high)


@dataclass(frozen=True)
class CovariateSchema:
    """The covariates a model was trained with, in column order."""

    #: Past-only covariate names (columns of ``Panel.past``).
    past: tuple[str, ...] = ()
    #: Known-future covariate names (columns of ``Panel.future``), besides the calendar.
    future: tuple[str, ...] = ()


@dataclass(frozen=True)
class Panel:
    """One patient's aligned daily series (see the module docstring)."""

    #: Opaque series key (a pseudonym or a synthetic id; never PHI, never logged).
    key: str
    #: Calendar date of index 0.
    start: dt.date
    #: Target values, shape [T]; NaN where the day has no observation.
    target: FloatArray
    #: Past-only covariates, shape [T, len(schema.past)]; NaN = missing.
    past: FloatArray
    #: Known-future covariates, shape [T_f, len(schema.future)] with T_f >= T; NaN = unknown.
    future: FloatArray
    #: Free-form extra data (the synthetic generator keeps its latent state here).
    extra: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    @property
    def length(self) -> int:
        """Days of target history (T)."""
        return int(self.target.shape[0])

    def date_of(self, index: int) -> dt.date:
        """Calendar date of day ``index``."""
        return self.start + dt.timedelta(days=index)

    def day_of_week(self, length: int) -> npt.NDArray[np.int64]:
        """Monday=0 .. Sunday=6 for days ``0 .. length - 1``."""
        first = self.start.weekday()
        return ((np.arange(length, dtype=np.int64) + first) % 7).astype(np.int64)

    def truncated(self, origin: int, horizon: int = 0) -> Panel:
        """The panel as seen at ``origin``: history up to it, known-future up to ``origin + horizon``."""
        end_future = min(self.future.shape[0], origin + 1 + horizon)
        return Panel(
            key=self.key,
            start=self.start,
            target=self.target[: origin + 1].copy(),
            past=self.past[: origin + 1].copy(),
            future=self.future[:end_future].copy(),
            extra=self.extra,
        )
