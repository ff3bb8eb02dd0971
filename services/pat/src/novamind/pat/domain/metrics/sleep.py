"""Sleep outcomes from an epoch scoring, rest periods, and daily activity with wear time.

A *scoring* is a 0/1 Series on a regular ``DatetimeIndex`` of local epoch start times where
1 = sleep (or rest), as every function in :mod:`.scoring` returns. Durations are in minutes,
clock times in local time, percentages in 0-100.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from novamind.core.errors import ValidationError

from ._epochs import as_float, epoch_length, epochs_per, mark_ranges, runs, seconds_of_day
from .scoring import detect_rest_crespo, detect_rest_roenneberg

MINUTES_PER_DAY = 1440.0


def _minutes(n_epochs: int | float, epoch: pd.Timedelta) -> float:
    return float(n_epochs) * epoch.total_seconds() / 60.0


def _clock_minutes(ts: pd.Timestamp) -> float:
    return ts.hour * 60 + ts.minute + ts.second / 60


# --- Whole-recording summaries -------------------------------------------------------------------


def percent_scored_sleep(scoring: pd.Series) -> float:
    """Share of epochs scored sleep (1), in percent (0-100)."""
    epoch_length(scoring)
    return float(np.mean(scoring.to_numpy() == 1) * 100)


def sleep_regularity_index(scoring: pd.Series) -> float:
    """Sleep regularity index (SRI), -100 (random) to 100 (identical days).

    For each clock time, the share of consecutive-day pairs with the same state 24 h apart;
    SRI = 200 * mean over clock times - 100. Phillips et al. 2017, Sci Rep 7:3216. As
    pyActigraphy 1.2.2, each clock time weighs the same whatever its number of day pairs (equal
    to Phillips' pooled mean on whole days); clock times seen on a single day are left out.
    NaN when no clock time is seen twice.
    """
    epoch_length(scoring)
    state = scoring.to_numpy().astype(np.float64)
    clock = seconds_of_day(pd.DatetimeIndex(scoring.index))
    order = np.lexsort((np.arange(state.size), clock))  # by clock time, then chronologically
    by_clock, values = clock[order], state[order]
    same_slot = by_clock[1:] == by_clock[:-1]
    agree = (values[1:] == values[:-1]).astype(np.float64)
    pairs = pd.Series(agree[same_slot]).groupby(by_clock[1:][same_slot]).mean()
    return float(200 * pairs.mean() - 100) if pairs.size else math.nan


def sleep_midpoint(scoring: pd.Series) -> float:
    """Circular mean clock time of all epochs scored sleep, minutes after local midnight [0, 1440).

    As pyActigraphy 1.2.2 ``SleepMidPoint``. NaN when no epoch is scored sleep.
    """
    asleep = scoring.index[scoring.to_numpy() == 1]
    if asleep.size == 0:
        return math.nan
    angle = seconds_of_day(pd.DatetimeIndex(asleep)) / 86400.0 * 2 * np.pi
    mean = math.atan2(float(np.sin(angle).sum()), float(np.cos(angle).sum()))
    return (mean / (2 * np.pi) * MINUTES_PER_DAY) % MINUTES_PER_DAY


def fraction_sleep_over_daytime(scoring: pd.Series, start: dt.time = dt.time(12), hours: float = 5) -> float:
    """fSoD: share (0-1) of epochs scored sleep/rest between ``start`` and ``start + hours``.

    Both bounds are included, as pyActigraphy 1.2.2 ``fSoD`` (``between_time``).
    """
    epoch_length(scoring)
    clock = seconds_of_day(pd.DatetimeIndex(scoring.index))
    first = start.hour * 3600 + start.minute * 60 + start.second
    last = (first + round(hours * 3600)) % 86400
    inside = (clock >= first) & (clock <= last) if first <= last else (clock >= first) | (clock <= last)
    return float(np.mean(scoring.to_numpy()[inside] == 1)) if inside.any() else math.nan


# --- Bouts and main rest periods -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bout:
    """A run of consecutive epochs scored 1: ``start`` of its first epoch, ``end`` exclusive."""

    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60.0


def rest_bouts(scoring: pd.Series) -> list[Bout]:
    """Every run of epochs scored 1, in time order."""
    epoch = epoch_length(scoring)
    starts, lengths, values = runs(np.asarray(scoring.to_numpy() == 1, dtype=np.int8))
    index = pd.DatetimeIndex(scoring.index)
    return [
        Bout(start=index[s], end=index[s] + n * epoch)
        for s, n in zip(starts[values == 1], lengths[values == 1], strict=True)
    ]


@dataclass(frozen=True, slots=True)
class RestPeriod:
    """The main rest period of one night: the night of ``night`` runs from its noon to the next."""

    night: dt.date
    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60.0


def find_rest_periods(
    counts: pd.Series, method: Literal["crespo", "roenneberg"] = "crespo"
) -> list[RestPeriod]:
    """The longest rest bout of each night (noon to noon, local time), detected from counts.

    ``method`` picks :func:`.scoring.detect_rest_crespo` (Crespo et al. 2012) or
    :func:`.scoring.detect_rest_roenneberg` (Roenneberg et al. 2015). A bout belongs to the
    night in which its midpoint falls. Raises ``ValidationError`` for another method.
    """
    if method == "crespo":
        rest = detect_rest_crespo(counts)
    elif method == "roenneberg":
        rest = detect_rest_roenneberg(counts)
    else:
        raise ValidationError(f"unknown rest detection method {method!r}", field="method")
    longest: dict[dt.date, Bout] = {}
    for bout in rest_bouts(rest):
        night = (bout.start + (bout.end - bout.start) / 2 - pd.Timedelta(hours=12)).date()
        if night not in longest or bout.minutes > longest[night].minutes:
            longest[night] = bout
    return [RestPeriod(night=n, start=b.start, end=b.end) for n, b in sorted(longest.items())]


# --- One night -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NightSleep:
    """Sleep outcomes within one rest window (in bed to out of bed).

    ``sleep_onset`` is the start of the first epoch scored sleep and ``final_awakening`` the end
    of the last; both None (and the derived values NaN) when no epoch is scored sleep.
    """

    window_start: pd.Timestamp
    window_end: pd.Timestamp
    time_in_bed_min: float
    total_sleep_time_min: float
    sleep_efficiency_pct: float
    sleep_onset_latency_min: float
    waso_min: float
    n_awakenings: int
    mean_awakening_min: float
    sleep_onset: pd.Timestamp | None
    final_awakening: pd.Timestamp | None

    @property
    def sleep_midpoint(self) -> pd.Timestamp | None:
        """Halfway between sleep onset and final awakening (local time)."""
        if self.sleep_onset is None or self.final_awakening is None:
            return None
        return self.sleep_onset + (self.final_awakening - self.sleep_onset) / 2


def night_sleep(scoring: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> NightSleep:
    """Sleep outcomes for the epochs starting in [``start``, ``end``).

    Time in bed (TIB) = window length; total sleep time (TST) = epochs scored sleep; sleep
    efficiency = TST / TIB x 100; sleep onset latency (SOL) = start to the first sleep epoch;
    wake after sleep onset (WASO) = wake between the first and last sleep epochs; awakenings =
    runs of wake between two sleep epochs. All in minutes. Standard actigraphy definitions
    (Ancoli-Israel et al. 2003, Sleep 26(3):342-392). Raises ``ValidationError`` when the window
    holds no epoch.
    """
    epoch = epoch_length(scoring)
    index = pd.DatetimeIndex(scoring.index)
    inside = (index >= start) & (index < end)
    asleep = np.asarray(scoring.to_numpy()[inside] == 1, dtype=np.int8)
    if asleep.size == 0:
        raise ValidationError("the rest window holds no epoch of the scoring", field="window")
    tib = _minutes(asleep.size, epoch)
    tst = _minutes(int(asleep.sum()), epoch)
    sleep_at = np.flatnonzero(asleep)
    if sleep_at.size == 0:
        return NightSleep(start, end, tib, 0.0, 0.0, math.nan, math.nan, 0, math.nan, None, None)
    first, last = int(sleep_at[0]), int(sleep_at[-1])
    _, lengths, values = runs(asleep[first : last + 1])
    wake_runs = lengths[values == 0]
    times = index[inside]
    return NightSleep(
        window_start=start,
        window_end=end,
        time_in_bed_min=tib,
        total_sleep_time_min=tst,
        sleep_efficiency_pct=tst / tib * 100,
        sleep_onset_latency_min=(times[first] - start).total_seconds() / 60.0,
        waso_min=_minutes(int(wake_runs.sum()), epoch),
        n_awakenings=int(wake_runs.size),
        mean_awakening_min=_minutes(float(wake_runs.mean()), epoch) if wake_runs.size else math.nan,
        sleep_onset=times[first],
        final_awakening=times[last] + epoch,
    )


def nights_sleep(scoring: pd.Series, periods: Sequence[RestPeriod]) -> list[NightSleep]:
    """:func:`night_sleep` for each rest period (e.g. from :func:`find_rest_periods`)."""
    return [night_sleep(scoring, p.start, p.end) for p in periods]


# --- Timing variability across nights ------------------------------------------------------------


def circular_sd_minutes(clock_minutes: Sequence[float]) -> float:
    """Circular standard deviation of clock times given in minutes after midnight, in minutes.

    sqrt(-2 ln R) x 1440 / 2 pi, R the mean resultant length on the 24-h circle (Fisher 1993,
    Statistical Analysis of Circular Data), so 23:50 and 00:10 are 20 min apart, not 23 h 40.
    NaN for fewer than two times.
    """
    values = np.asarray(clock_minutes, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size < 2:
        return math.nan
    angle = values / MINUTES_PER_DAY * 2 * np.pi
    r = math.hypot(float(np.cos(angle).mean()), float(np.sin(angle).mean()))
    return math.sqrt(-2 * math.log(min(r, 1.0))) * MINUTES_PER_DAY / (2 * np.pi)


@dataclass(frozen=True, slots=True)
class SleepTimingVariability:
    """Night-to-night variability of sleep timing, circular SD in minutes."""

    onset_sd_min: float
    midpoint_sd_min: float
    n_nights: int


def sleep_timing_variability(nights: Sequence[NightSleep]) -> SleepTimingVariability:
    """Circular SD (minutes) of sleep onset and sleep midpoint clock times across ``nights``."""
    onsets = [_clock_minutes(n.sleep_onset) for n in nights if n.sleep_onset is not None]
    midpoints = [_clock_minutes(m) for n in nights if (m := n.sleep_midpoint) is not None]
    return SleepTimingVariability(
        onset_sd_min=circular_sd_minutes(onsets),
        midpoint_sd_min=circular_sd_minutes(midpoints),
        n_nights=len(onsets),
    )


# --- Daily activity, wear time and valid days ----------------------------------------------------


def nonwear(counts: pd.Series, min_zero_run: pd.Timedelta = pd.Timedelta(minutes=60)) -> pd.Series:
    """True on epochs judged not worn: missing, or inside a run of zeros lasting ``min_zero_run``.

    The 60-min default follows Troiano et al. 2008, Med Sci Sports Exerc 40(1):181-188 (without
    their 2-min allowance for small counts inside the run).
    """
    values = as_float(counts)
    min_epochs = epochs_per(min_zero_run, epoch_length(values), "the zero-run length")
    x = values.to_numpy()
    zero = np.asarray(x == 0, dtype=np.int8)
    starts, lengths, state = runs(zero)
    long_runs = (state == 1) & (lengths >= min_epochs)
    in_long_zero_run = mark_ranges(x.size, starts[long_runs], starts[long_runs] + lengths[long_runs])
    return pd.Series(np.isnan(x) | in_long_zero_run, index=values.index, name="nonwear")


def daily_activity(
    counts: pd.Series,
    *,
    min_wear: pd.Timedelta = pd.Timedelta(hours=16),
    min_zero_run: pd.Timedelta = pd.Timedelta(minutes=60),
) -> pd.DataFrame:
    """Per local calendar day: total counts (worn epochs), wear minutes, and whether it is valid.

    Columns ``total_counts`` (counts per day over worn epochs), ``wear_min`` (minutes) and
    ``valid`` (at least ``min_wear`` of wear; 16 h by default, GGIR's 24-h valid-day criterion,
    van Hees et al. 2015, PLoS One 10(11):e0142533). Non-wear as :func:`nonwear`.
    """
    values = as_float(counts)
    epoch = epoch_length(values)
    worn = ~nonwear(values, min_zero_run)
    total = values.where(worn).resample("1D").sum()
    wear_min = worn.astype(np.float64).resample("1D").sum() * epoch.total_seconds() / 60.0
    return pd.DataFrame(
        {"total_counts": total, "wear_min": wear_min, "valid": wear_min >= min_wear.total_seconds() / 60.0}
    )
