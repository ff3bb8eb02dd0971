"""Non-parametric and cosinor descriptions of the rest-activity rhythm.

Every function takes activity counts per epoch (a ``pd.Series`` on a regular ``DatetimeIndex`` of
local epoch start times, NaN = missing) and returns plain values. "Binarised" data are 1 for an
active epoch (count > ``threshold``) and 0 otherwise, computed on native epochs before any
resampling, as pyActigraphy 1.2.2 does.

Ratios of variances (IS, IV) are NaN when the data have no variance (constant activity); L5, M10
and RA are None when the recording does not cover every clock time of a day.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

import numpy as np
import pandas as pd

from ._epochs import (
    DAY,
    epoch_length,
    epochs_per,
    prepared,
    resample_sum,
    runs,
    seconds_of_day,
)

#: Resampling periods (minutes) dividing 1440 between 1 and 60 min, averaged by ISm and IVm
#: (Gonçalves et al. 2014, Sleep Sci 7(3):158-164).
MULTI_SCALE_MINUTES: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 15, 16, 18, 20, 24, 30, 32, 36, 40, 45, 48, 60,
)  # fmt: skip


# --- Interdaily stability and intradaily variability -------------------------------------------


def _over_variance(numerator: float, binned: pd.Series) -> float:
    variance = float(binned.var())
    return numerator / variance if variance > 0 else math.nan


def _interdaily_stability(binned: pd.Series) -> float:
    # Sample variances (ddof=1) of the mean daily profile and of all bins: pyActigraphy's form,
    # about 24/23 above the textbook population form (N/p) on complete days of hourly bins.
    profile = binned.groupby(seconds_of_day(pd.DatetimeIndex(binned.index))).mean()
    return _over_variance(float(profile.var()), binned)


def _intradaily_variability(binned: pd.Series) -> float:
    return _over_variance(float(binned.diff().pow(2).mean()), binned)


def interdaily_stability(
    counts: pd.Series, freq: str = "1h", *, binarize: bool = True, threshold: float = 4
) -> float:
    """Interdaily stability IS, dimensionless in [0, 1] (1 = identical days).

    IS = var(mean 24 h profile of ``freq`` bins) / var(all ``freq`` bins), both sample variances.
    Bins are sums over ``freq`` anchored on the first epoch (partial last bin kept).
    Witting et al. 1990, Biol Psychiatry 27:563-572; van Someren et al. 1999, Chronobiol Int
    16(4):505-518. NaN when the binned data are constant. Raises ``ValidationError`` on an
    irregular or non-datetime index.
    """
    binned = resample_sum(prepared(counts, binarize, threshold), freq)
    return _interdaily_stability(binned)


def intradaily_variability(
    counts: pd.Series, freq: str = "1h", *, binarize: bool = True, threshold: float = 4
) -> float:
    """Intradaily variability IV, dimensionless in [0, ~2] (0 = smooth, 2 = noise-like).

    IV = mean squared successive difference of ``freq`` bins / their sample variance.
    Witting et al. 1990; van Someren et al. 1999. NaN when the binned data are constant.
    """
    binned = resample_sum(prepared(counts, binarize, threshold), freq)
    return _intradaily_variability(binned)


def _multi_scale(
    counts: pd.Series, minutes: Sequence[int], binarize: bool, threshold: float
) -> list[pd.Series]:
    values = prepared(counts, binarize, threshold)
    return [resample_sum(values, pd.Timedelta(minutes=m)) for m in minutes]


def interdaily_stability_mean(
    counts: pd.Series,
    minutes: Sequence[int] = MULTI_SCALE_MINUTES,
    *,
    binarize: bool = True,
    threshold: float = 4,
) -> float:
    """ISm: the mean IS over bins of ``minutes`` (default: divisors of 1440 from 1 to 60 min).

    Dimensionless. Gonçalves et al. 2014, Sleep Sci 7(3):158-164.
    """
    return fmean(_interdaily_stability(b) for b in _multi_scale(counts, minutes, binarize, threshold))


def intradaily_variability_mean(
    counts: pd.Series,
    minutes: Sequence[int] = MULTI_SCALE_MINUTES,
    *,
    binarize: bool = True,
    threshold: float = 4,
) -> float:
    """IVm: the mean IV over bins of ``minutes`` (default: divisors of 1440 from 1 to 60 min).

    Dimensionless. Gonçalves et al. 2014, Sleep Sci 7(3):158-164.
    """
    return fmean(_intradaily_variability(b) for b in _multi_scale(counts, minutes, binarize, threshold))


def _periods(binned: pd.Series, period: pd.Timedelta) -> list[pd.Series]:
    # Consecutive whole periods from the first bin; a shorter remainder is dropped. The slice
    # includes the bin that starts exactly one period later, as pyActigraphy's label slicing does.
    start = binned.index[0]
    n_periods = (binned.index[-1] - start) // period
    return [binned[start + i * period : start + (i + 1) * period] for i in range(n_periods)]


def interdaily_stability_per_period(
    counts: pd.Series,
    period: str = "7D",
    freq: str = "1h",
    *,
    binarize: bool = True,
    threshold: float = 4,
) -> list[float]:
    """ISp: IS of each consecutive whole ``period`` (dimensionless); empty if none fits."""
    binned = resample_sum(prepared(counts, binarize, threshold), freq)
    return [_interdaily_stability(p) for p in _periods(binned, pd.Timedelta(period))]


def intradaily_variability_per_period(
    counts: pd.Series,
    period: str = "7D",
    freq: str = "1h",
    *,
    binarize: bool = True,
    threshold: float = 4,
) -> list[float]:
    """IVp: IV of each consecutive whole ``period`` (dimensionless); empty if none fits."""
    binned = resample_sum(prepared(counts, binarize, threshold), freq)
    return [_intradaily_variability(p) for p in _periods(binned, pd.Timedelta(period))]


# --- L5, M10 and relative amplitude --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActivityWindow:
    """The least or most active window of the mean 24 h profile.

    ``mean_activity`` is in counts per epoch, or the fraction of active epochs (0-1) when the
    data were binarised. ``onset`` is the local clock time at which the window starts.
    """

    mean_activity: float
    onset: dt.time

    @property
    def onset_minutes(self) -> float:
        """Window onset in minutes since local midnight."""
        return self.onset.hour * 60 + self.onset.minute + self.onset.second / 60


def _daily_profile(values: pd.Series) -> pd.Series | None:
    """Mean per clock time over all days (index: seconds since midnight); None if a slot is unseen."""
    epoch = epoch_length(values)
    profile = values.groupby(seconds_of_day(pd.DatetimeIndex(values.index))).mean()
    if profile.size != epochs_per(DAY, epoch, "a day"):
        return None
    return profile


def _extreme_window(
    counts: pd.Series, hours: float, *, lowest: bool, binarize: bool, threshold: float
) -> ActivityWindow | None:
    values = prepared(counts, binarize, threshold)
    profile = _daily_profile(values)
    if profile is None:
        return None
    width = epochs_per(pd.Timedelta(hours=hours), epoch_length(values), f"a {hours} h window")
    # Windows wrap past midnight: the profile is treated as circular (pyActigraphy duplicates it
    # to 48 h). A window touching a clock time never observed with data is undefined.
    prof = profile.to_numpy()
    n = prof.size
    wrapped = np.concatenate([prof, prof[: width - 1]])
    missing = np.isnan(wrapped)
    sums = np.concatenate([[0.0], np.cumsum(np.where(missing, 0.0, wrapped))])
    holes = np.concatenate([[0], np.cumsum(missing)])
    window_sums = sums[width : width + n] - sums[:n]
    window_sums[(holes[width : width + n] - holes[:n]) > 0] = np.nan
    if np.all(np.isnan(window_sums)):
        return None
    # First occurrence of the extreme, as pandas idxmin/idxmax.
    start = int(np.nanargmin(window_sums) if lowest else np.nanargmax(window_sums))
    onset_s = int(profile.index[start])
    onset = dt.time(onset_s // 3600, onset_s // 60 % 60, onset_s % 60)
    return ActivityWindow(mean_activity=float(window_sums[start] / width), onset=onset)


def l5(counts: pd.Series, *, binarize: bool = True, threshold: float = 4) -> ActivityWindow | None:
    """L5: the least active 5 h of the mean 24 h profile and the clock time it starts.

    The profile is the mean per clock time over all days on native epochs; the window may wrap
    past midnight; the first minimum wins. Van Someren et al. 1997, J Biol Rhythms 12(2):146-156.
    None when the recording does not cover every clock time of a day.
    """
    return _extreme_window(counts, 5, lowest=True, binarize=binarize, threshold=threshold)


def m10(counts: pd.Series, *, binarize: bool = True, threshold: float = 4) -> ActivityWindow | None:
    """M10: the most active 10 h of the mean 24 h profile and the clock time it starts.

    Same conventions as :func:`l5`. Van Someren et al. 1997, J Biol Rhythms 12(2):146-156.
    """
    return _extreme_window(counts, 10, lowest=False, binarize=binarize, threshold=threshold)


def relative_amplitude(counts: pd.Series, *, binarize: bool = True, threshold: float = 4) -> float | None:
    """RA = (M10 - L5) / (M10 + L5), dimensionless in [0, 1].

    Van Someren et al. 1999, Chronobiol Int 16(4):505-518. None when L5/M10 are undefined,
    NaN when both are zero.
    """
    low = l5(counts, binarize=binarize, threshold=threshold)
    high = m10(counts, binarize=binarize, threshold=threshold)
    if low is None or high is None:
        return None
    total = high.mean_activity + low.mean_activity
    return (high.mean_activity - low.mean_activity) / total if total > 0 else math.nan


# --- Average daily total activity ----------------------------------------------------------------


def average_daily_activity(
    counts: pd.Series,
    *,
    binarize: bool = True,
    threshold: float = 4,
    rescale: bool = True,
    exclude_ends: bool = False,
) -> float | None:
    """ADAT: mean over calendar days of the total activity per day.

    Counts per day, or active epochs per day when binarised. With ``rescale`` each day's total is
    multiplied by (epochs in 24 h / epochs with data that day), extrapolating partial days to
    24 h; ``exclude_ends`` drops the first and last calendar days. None when no day remains.
    As pyActigraphy 1.2.2 ``ADAT``.
    """
    values = prepared(counts, binarize, threshold)
    per_day = epochs_per(DAY, epoch_length(values), "a day")
    daily = values.resample("1D").sum()
    if rescale:
        present = values.resample("1D").count()
        daily = (daily * per_day / present).where(present > 0)
    if exclude_ends:
        daily = daily.iloc[1:-1]
    daily = daily.dropna()
    return float(daily.mean()) if daily.size else None


# --- Rest/activity transition probabilities ------------------------------------------------------


def _bout_lengths(active: np.ndarray, state: float) -> np.ndarray:
    """Lengths (epochs) of the runs of ``state`` in a 0/1/NaN array; NaN ends a run."""
    _, lengths, values = runs(np.where(np.isnan(active), -1, active).astype(np.int8))
    return np.asarray(lengths[values == state])


def _lowess(x: np.ndarray, y: np.ndarray, frac: float) -> np.ndarray:
    """Locally weighted linear fit of y on sorted x, tricube weights, no robustness iterations.

    Cleveland 1979, J Am Stat Assoc 74(368):829-836, with the k-nearest-neighbour window of
    statsmodels' ``lowess(frac=frac, it=0, delta=0)``.
    """
    n = x.size
    k = min(max(int(frac * n + 1e-10), 2), n)
    fitted = np.empty(n)
    left = 0
    for i in range(n):
        while left + k < n and x[i] > (x[left] + x[left + k]) / 2.0:
            left += 1
        xs, ys = x[left : left + k], y[left : left + k]
        radius = max(x[i] - xs[0], xs[-1] - x[i])
        w = (1.0 - np.clip(np.abs(xs - x[i]) / radius, 0.0, 1.0) ** 3) ** 3 if radius > 0 else np.ones(k)
        if np.count_nonzero(w > 1e-12) < 2:
            fitted[i] = y[i]
            continue
        w = w / w.sum()
        x_bar = float(np.dot(w, xs))
        spread = max(float(np.dot(w, (xs - x_bar) ** 2)), 1e-12)
        fitted[i] = float(np.dot(w * (1.0 + (x[i] - x_bar) * (xs - x_bar) / spread), ys))
    return fitted


def _transition_constant(counts: pd.Series, threshold: float, from_state: float, frac: float) -> float:
    active = prepared(counts, True, threshold).to_numpy()
    lengths, n_bouts = np.unique(_bout_lengths(active, from_state), return_counts=True)
    if lengths.size < 3:
        return math.nan
    # N_t: bouts lasting t epochs or longer; p(t) = (N_t - N_t+1) / N_t, divided by the gap to
    # the next observed length (Lim et al. 2011's correction for sparse long bouts).
    at_least = np.cumsum(n_bouts[::-1])[::-1].astype(np.float64)
    prob = (at_least[:-1] - at_least[1:]) / at_least[:-1] / np.diff(lengths)
    weights = np.sqrt(at_least[:-1] + at_least[1:])
    t = lengths[:-1].astype(np.float64)
    # The constant region: the longest run of points whose residual from the LOWESS curve is
    # below one (sample) standard deviation of p(t); k = weighted mean of p(t) over it.
    close = np.abs(prob - _lowess(t, prob, frac)) < np.std(prob, ddof=1)
    if not close.any():
        return math.nan
    starts, lengths, values = runs(close.astype(np.int8))
    longest = int(np.argmax(np.where(values == 1, lengths, 0)))  # first of the longest runs
    region = slice(int(starts[longest]), int(starts[longest] + lengths[longest]))
    return float(np.average(prob[region], weights=weights[region]))


def k_ra(counts: pd.Series, threshold: float = 4, *, frac: float = 0.3) -> float:
    """kRA: probability per epoch of leaving a sustained rest bout for activity.

    Rest = count <= ``threshold``. From the distribution of rest-bout lengths, p(t) = P(rest ends
    at t+1 | rest lasted t); kRA is its weighted mean over the plateau found with a LOWESS fit
    (``frac``). Lim et al. 2011, Sleep 34(11):1569-1581, as pyActigraphy 1.2.2 ``kRA`` (it=0,
    no logit). Per epoch of the input's length; NaN when fewer than three bout lengths occur.
    """
    return _transition_constant(counts, threshold, 0.0, frac)


def k_ar(counts: pd.Series, threshold: float = 4, *, frac: float = 0.3) -> float:
    """kAR: probability per epoch of leaving a sustained active bout for rest.

    Active = count > ``threshold``; otherwise as :func:`k_ra`. Lim et al. 2011, Sleep
    34(11):1569-1581.
    """
    return _transition_constant(counts, threshold, 1.0, frac)


# --- Cosinor -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CosinorFit:
    """A single-component cosinor y(x) = mesor + amplitude * cos(2 pi x / period + acrophase).

    ``x`` counts epochs from the first epoch of the recording. ``mesor`` and ``amplitude`` are in
    counts per epoch; ``acrophase_rad`` (radians, [0, 2 pi)) is the phase at the first epoch,
    pyActigraphy's convention; ``acrophase_time`` is the local clock time of the fitted peak.
    """

    mesor: float
    amplitude: float
    acrophase_rad: float
    acrophase_time: dt.time
    period_epochs: float


def cosinor(counts: pd.Series, period: pd.Timedelta = DAY) -> CosinorFit:
    """Least-squares single-component cosinor of the counts at a fixed ``period`` (default 24 h).

    Fitted linearly as mesor + a cos(wx) + b sin(wx) with mesor >= 0 (counts are never
    negative); missing epochs are left out. Cornelissen 2014, Theor Biol Med Model 11:16.
    Raises ``ValidationError`` on an irregular index.
    """
    values = prepared(counts, False, 0)
    epoch = epoch_length(values)
    period_epochs = period / epoch
    x = np.arange(values.size, dtype=np.float64)
    y = values.to_numpy()
    keep = ~np.isnan(y)
    omega = 2 * np.pi / period_epochs
    design = np.column_stack([np.ones(keep.sum()), np.cos(omega * x[keep]), np.sin(omega * x[keep])])
    coef = np.linalg.lstsq(design, y[keep], rcond=None)[0]
    if coef[0] < 0:  # the convex problem's bounded optimum then sits on mesor = 0
        coef = np.concatenate([[0.0], np.linalg.lstsq(design[:, 1:], y[keep], rcond=None)[0]])
    mesor, a, b = (float(c) for c in coef)
    acrophase = math.atan2(-b, a) % (2 * math.pi)
    peak_epochs = (-acrophase / omega) % period_epochs
    peak = (values.index[0] + peak_epochs * epoch).round("1s")
    return CosinorFit(
        mesor=mesor,
        amplitude=math.hypot(a, b),
        acrophase_rad=acrophase,
        acrophase_time=peak.time(),
        period_epochs=float(period_epochs),
    )
