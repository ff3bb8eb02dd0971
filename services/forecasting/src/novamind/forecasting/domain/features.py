"""Tabular features for direct multi-horizon forecasting with gradient-boosted trees.

One feature row describes a forecast of one panel from origin ``o`` for the target day
``o + h`` (horizon day ``h >= 1``). It reads only what is known at the origin:
``target[: o + 1]``, ``past[: o + 1]`` and ``future[: o + 1 + h]`` (see
:mod:`novamind.forecasting.domain.series`). The columns, in order, with ``<t>`` the target's
name, ``<c>`` a past-only covariate and ``<f>`` a known-future covariate:

* ``<t>_lag_<k>`` for k in 1..7, 14, 21, 28: the target ``k - 1`` days before the origin
  (``lag_1`` is the origin day itself); NaN when that day is missing.
* ``<t>_last_observed``: the latest observed target value; ``<t>_days_since_observed``: days
  between it and the origin (0 when the origin day is observed).
* ``<t>_rolling_mean_<w>`` / ``<t>_rolling_std_<w>`` for w in 7, 14, 28: mean and population
  standard deviation of the observed days among the last ``w`` days up to the origin.
* ``<t>_observed_fraction_28``: share of the last 28 days (fewer at the series start) observed.
* ``<t>_history_mean``: mean of every observed day up to the origin (the patient's baseline).
* ``<t>_level`` and ``<t>_scale``: the row's normalisation (below), in target units.
* ``<c>_lag_<k>`` for k in 1, 2, 3 and ``<c>_rolling_mean_<w>`` for w in 7, 28.
* ``<f>_at_target``: the known-future covariate on the target day; ``<f>_days_since_on``: days
  from its latest switch-on (a day on, > 0, after a day off) to the target day, NaN if it was
  never on. Unknown (NaN) days keep the previous on/off state.
* ``day_of_week`` of the target day (Monday = 0) and ``horizon`` (``h``).

Normalisation (Salinas et al. 2020 scale the inputs of a global model per series so that one
model serves series of very different levels): each row has a *level*, the mean of the observed
target over the last 28 days (the latest observed value when none of those days is observed),
and a *scale*, the standard deviation of every observed target value up to the origin, at least
``scale_floor``. With ``normalize=True`` every column in target units (lags, last observed,
rolling and history means) becomes ``(value - level) / scale`` and the rolling standard
deviations become ``value / scale``; ``<t>_level`` and ``<t>_scale`` stay in target units so
the trees still see the absolute severity. A model then learns ``(y - level) / scale``.

Everything is computed with prefix sums over each panel's day grid, once per panel, and
gathered for the requested rows, so a training set of hundreds of thousands of rows builds in
well under a second. Values are float32 (what the tree learner uses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from novamind.forecasting.domain.series import CovariateSchema, FloatArray, Panel

Float32Array = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

#: Target lags in days, ``lag_1`` being the origin day.
TARGET_LAGS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 14, 21, 28)
#: Windows (days up to the origin) of the target's rolling mean and standard deviation.
TARGET_WINDOWS: tuple[int, ...] = (7, 14, 28)
#: Window of the observed fraction and of the normalisation level.
OBSERVED_WINDOW = 28
LEVEL_WINDOW = 28
#: Past-only covariate lags and rolling-mean windows.
COVARIATE_LAGS: tuple[int, ...] = (1, 2, 3)
COVARIATE_WINDOWS: tuple[int, ...] = (7, 28)


@dataclass(frozen=True)
class FeatureMatrix:
    """Feature rows with their names and each row's normalisation."""

    #: Shape [N, len(names)], float32, NaN = unknown.
    values: Float32Array
    #: Readable column names (see the module docstring).
    names: tuple[str, ...]
    #: Per-row level in target units, shape [N].
    level: FloatArray
    #: Per-row scale in target units (> 0), shape [N].
    scale: FloatArray


@dataclass(frozen=True)
class _Layout:
    names: tuple[str, ...]
    #: Columns in target units, centred and scaled when normalising.
    centred: tuple[int, ...]
    #: Columns that are spreads in target units, scaled when normalising.
    spread: tuple[int, ...]
    origin_columns: int
    future_columns: int


def _layout(target: str, schema: CovariateSchema) -> _Layout:
    names: list[str] = []
    centred: list[int] = []
    spread: list[int] = []

    def add(name: str, kind: str = "") -> None:
        if kind == "centred":
            centred.append(len(names))
        elif kind == "spread":
            spread.append(len(names))
        names.append(name)

    for k in TARGET_LAGS:
        add(f"{target}_lag_{k}", "centred")
    add(f"{target}_last_observed", "centred")
    add(f"{target}_days_since_observed")
    for w in TARGET_WINDOWS:
        add(f"{target}_rolling_mean_{w}", "centred")
        add(f"{target}_rolling_std_{w}", "spread")
    add(f"{target}_observed_fraction_{OBSERVED_WINDOW}")
    add(f"{target}_history_mean", "centred")
    add(f"{target}_level")
    add(f"{target}_scale")
    for covariate in schema.past:
        for k in COVARIATE_LAGS:
            add(f"{covariate}_lag_{k}")
        for w in COVARIATE_WINDOWS:
            add(f"{covariate}_rolling_mean_{w}")
    origin_columns = len(names)
    for covariate in schema.future:
        add(f"{covariate}_at_target")
        add(f"{covariate}_days_since_on")
    future_columns = len(names) - origin_columns
    add("day_of_week")
    add("horizon")
    if len(set(names)) != len(names):
        raise ValueError("feature names collide: target and covariate names must be distinct")
    return _Layout(tuple(names), tuple(centred), tuple(spread), origin_columns, future_columns)


def feature_names(target: str, schema: CovariateSchema) -> tuple[str, ...]:
    """The readable column names of :func:`build_features`, in order."""
    return _layout(target, schema).names


def _prefix(values: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Prefix sums (leading zero) of observed values, their squares and the observed count."""
    observed = np.isfinite(values)
    clean = np.where(observed, values, 0.0)
    zero = np.zeros((1, *values.shape[1:]), dtype=np.float64)
    total = np.concatenate([zero, np.cumsum(clean, axis=0)])
    squares = np.concatenate([zero, np.cumsum(clean * clean, axis=0)])
    count = np.concatenate([zero, np.cumsum(observed, axis=0, dtype=np.float64)])
    return total, squares, count


def _window(prefix: FloatArray, window: int | None) -> FloatArray:
    """Per origin ``o`` (rows 0..T-1): prefix[o + 1] - prefix[max(0, o + 1 - window)]."""
    length = prefix.shape[0] - 1
    upper = np.arange(1, length + 1)
    if window is None:
        return prefix[upper]
    lower = np.maximum(upper - window, 0)
    difference: FloatArray = prefix[upper] - prefix[lower]
    return difference


def _divide(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, np.nan)


def _lagged(values: FloatArray, lag: int) -> FloatArray:
    """Rows o -> values[o - lag + 1] (NaN before the series start)."""
    shift = lag - 1
    if shift == 0:
        return values.copy()
    if shift >= values.shape[0]:
        return np.full(values.shape, np.nan)
    pad = np.full((shift, *values.shape[1:]), np.nan)
    return np.concatenate([pad, values[: values.shape[0] - shift]])


def _origin_features(
    panel: Panel, layout: _Layout, past_columns: int, scale_floor: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Origin-dependent columns for every origin 0..T-1, with the level and scale."""
    target = np.asarray(panel.target, dtype=np.float64)
    length = target.shape[0]
    columns: list[FloatArray] = [_lagged(target, k) for k in TARGET_LAGS]

    days = np.arange(length)
    observed = np.isfinite(target)
    last_index = np.maximum.accumulate(np.where(observed, days, -1))
    has_last = last_index >= 0
    last_value = np.where(has_last, target[np.maximum(last_index, 0)], np.nan)
    columns.append(last_value)
    columns.append(np.where(has_last, (days - last_index).astype(np.float64), np.nan))

    total, squares, count = _prefix(target)
    for w in TARGET_WINDOWS:
        n = _window(count, w)
        mean = _divide(_window(total, w), n)
        variance = np.maximum(_divide(_window(squares, w), n) - mean * mean, 0.0)
        columns.append(mean)
        columns.append(np.sqrt(variance))
    span = np.minimum(days + 1, OBSERVED_WINDOW).astype(np.float64)
    columns.append(_window(count, OBSERVED_WINDOW) / span)
    n_all = _window(count, None)
    history_mean = _divide(_window(total, None), n_all)
    columns.append(history_mean)

    n_level = _window(count, LEVEL_WINDOW)
    level = _divide(_window(total, LEVEL_WINDOW), n_level)
    level = np.where(np.isfinite(level), level, last_value)
    history_variance = np.maximum(_divide(_window(squares, None), n_all) - history_mean**2, 0.0)
    history_std = np.where(n_all >= 2, np.sqrt(history_variance), np.nan)
    scale = np.where(np.isfinite(history_std) & (history_std > scale_floor), history_std, scale_floor)
    columns.append(level)
    columns.append(scale)

    if past_columns:
        past = np.full((length, past_columns), np.nan)
        rows = min(length, panel.past.shape[0])
        past[:rows] = panel.past[:rows]
        p_total, _, p_count = _prefix(past)
        lags = [_lagged(past, k) for k in COVARIATE_LAGS]
        means = [_divide(_window(p_total, w), _window(p_count, w)) for w in COVARIATE_WINDOWS]
        for j in range(past_columns):
            columns.extend(lag[:, j] for lag in lags)
            columns.extend(mean[:, j] for mean in means)
    return np.stack(columns, axis=1), level, scale


def _day_features(panel: Panel, future_columns: int, days: int) -> FloatArray:
    """Target-day columns of the known-future covariates for days 0..days-1, shape [days, 2F]."""
    out = np.full((days, 2 * future_columns), np.nan)
    if not future_columns or days == 0:
        return out
    known = min(days, panel.future.shape[0])
    future = np.full((days, future_columns), np.nan)
    future[:known] = panel.future[:known]
    index = np.arange(days)
    for j in range(future_columns):
        value = future[:, j]
        finite = np.isfinite(value)
        # Unknown days keep the previous known on/off state.
        last_known = np.maximum.accumulate(np.where(finite, index, -1))
        state = np.where(last_known >= 0, value[np.maximum(last_known, 0)] > 0, False)
        previous = np.concatenate([[False], state[:-1]])
        switch = state & ~previous
        last_switch = np.maximum.accumulate(np.where(switch, index, -1))
        out[:, 2 * j] = value
        out[:, 2 * j + 1] = np.where(last_switch >= 0, (index - last_switch).astype(np.float64), np.nan)
    return out


def build_features(
    panels: Sequence[Panel],
    panel_index: npt.ArrayLike,
    origins: npt.ArrayLike,
    horizons: npt.ArrayLike,
    target: str,
    schema: CovariateSchema,
    *,
    normalize: bool = True,
    scale_floor: float = 1e-6,
) -> FeatureMatrix:
    """Feature rows for the forecasts ``(panels[panel_index[i]], origins[i], horizons[i])``.

    ``origins[i]`` must lie in ``0 .. panel.length - 1`` and ``horizons[i] >= 1``;
    ``scale_floor`` (> 0) is the smallest normalisation scale. Raises ``ValueError`` on
    out-of-range rows or covariate arrays that do not match ``schema``.
    """
    if not scale_floor > 0:
        raise ValueError("scale_floor must be positive")
    layout = _layout(target, schema)
    which = np.asarray(panel_index, dtype=np.int64).reshape(-1)
    origin = np.asarray(origins, dtype=np.int64).reshape(-1)
    horizon = np.asarray(horizons, dtype=np.int64).reshape(-1)
    if not which.shape == origin.shape == horizon.shape:
        raise ValueError("panel_index, origins and horizons must have the same length")
    rows = which.shape[0]
    values = np.empty((rows, len(layout.names)), dtype=np.float32)
    level = np.empty(rows, dtype=np.float64)
    scale = np.empty(rows, dtype=np.float64)
    if rows == 0:
        return FeatureMatrix(values, layout.names, level, scale)
    if which.min() < 0 or which.max() >= len(panels) or horizon.min() < 1:
        raise ValueError("panel index or horizon out of range")

    past_columns = len(schema.past)
    future_columns = len(schema.future)
    centred = np.asarray(layout.centred, dtype=np.int64)
    spread = np.asarray(layout.spread, dtype=np.int64)
    order = np.argsort(which, kind="stable")
    sorted_which = which[order]
    starts = np.flatnonzero(np.r_[True, sorted_which[1:] != sorted_which[:-1]])
    ends = np.r_[starts[1:], rows]
    blocks: list[Float32Array] = []
    sorted_level = np.empty(rows, dtype=np.float64)
    sorted_scale = np.empty(rows, dtype=np.float64)
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        selected = order[start:end]
        panel = panels[int(sorted_which[start])]
        if panel.past.ndim != 2 or panel.past.shape[1] != past_columns:
            raise ValueError("past covariates do not match the schema")
        if panel.future.ndim != 2 or panel.future.shape[1] != future_columns:
            raise ValueError("known-future covariates do not match the schema")
        o = origin[selected]
        h = horizon[selected]
        if o.min() < 0 or o.max() >= panel.length:
            raise ValueError("origin out of range")
        per_origin, row_level, row_scale = _origin_features(panel, layout, past_columns, scale_floor)
        day = o + h
        days = int(day.max()) + 1
        block = np.concatenate(
            [
                per_origin[o],
                _day_features(panel, future_columns, days)[day],
                panel.day_of_week(days)[day, None].astype(np.float64),
                h[:, None].astype(np.float64),
            ],
            axis=1,
        )
        block_level = row_level[o]
        block_scale = row_scale[o]
        if normalize:
            block[:, centred] = (block[:, centred] - block_level[:, None]) / block_scale[:, None]
            block[:, spread] = block[:, spread] / block_scale[:, None]
        blocks.append(block.astype(np.float32))
        sorted_level[start:end] = block_level
        sorted_scale[start:end] = block_scale
    stacked = np.concatenate(blocks)
    if bool(np.all(order[1:] > order[:-1])):
        return FeatureMatrix(stacked, layout.names, sorted_level, sorted_scale)
    values[order] = stacked
    level[order] = sorted_level
    scale[order] = sorted_scale
    return FeatureMatrix(values, layout.names, level, scale)
