"""Analyse a recording: the clinical sleep and circadian summary a clinician reads.

This use case strings the domain algorithms together in one documented way:

* circadian rhythm (IS, IV at 1-h bins; RA, L5, M10 on native epochs) on raw counts and on
  epochs binarised as count > 4 (pyActigraphy's conventions, see ``domain.metrics``);
* sleep/wake by Cole-Kripke (``mean`` settings, Webster rescoring) and Sadeh;
* the main rest period of each night by Crespo, and per-night sleep outcomes inside it scored by
  Cole-Kripke; timing variability and the sleep regularity index. A night is reported only when
  it is complete and worn: its rest period neither touches the first or last epoch of the
  recording, nor is more than half non-wear (60-min zero runs) — a device left on a table
  would otherwise read as a day of perfect sleep;
* fragmentation (kRA, kAR), a 24-h cosinor, daily activity with wear time and valid days.

:func:`to_json` gives the stable JSON shape of ``novamind-pat metrics --json``: L5/M10 values
on raw counts are mean counts per minute (pyActigraphy reports them per epoch; the two agree for
1-min epochs), and on binarised epochs the fraction of active epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from novamind.core.errors import ValidationError
from novamind.pat.domain.metrics import circadian, scoring, sleep
from novamind.pat.domain.metrics.circadian import ActivityWindow, CosinorFit
from novamind.pat.domain.recording import DeviceInfo, Recording

BINARIZE_THRESHOLD = 4  # counts per epoch above which an epoch is "active"
MAX_NIGHT_NON_WEAR_FRACTION = 0.5  # nights more non-wear than this are not sleep data


@dataclass(frozen=True, slots=True)
class CircadianSummary:
    """Non-parametric rhythm measures; windows are None for recordings shorter than a day."""

    interdaily_stability: float
    intradaily_variability: float
    relative_amplitude: float | None
    l5: ActivityWindow | None
    m10: ActivityWindow | None


@dataclass(frozen=True)
class RecordingAnalysis:
    recording: Recording
    circadian: CircadianSummary
    circadian_binarized: CircadianSummary
    cosinor: CosinorFit | None
    cole_kripke: pd.Series | None
    sadeh: pd.Series
    nights: list[sleep.NightSleep]
    timing: sleep.SleepTimingVariability | None
    sleep_regularity_index: float | None
    k_ra: float | None
    k_ar: float | None
    daily: pd.DataFrame
    non_wear: pd.Series


def week_recording(values: np.ndarray, index: pd.DatetimeIndex, timezone: str | None) -> Recording:
    """A minute-level week (counts per minute, NaN = missing) as a Recording to analyse."""
    return Recording(
        activity=pd.Series(values, index=index),
        epoch_seconds=60.0,
        device=DeviceInfo(format="minute week"),
        timezone=timezone,
    )


def _circadian(counts: pd.Series, *, binarize: bool) -> CircadianSummary:
    kwargs: dict[str, Any] = {"binarize": binarize, "threshold": BINARIZE_THRESHOLD}
    return CircadianSummary(
        interdaily_stability=circadian.interdaily_stability(counts, freq="1h", **kwargs),
        intradaily_variability=circadian.intradaily_variability(counts, freq="1h", **kwargs),
        relative_amplitude=circadian.relative_amplitude(counts, **kwargs),
        l5=circadian.l5(counts, **kwargs),
        m10=circadian.m10(counts, **kwargs),
    )


def _optional(compute: Any) -> Any:
    """The value of ``compute()``, or None when the recording is too short or unsuitable for it."""
    try:
        return compute()
    except ValidationError:
        return None


def complete_worn_periods(
    periods: list[sleep.RestPeriod], non_wear: pd.Series, recording: Recording
) -> list[sleep.RestPeriod]:
    """The rest periods that are whole nights of worn data (see the module docstring)."""
    first, last = recording.start, pd.Timestamp(recording.activity.index[-1])
    kept = []
    for period in periods:
        if period.start <= first or period.end >= last:
            continue
        inside = non_wear[(non_wear.index >= period.start) & (non_wear.index < period.end)]
        if inside.size and float(inside.mean()) > MAX_NIGHT_NON_WEAR_FRACTION:
            continue
        kept.append(period)
    return kept


def analyse_recording(recording: Recording) -> RecordingAnalysis:
    """The full analysis of ``recording`` (see the module docstring for the methods)."""
    counts = recording.activity
    if counts.notna().sum() == 0:
        raise ValidationError("the recording holds no activity counts", field="activity")
    ck = _optional(lambda: scoring.score_cole_kripke(counts, "mean"))
    non_wear = sleep.nonwear(counts)
    rest = _optional(lambda: sleep.find_rest_periods(counts, "crespo")) or []
    nights = (
        sleep.nights_sleep(ck, complete_worn_periods(rest, non_wear, recording)) if ck is not None else []
    )
    return RecordingAnalysis(
        recording=recording,
        circadian=_circadian(counts, binarize=False),
        circadian_binarized=_circadian(counts, binarize=True),
        cosinor=_optional(lambda: circadian.cosinor(counts)),
        cole_kripke=ck,
        sadeh=scoring.score_sadeh(counts),
        nights=nights,
        timing=sleep.sleep_timing_variability(nights) if len(nights) >= 2 else None,
        sleep_regularity_index=_optional(lambda: sleep.sleep_regularity_index(ck))
        if ck is not None
        else None,
        k_ra=_optional(lambda: circadian.k_ra(counts, BINARIZE_THRESHOLD)),
        k_ar=_optional(lambda: circadian.k_ar(counts, BINARIZE_THRESHOLD)),
        daily=sleep.daily_activity(counts),
        non_wear=non_wear,
    )


# ---- the stable JSON shape ------------------------------------------------------------------


def _number(value: float | None, digits: int = 6) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


def _clock(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return value.strftime("%H:%M")
    if hasattr(value, "strftime"):
        return str(value.strftime("%H:%M"))
    return str(value)[:5]


def _iso(value: pd.Timestamp | None) -> str | None:
    return None if value is None else value.isoformat()


def _window(window: ActivityWindow | None, per_minute: float) -> dict[str, Any] | None:
    if window is None:
        return None
    return {"value": _number(window.mean_activity * per_minute), "onset": _clock(window.onset)}


def _circadian_json(summary: CircadianSummary, per_minute: float) -> dict[str, Any]:
    return {
        "IS": _number(summary.interdaily_stability),
        "IV": _number(summary.intradaily_variability),
        "RA": _number(summary.relative_amplitude),
        "L5": _window(summary.l5, per_minute),
        "M10": _window(summary.m10, per_minute),
    }


def _night_json(night: sleep.NightSleep) -> dict[str, Any]:
    return {
        "in_bed": _iso(night.window_start),
        "out_of_bed": _iso(night.window_end),
        "time_in_bed_min": _number(night.time_in_bed_min, 1),
        "total_sleep_time_min": _number(night.total_sleep_time_min, 1),
        "sleep_efficiency_pct": _number(night.sleep_efficiency_pct, 2),
        "sleep_onset_latency_min": _number(night.sleep_onset_latency_min, 1),
        "waso_min": _number(night.waso_min, 1),
        "awakenings": night.n_awakenings,
        "mean_awakening_min": _number(night.mean_awakening_min, 1),
        "sleep_onset": _iso(night.sleep_onset),
        "final_awakening": _iso(night.final_awakening),
        "sleep_midpoint": _iso(night.sleep_midpoint),
    }


def to_json(analysis: RecordingAnalysis) -> dict[str, Any]:
    """The stable JSON document of ``novamind-pat metrics --json`` (more keys may be added)."""
    rec = analysis.recording
    per_minute = 60.0 / rec.epoch_seconds
    fraction = {
        "cole_kripke": _number(float(analysis.cole_kripke.mean()))
        if analysis.cole_kripke is not None
        else None,
        "sadeh": _number(float(analysis.sadeh.mean())),
    }
    cosinor = analysis.cosinor
    daily = analysis.daily
    return {
        "recording": {
            "start": rec.start.isoformat(),
            "end": rec.end.isoformat(),
            "epoch_seconds": rec.epoch_seconds,
            "minutes": _number(rec.minutes),
            "format": rec.device.format,
            "device": " ".join(p for p in (rec.device.manufacturer, rec.device.model) if p) or None,
            "epochs_missing": int(rec.activity.isna().sum()),
        },
        "circadian": _circadian_json(analysis.circadian, per_minute),
        "circadian_binarized": _circadian_json(analysis.circadian_binarized, 1.0),
        "sleep": {
            "fraction_sleep": fraction,
            "nights": [_night_json(n) for n in analysis.nights],
            "sleep_regularity_index": _number(analysis.sleep_regularity_index, 2),
            "sleep_onset_sd_min": _number(analysis.timing.onset_sd_min, 1) if analysis.timing else None,
            "sleep_midpoint_sd_min": _number(analysis.timing.midpoint_sd_min, 1) if analysis.timing else None,
        },
        "fragmentation": {"kRA": _number(analysis.k_ra), "kAR": _number(analysis.k_ar)},
        "cosinor": None
        if cosinor is None
        else {
            "mesor": _number(cosinor.mesor),
            "amplitude": _number(cosinor.amplitude),
            "acrophase_rad": _number(cosinor.acrophase_rad),
            "acrophase": _clock(cosinor.acrophase_time),
        },
        "activity": {
            "days": [
                {
                    "date": str(pd.Timestamp(str(day)).date()),
                    "total_counts": _number(float(row["total_counts"]), 1),
                    "wear_min": _number(float(row["wear_min"]), 1),
                    "valid": bool(row["valid"]),
                }
                for day, row in daily.iterrows()
            ],
            "valid_days": int(daily["valid"].sum()) if len(daily) else 0,
            "non_wear_min": _number(float(analysis.non_wear.sum()) * rec.epoch_seconds / 60.0, 1),
        },
    }
