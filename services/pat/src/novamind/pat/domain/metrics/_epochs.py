"""Checks and reshapes the activity-count series every metric starts from; run-length helpers.

A counts series is a ``pd.Series`` of counts per epoch (float, NaN = missing) indexed by the
local start time of each epoch on a regular grid, as ``Recording.activity`` holds it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from novamind.core.errors import ValidationError

DAY = pd.Timedelta(days=1)


def epoch_length(counts: pd.Series) -> pd.Timedelta:
    """The epoch length of ``counts``; raises ``ValidationError`` unless the grid is regular.

    The index must be a ``DatetimeIndex`` with at least two epochs and one spacing throughout
    (its ``freq`` when set, else the spacing of its first two epochs).
    """
    index = counts.index
    if not isinstance(index, pd.DatetimeIndex):
        raise ValidationError("activity counts need a DatetimeIndex of epoch start times", field="counts")
    if index.size < 2:
        raise ValidationError("activity counts need at least two epochs", field="counts")
    if index.freq is not None:
        return pd.Timedelta(index.freq.nanos, unit="ns")
    steps = np.diff(index.asi8)
    if steps[0] <= 0 or np.any(steps != steps[0]):
        raise ValidationError("activity counts must lie on a regular, increasing epoch grid", field="counts")
    return pd.Timedelta(int(steps[0]), unit="ns")


def epochs_per(span: pd.Timedelta, epoch: pd.Timedelta, what: str) -> int:
    """How many epochs make ``span``; raises ``ValidationError`` when they do not fit exactly."""
    n, rest = divmod(span, epoch)
    if rest != pd.Timedelta(0) or n < 1:
        raise ValidationError(f"{what} ({span}) is not a whole number of {epoch} epochs", field="counts")
    return int(n)


def as_float(counts: pd.Series) -> pd.Series:
    """``counts`` as float64 with its index on an explicit regular frequency."""
    epoch = epoch_length(counts)
    return pd.Series(
        counts.to_numpy(dtype=np.float64, copy=True),
        index=pd.DatetimeIndex(counts.index, freq=pd.tseries.frequencies.to_offset(epoch)),
        name=counts.name,
    )


def binarize(counts: pd.Series, threshold: float) -> pd.Series:
    """1.0 where the count exceeds ``threshold`` (an active epoch), 0.0 otherwise, NaN kept."""
    active = (counts > threshold).astype(np.float64)
    return active.where(counts.notna())


def prepared(counts: pd.Series, binarized: bool, threshold: float) -> pd.Series:
    """Validated float counts, binarised at ``threshold`` (count > threshold) when asked."""
    values = as_float(counts)
    return binarize(values, threshold) if binarized else values


def resample_sum(counts: pd.Series, freq: str | pd.Timedelta) -> pd.Series:
    """Sums over bins of ``freq`` anchored on the first epoch; a partial last bin is kept.

    Missing epochs count as zero in a bin's sum (pandas ``sum`` semantics).
    """
    return counts.resample(pd.Timedelta(freq), origin="start").sum()


def seconds_of_day(index: pd.DatetimeIndex) -> np.ndarray:
    """Local clock time of each timestamp, in whole seconds since midnight (int64)."""
    return np.asarray(index.hour * 3600 + index.minute * 60 + index.second, dtype=np.int64)


def runs(state: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start index, length, value) of each run of equal consecutive values (none when empty)."""
    if state.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, state[:0]
    edges = np.flatnonzero(np.diff(state)) + 1
    starts = np.concatenate([[0], edges]).astype(np.int64)
    lengths = np.diff(np.concatenate([starts, [state.size]]))
    return starts, lengths, state[starts]


def mark_ranges(size: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Boolean array of ``size``, True inside any [start, end) range."""
    edges = np.zeros(size + 1, dtype=np.int64)
    np.add.at(edges, starts, 1)
    np.add.at(edges, ends, -1)
    return np.asarray(np.cumsum(edges[:-1]) > 0)
