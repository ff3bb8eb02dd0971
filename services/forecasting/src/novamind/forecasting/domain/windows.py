"""Forecast windows: which (panel, origin) pairs are evaluated, and what actually happened."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from novamind.forecasting.domain.series import FloatArray, Panel


@dataclass(frozen=True)
class Windows:
    """Evaluation windows over a set of panels."""

    #: Index into the panel list, one per window.
    panel_index: npt.NDArray[np.int64]
    #: Origin (last history day index) of each window.
    origins: npt.NDArray[np.int64]
    #: Observed target on days origin+1..origin+horizon, shape [N, horizon]; NaN = not scored.
    actual: FloatArray

    def __len__(self) -> int:
        return int(self.origins.shape[0])

    def panels(self, panels: Sequence[Panel]) -> list[Panel]:
        """The panel of each window."""
        return [panels[i] for i in self.panel_index.tolist()]


def observed_counts(target: FloatArray) -> npt.NDArray[np.int64]:
    """Cumulative count of observed days: element ``o`` = observed days in ``target[: o + 1]``."""
    return np.cumsum(np.isfinite(target)).astype(np.int64)


def rolling_windows(
    panels: Sequence[Panel],
    horizon: int,
    *,
    stride: int = 1,
    min_observed_days: int = 7,
    first_origin: int | None = None,
    max_origins: int = 0,
) -> Windows:
    """Windows at every ``stride``-th eligible origin of each panel.

    An origin is eligible when its history holds at least ``min_observed_days`` observed target
    days (and it is at or after ``first_origin`` when given) and at least one target day in its
    horizon is observed. Origins are laid out from the last eligible one backwards in steps of
    ``stride``, so the latest data is always evaluated; ``max_origins`` > 0 keeps the latest ones.
    """
    index: list[int] = []
    origins: list[int] = []
    rows: list[FloatArray] = []
    for p, panel in enumerate(panels):
        counts = observed_counts(panel.target)
        eligible: list[int] = []
        start = 0 if first_origin is None else first_origin
        for origin in range(panel.length - 2, start - 1, -stride):
            if counts[origin] < min_observed_days:
                break
            future = panel.target[origin + 1 : origin + 1 + horizon]
            if np.isfinite(future).any():
                eligible.append(origin)
            if max_origins and len(eligible) >= max_origins:
                break
        for origin in sorted(eligible):
            actual = np.full(horizon, np.nan, dtype=np.float64)
            future = panel.target[origin + 1 : origin + 1 + horizon]
            actual[: future.shape[0]] = future
            index.append(p)
            origins.append(origin)
            rows.append(actual)
    return Windows(
        panel_index=np.asarray(index, dtype=np.int64),
        origins=np.asarray(origins, dtype=np.int64),
        actual=np.stack(rows) if rows else np.empty((0, horizon), dtype=np.float64),
    )
