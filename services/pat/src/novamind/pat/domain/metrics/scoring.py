"""Epoch-by-epoch sleep/wake scoring and rest detection from activity counts.

Every function takes activity counts per epoch (a ``pd.Series`` on a regular ``DatetimeIndex`` of
local epoch start times) and returns a 0/1 ``int8`` Series on the same index where **1 means
sleep (or rest) and 0 means wake (or activity)** for every algorithm here. Epochs whose window
reaches past either end of the recording, or touches missing data, are scored wake.

Windows, edges and parameters follow pyActigraphy 1.2.2 so that results can be checked against
it; where that package departs from the publication we follow the publication, and the
docstring says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import binary_closing, binary_opening

from novamind.core.errors import ValidationError

from ._epochs import as_float, epoch_length, epochs_per, mark_ranges, runs

MINUTE = pd.Timedelta(minutes=1)

ColeKripkeSettings = Literal["mean", "30sec_max_non_overlap"]

#: Cole et al. 1992: P and the weights of A-4..A+2 for mean counts per minute.
COLE_KRIPKE_MEAN = (0.001, (106, 54, 58, 76, 230, 74, 67))
#: Cole et al. 1992: maximum 30-s non-overlapping epoch per minute, as published (W0 = 121).
COLE_KRIPKE_30S_MAX = (0.0001, (50, 30, 14, 28, 121, 8, 50))
#: The same setting as coded in pyActigraphy 1.2.2, with W0 = 12 instead of the published 121.
PYACTIGRAPHY_COLE_KRIPKE_30S_MAX = (0.0001, (50, 30, 14, 28, 12, 8, 50))


def _scored(sleep: np.ndarray, index: pd.Index) -> pd.Series:
    return pd.Series(sleep.astype(np.int8), index=index, name="sleep")


def _weighted_window(values: np.ndarray, weights: Sequence[float], before: int, after: int) -> np.ndarray:
    """sum_i w_i x[t+i] for i in -before..+after; NaN where the window leaves the data.

    ``after`` may exceed the last weighted offset: pyActigraphy centres its windows, so an epoch
    needs as many epochs after it as before it to be scored.
    """
    padded = np.concatenate([np.full(before, np.nan), values, np.full(after, np.nan)])
    kernel = np.zeros(before + after + 1)
    kernel[: len(weights)] = weights
    windows = sliding_window_view(padded, before + after + 1)
    out = np.asarray(windows @ kernel, dtype=np.float64)
    out[np.isnan(windows).any(axis=1)] = np.nan
    return out


# --- Webster rescoring ---------------------------------------------------------------------------


def webster_rescore(sleep: np.ndarray) -> np.ndarray:
    """Webster's rescoring rules on 1-min sleep (1) / wake (0) scores.

    (a-c) After at least 4, 10 or 15 min of wake, the first 1, 3 or 4 min of the following sleep
    bout become wake (bouts shorter than that are left to the other rules); (d-e) a stretch of at
    most 6 (10) min between two wake bouts of at least 10 (20) min becomes wake. Every rule reads
    the original scores. Webster et al. 1982, Sleep 5(4):389-399, as read by Cole et al. 1992 and
    coded in pyActigraphy 1.2.2.
    """
    scores = np.asarray(sleep, dtype=np.int8)
    starts, lengths, values = runs(scores)
    ends = starts + lengths
    wake_after_wake = np.zeros(scores.size, dtype=bool)
    for head, wake in ((1, 4), (3, 10), (4, 15)):
        bouts = np.flatnonzero((values == 1) & (lengths >= head))
        bouts = bouts[bouts > 0]
        bouts = bouts[lengths[bouts - 1] >= wake]  # runs alternate: the previous run is wake
        wake_after_wake |= mark_ranges(scores.size, starts[bouts], starts[bouts] + head)
    for longest, wake in ((6, 10), (10, 20)):
        long_wake = np.flatnonzero((values == 0) & (lengths >= wake))
        gap_start, gap_end = ends[long_wake[:-1]], starts[long_wake[1:]]
        short = (gap_end - gap_start) <= longest
        wake_after_wake |= mark_ranges(scores.size, gap_start[short], gap_end[short])
    return np.where(wake_after_wake, 0, scores).astype(np.int8)


# --- Cole-Kripke ---------------------------------------------------------------------------------


def score_cole_kripke(
    counts: pd.Series,
    settings: ColeKripkeSettings = "mean",
    *,
    threshold: float = 1.0,
    rescore: bool = True,
    weights: tuple[float, Sequence[float]] | None = None,
) -> pd.Series:
    """Cole-Kripke sleep (1) / wake (0) scoring, one score per minute mapped onto each epoch.

    D = P * sum_i W_i A_(t+i), i = -4..+2 over minutes; sleep when D < ``threshold``.
    ``settings="mean"`` (epochs <= 60 s): A = counts summed per clock minute / 30 (the mean per
    2-s sampling epoch), P = 0.001, W = 106, 54, 58, 76, 230, 74, 67.
    ``settings="30sec_max_non_overlap"`` (epochs <= 30 s): A = the largest 30-s count in the
    minute, P = 0.0001, W = 50, 30, 14, 28, 121, 8, 50 as published; pass
    ``weights=PYACTIGRAPHY_COLE_KRIPKE_30S_MAX`` to reproduce pyActigraphy's W0 = 12.
    The first and last 4 minutes are scored wake. ``rescore`` applies Webster's rules.
    Cole et al. 1992, Sleep 15(5):461-469. Raises ``ValidationError`` when the epoch is too long
    for the settings or does not divide a minute.
    """
    values = as_float(counts)
    epoch = epoch_length(values)
    if settings == "mean":
        epochs_per(MINUTE, epoch, "a minute")
        per_minute = values.resample(MINUTE).sum(min_count=1) / 30
        scale, w = weights or COLE_KRIPKE_MEAN
    elif settings == "30sec_max_non_overlap":
        epochs_per(pd.Timedelta(seconds=30), epoch, "30 s")
        half_minutes = values.resample(pd.Timedelta(seconds=30)).sum(min_count=1)
        per_minute = half_minutes.resample(MINUTE).max()
        scale, w = weights or COLE_KRIPKE_30S_MAX
    else:
        raise ValidationError(f"unknown Cole-Kripke settings {settings!r}", field="settings")
    if len(w) != 7:
        raise ValidationError("Cole-Kripke needs 7 weights (A-4..A+2)", field="weights")
    d = scale * _weighted_window(per_minute.to_numpy(), w, before=4, after=4)
    sleep = np.asarray(d < threshold, dtype=np.int8)
    if rescore:
        sleep = webster_rescore(sleep)
    by_minute = pd.Series(sleep, index=per_minute.index)
    index = pd.DatetimeIndex(values.index)
    if index.tz is not None:
        # Floor in UTC: a local wall clock repeats an hour when DST ends, and every zone
        # offset in use is a whole number of minutes.
        minutes = index.tz_convert("UTC").floor(MINUTE).tz_convert(index.tz)
    else:
        minutes = index.floor(MINUTE)
    return _scored(by_minute.reindex(minutes).to_numpy(), values.index)


# --- Sadeh ---------------------------------------------------------------------------------------


def score_sadeh(counts: pd.Series, *, threshold: float = 0.0) -> pd.Series:
    """Sadeh sleep (1) / wake (0) scoring on native epochs (designed for 1-min epochs).

    PS = 7.601 - 0.065 mean_W5 - 1.08 NAT - 0.056 SD_last6 - 0.703 ln(A_t + 1); sleep when
    PS > ``threshold``. mean_W5: mean count over the 11 epochs centred on t; NAT: epochs of that
    window with 50 <= A < 100; SD_last6: sample SD of epochs t-5..t; counts are not capped.
    Sadeh et al. 1994, Sleep 17(3):201-207. pyActigraphy 1.2.2 differs in two details: its log
    term uses epoch t+1 and its NAT excludes counts of exactly 50.
    """
    values = as_float(counts)
    mean_w5 = values.rolling(11, center=True).mean()
    in_band = ((values >= 50) & (values < 100)).astype(np.float64).where(values.notna())
    nat = in_band.rolling(11, center=True).sum()
    sd_last6 = values.rolling(6).std()
    ps = 7.601 - 0.065 * mean_w5 - 1.08 * nat - 0.056 * sd_last6 - 0.703 * np.log1p(values)
    return _scored(np.asarray(ps > threshold), values.index)


# --- Scripps Clinic ------------------------------------------------------------------------------

#: Kripke et al. 2010, J Sleep Res 19(4):612-619: weights of A-10..A+2, P = 0.204.
SCRIPPS_WEIGHTS = (
    0.0064, 0.0074, 0.0112, 0.0112, 0.0118, 0.0118, 0.0128, 0.0188, 0.0280, 0.0664, 0.0300, 0.0112, 0.0100,
)  # fmt: skip


def score_scripps(counts: pd.Series, *, threshold: float = 1.0) -> pd.Series:
    """Scripps Clinic sleep (1) / wake (0) scoring on native epochs (designed for 1-min epochs).

    D = 0.204 * sum_i b_i A_(t+i), i = -10..+2; sleep when D < ``threshold``. The first and last
    10 epochs are scored wake. Kripke et al. 2010, J Sleep Res 19(4):612-619.
    """
    values = as_float(counts)
    d = 0.204 * _weighted_window(values.to_numpy(), SCRIPPS_WEIGHTS, before=10, after=10)
    return _scored(np.asarray(d < threshold), values.index)


# --- Oakley (Actiware) ---------------------------------------------------------------------------

_OAKLEY_WEIGHTS: dict[int, tuple[float, ...]] = {
    15: (0.04,) * 4 + (0.20,) * 4 + (4.0,) + (0.20,) * 4 + (0.04,) * 4,
    30: (0.04, 0.04, 0.20, 0.20, 2.0, 0.20, 0.20, 0.04, 0.04),
    60: (0.04, 0.20, 1.0, 0.20, 0.04),
    120: (0.12, 0.50, 0.12),
}


def actiware_wake_threshold(counts: pd.Series) -> float:
    """Actiware's automatic wake threshold, counts per epoch.

    0.88888 * (total counts / minutes scored mobile), an epoch being mobile when its count is
    at least the number of 15-s intervals it spans. Philips Respironics Actiware manual.
    """
    values = as_float(counts)
    epoch = epoch_length(values)
    mobile = values >= int(epoch / pd.Timedelta(seconds=15))
    mobile_minutes = int(mobile.sum()) * (epoch / MINUTE)
    return float(values.sum() / mobile_minutes * 0.88888) if mobile_minutes > 0 else math.inf


def score_oakley(counts: pd.Series, threshold: float | Literal["automatic"] = 40) -> pd.Series:
    """Oakley (Actiware) sleep (1) / wake (0) scoring for 15, 30, 60 or 120-s epochs.

    Sleep when the weighted sum of counts over +-2 min (weights 0.04, 0.2, 1 ... per minute, as
    tabled per epoch length) is below ``threshold``: 20 (low), 40 (medium), 80 (high) counts, or
    ``"automatic"`` (:func:`actiware_wake_threshold`). Oakley 1997, Mini-Mitter technical report;
    Actiware manual. Raises ``ValidationError`` for other epoch lengths.
    """
    values = as_float(counts)
    seconds = epoch_length(values).total_seconds()
    weights = _OAKLEY_WEIGHTS.get(int(seconds)) if seconds.is_integer() else None
    if weights is None:
        raise ValidationError(
            "Oakley scoring is defined for 15, 30, 60 and 120-s epochs only", field="counts"
        )
    limit = actiware_wake_threshold(values) if threshold == "automatic" else float(threshold)
    half = len(weights) // 2
    total = _weighted_window(values.to_numpy(), weights, before=half, after=half)
    return _scored(np.asarray(total < limit), values.index)


# --- Crespo rest detection -----------------------------------------------------------------------


def _long_zero_runs(values: np.ndarray, min_length: int) -> np.ndarray:
    """True on epochs inside runs of at least ``min_length`` consecutive counts below 1."""
    starts, lengths, state = runs(np.asarray(values < 1, dtype=np.int8))
    long_runs = (state == 1) & (lengths >= min_length)
    return mark_ranges(values.size, starts[long_runs], starts[long_runs] + lengths[long_runs])


def _rank_order_estimate(
    padded: np.ndarray, window: int, min_periods: int, quantile: float, structure: np.ndarray
) -> np.ndarray:
    """Centred running median, 1 above its ``quantile``, then morphological closing and opening."""
    median = pd.Series(padded).rolling(window, center=True, min_periods=min_periods).median()
    above = np.asarray(median > median.quantile(quantile))
    return np.asarray(binary_opening(binary_closing(above, structure), structure))


def detect_rest_crespo(
    counts: pd.Series,
    *,
    zeta: int = 15,
    zeta_rest: int = 30,
    zeta_active: int = 2,
    t: float = 0.33,
    alpha: pd.Timedelta = pd.Timedelta(hours=8),
    beta: pd.Timedelta = pd.Timedelta(hours=1),
) -> pd.Series:
    """Crespo rest (1) / activity (0) detection.

    Pass 1: runs of at least ``zeta`` zero counts are replaced by the ``t`` quantile of the
    counts; a running median over ``alpha`` (the expected daily rest, padded with the maximum
    count) is thresholded at its alpha/24 quantile and cleaned by closing and opening over
    ``beta``. Pass 2 repeats this on the counts with runs of at least ``zeta_rest`` (in rest) or
    ``zeta_active`` (in activity) zeros ignored, the window lopsided near the ends, and the
    morphology over 2 x ``beta``. The first and last epochs are scored activity. Raises
    ``ValidationError`` for recordings no longer than ``alpha``.
    Crespo et al. 2012, Med Biol Eng Comput 50(4):329-340; parameters and edge handling as
    pyActigraphy 1.2.2 ``Crespo`` (whose pass 1 filters the unconditioned counts; the two agree
    whenever the ``t`` quantile is 0, as on recordings with more than a third of zero epochs).
    """
    values = as_float(counts)
    epoch = epoch_length(values)
    x = np.array(values.to_numpy(), dtype=np.float64)
    peak = float(np.nanmax(x))
    window = epochs_per(alpha, epoch, "alpha") + 1
    half = (window - 1) // 2
    pad = epochs_per(beta, epoch, "beta")
    quantile = alpha / pd.Timedelta(days=1)
    if x.size <= window:
        raise ValidationError(f"Crespo rest detection needs more than {alpha} of data", field="counts")

    conditioned = np.where(_long_zero_runs(x, zeta), float(np.nanquantile(x, t)), x)
    edge = np.full(half, peak)
    estimate = _rank_order_estimate(
        np.concatenate([edge, conditioned, edge]), window, half, quantile, np.ones(pad + 1)
    )[half:-half]

    # Zero runs are counted within each state's epochs taken together, as pyActigraphy does.
    invalid = np.zeros(x.size, dtype=bool)
    for state, limit in ((True, zeta_active), (False, zeta_rest)):
        where = np.flatnonzero(estimate == state)
        invalid[where] = _long_zero_runs(x[where], limit)
    edge = np.full(pad, peak)
    series = pd.Series(np.concatenate([edge, np.where(invalid, np.nan, x), edge]))
    adaptive = np.array(series.rolling(window, center=True, min_periods=pad).median().to_numpy())
    # The centred window is lopsided near the ends: use medians expanding from each end there.
    adaptive[:half] = series.iloc[:window].expanding().median().to_numpy()[:half]
    tail = series.iloc[-window - 1 : -1][::-1].expanding().median().to_numpy()[::-1]
    adaptive[-half - 1 : -1] = tail[:half]
    adaptive = adaptive[pad:-pad]
    above = np.asarray(adaptive > np.nanquantile(adaptive, quantile))
    structure = np.ones(2 * pad + 1, dtype=bool)
    active = binary_opening(binary_closing(above, structure), structure).astype(np.int8)
    active[0] = active[-1] = 1
    return _scored(1 - active, values.index)


# --- Roenneberg rest detection -------------------------------------------------------------------


def _step_correlations(bout: np.ndarray) -> np.ndarray:
    """Pearson r of ``bout`` with each step 1..1,0..0 of the same length (ones through i)."""
    m = bout.size
    centred = bout - bout.mean()
    ones = np.arange(1, m + 1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.cumsum(centred) / (np.linalg.norm(centred) * np.sqrt(ones - ones**2 / m)))


def _highest_peak(r: np.ndarray, followers: int) -> int | None:
    """First index holding the highest r among points above all of their next ``followers``."""
    if r.size <= followers:
        return None
    later = sliding_window_view(r[1:], followers).max(axis=1)
    with np.errstate(invalid="ignore"):
        candidates = np.flatnonzero(r[: later.size] > later)
    if candidates.size == 0:
        return None
    return int(np.flatnonzero(r == r[candidates].max())[0])


def detect_rest_roenneberg(
    counts: pd.Series,
    *,
    trend_period: pd.Timedelta = pd.Timedelta(hours=24),
    min_trend_period: pd.Timedelta = pd.Timedelta(hours=12),
    threshold: float = 0.15,
    min_seed_period: pd.Timedelta = pd.Timedelta(minutes=30),
    max_test_period: pd.Timedelta = pd.Timedelta(hours=12),
    r_consec_below: pd.Timedelta = pd.Timedelta(minutes=30),
) -> pd.Series:
    """Roenneberg consolidated rest (1) / activity (0) detection.

    Epochs below ``threshold`` x the centred 24-h moving mean are candidate rest; each run of
    more than 30 min of candidates seeds a bout whose end is where the next 12 h best correlate
    with a single consolidated block (the highest correlation peak above the following 30 min).
    Candidates outside bouts become activity. Roenneberg et al. 2015, Methods Enzymol
    552:257-283, as pyActigraphy 1.2.2 ``Roenneberg`` with default parameters.
    """
    values = as_float(counts)
    epoch = epoch_length(values)
    trend = values.rolling(
        epochs_per(trend_period, epoch, "trend period"),
        center=True,
        min_periods=epochs_per(min_trend_period, epoch, "trend period"),
    ).mean()
    candidate = np.where(trend.isna(), np.nan, (values <= threshold * trend).astype(np.float64))
    seed_min = epochs_per(min_seed_period, epoch, "seed period")
    test_len = epochs_per(max_test_period, epoch, "test period")
    followers = epochs_per(r_consec_below, epoch, "peak range") + 1

    is_candidate = np.nan_to_num(candidate) == 1
    starts, lengths, state = runs(is_candidate.astype(np.int8))
    seeds = starts[(state == 1) & (lengths >= seed_min)]
    rest = np.zeros(values.size, dtype=np.int8)
    last_end = -1
    for seed in seeds:
        if seed < last_end:
            continue
        # pandas label slicing: the test span covers max_test_period inclusive of its end epoch,
        # of which the first max_test_period are correlated.
        bout = candidate[seed : seed + test_len]
        offset = _highest_peak(_step_correlations(bout), followers)
        if offset is not None:
            rest[seed : seed + offset + 1] = 1
            last_end = seed + offset
    return _scored(rest, values.index)
