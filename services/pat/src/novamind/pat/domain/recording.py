"""An actigraphy recording as every reader returns it and every algorithm consumes it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """Where a recording came from. Never holds the subject's name or other PHI."""

    format: str  # "AWD", "Actiware CSV", "AGD", "MTN", "generic CSV", "Apple Health", "Open mHealth"
    manufacturer: str = ""
    model: str = ""
    serial: str = ""


@dataclass(frozen=True)
class Recording:
    """Activity counts on a regular epoch grid, in the wearer's local clock time.

    ``activity`` is indexed by the local start time of each epoch (a ``DatetimeIndex`` with a
    fixed frequency of ``epoch_seconds``; timezone-aware when the source says which zone, else
    naive local time) and holds counts per epoch as float64, NaN where no data was recorded.
    ``light`` (lux, same index) is present when the device recorded it; ``steps`` likewise.
    """

    activity: pd.Series
    epoch_seconds: float
    device: DeviceInfo
    light: pd.Series | None = None
    steps: pd.Series | None = None
    #: IANA time zone of the wearer when known ("Europe/Zurich"); None when the file is naive.
    timezone: str | None = None
    #: Free-form, PHI-free facts a reader wants to pass on (firmware, sampling mode ...).
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def start(self) -> pd.Timestamp:
        return pd.Timestamp(self.activity.index[0])

    @property
    def end(self) -> pd.Timestamp:
        """Start of the last epoch plus one epoch (exclusive end)."""
        return pd.Timestamp(self.activity.index[-1]) + pd.Timedelta(seconds=self.epoch_seconds)

    @property
    def n_epochs(self) -> int:
        return int(self.activity.size)

    @property
    def minutes(self) -> float:
        return self.n_epochs * self.epoch_seconds / 60.0

    def counts(self) -> np.ndarray:
        """The activity counts as a float64 array (NaN = missing)."""
        return self.activity.to_numpy(dtype=np.float64)
