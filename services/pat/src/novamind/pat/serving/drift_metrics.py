"""Input drift exported to Prometheus: PSI of recent weeks' statistics against the training reference.

:class:`DriftMonitor` keeps the :func:`~novamind.pat.domain.drift.week_statistics` of the last
``window_weeks`` weeks the model saw and, once at least ``min_weeks`` are in, sets

    novamind_pat_input_psi{statistic="mean" | "sd" | "fraction_zero" | "log_mean" | "night_mean"}

to the population stability index of the window against the reference distribution stored with
the model artifact (:data:`REFERENCE_FILENAME`, written by
:meth:`~novamind.pat.domain.drift.DriftReference.to_json`). Before ``min_weeks`` the gauges are
absent rather than noisy. The alert fires on PSI > 0.25 (a significant shift; see
:mod:`novamind.pat.domain.drift`). Labels carry statistic names only, never patient data.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from prometheus_client import Gauge

from novamind.core.errors import ModelNotReadyError, ValidationError
from novamind.pat.domain import drift

#: Name of the reference file in a model artifact's directory.
REFERENCE_FILENAME: Final = "drift_reference.json"

INPUT_PSI = Gauge(
    "novamind_pat_input_psi",
    "Population stability index of per-week input statistics, recent window vs. training reference",
    ["statistic"],
)
INPUT_DRIFT_WEEKS = Gauge("novamind_pat_input_drift_window_weeks", "Weeks in the input-drift window")


def load_reference(path: Path) -> drift.DriftReference:
    """The drift reference stored at ``path`` (a model artifact's :data:`REFERENCE_FILENAME`).

    Raises :class:`ModelNotReadyError` naming the file when it is missing, unreadable or malformed.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return drift.DriftReference.from_json(document)
    except FileNotFoundError:
        raise ModelNotReadyError(f"drift reference {path.name} is missing", field=str(path)) from None
    except (OSError, ValueError, ValidationError) as exc:
        reason = exc.message if isinstance(exc, ValidationError) else type(exc).__name__
        raise ModelNotReadyError(
            f"drift reference {path.name} is unreadable: {reason}", field=str(path)
        ) from None


class DriftMonitor:
    """A rolling window of recent weeks' statistics and their PSI gauges (see the module docstring).

    Thread-safe; :meth:`observe` costs one pass over the week and a PSI over the window.
    Raises ``ValueError`` when ``min_weeks`` is not within 1..``window_weeks``.
    """

    def __init__(
        self,
        reference: drift.DriftReference,
        *,
        window_weeks: int = 500,
        min_weeks: int = 50,
        gauge: Gauge = INPUT_PSI,
        window_gauge: Gauge = INPUT_DRIFT_WEEKS,
    ) -> None:
        if not 1 <= min_weeks <= window_weeks:
            raise ValueError("min_weeks must be between 1 and window_weeks")
        self.reference = reference
        self.window_weeks = window_weeks
        self.min_weeks = min_weeks
        self._gauge = gauge
        self._window_gauge = window_gauge
        self._window: deque[dict[str, float]] = deque(maxlen=window_weeks)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._window)

    def observe(self, counts: npt.ArrayLike, local_minute_of_day: npt.ArrayLike | None = None) -> None:
        """Add one week (counts per minute, NaN = missing; see ``week_statistics``) and update gauges.

        Raises :class:`ValidationError` for a week ``week_statistics`` refuses.
        """
        statistics = drift.week_statistics(counts, local_minute_of_day)
        with self._lock:
            self._window.append(statistics)
            self._window_gauge.set(len(self._window))
            if len(self._window) >= self.min_weeks:
                for name, value in self._psi_locked().items():
                    self._gauge.labels(name).set(value)

    def psi(self) -> dict[str, float]:
        """PSI of the current window for each reference statistic (NaN when it has no values)."""
        with self._lock:
            return self._psi_locked()

    def _psi_locked(self) -> dict[str, float]:
        result: dict[str, float] = {}
        for name, reference in self.reference.statistics.items():
            values = np.asarray([week[name] for week in self._window], dtype=np.float64)
            if np.all(np.isnan(values)):
                result[name] = math.nan
            else:
                result[name] = drift.sample_psi(reference, values)
        return result


__all__ = ["INPUT_PSI", "REFERENCE_FILENAME", "DriftMonitor", "load_reference"]
