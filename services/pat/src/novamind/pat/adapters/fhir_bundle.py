"""An actigraphy analysis as FHIR R4 Observations in a collection Bundle.

LOINC where a code exists (93832-4 "Sleep duration"); the other measures use Novamind's code
system (``novamind.core.fhir.NOVAMIND_CODES``) until LOINC codes them. Units are UCUM. Every
Observation carries the subject reference, the effective period it summarises and the device.
FHIR dateTimes with a time need a zone: naive device clocks are placed in the zone the caller
names (``timezone``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from novamind.core.fhir import LOINC, NOVAMIND_CODES, Code, collection_bundle, observation, quantity
from novamind.pat.analysis import RecordingAnalysis

SLEEP_DURATION = Code(LOINC, "93832-4", "Sleep duration")
SLEEP_EFFICIENCY = Code(NOVAMIND_CODES, "sleep-efficiency", "Sleep efficiency")
SLEEP_ONSET_LATENCY = Code(NOVAMIND_CODES, "sleep-onset-latency", "Sleep onset latency")
WASO = Code(NOVAMIND_CODES, "waso", "Wake after sleep onset")
AWAKENINGS = Code(NOVAMIND_CODES, "awakenings", "Number of awakenings")
NIGHT = Code(NOVAMIND_CODES, "night-sleep", "Actigraphic sleep for one night")
RHYTHM = Code(NOVAMIND_CODES, "rest-activity-rhythm", "Non-parametric rest-activity rhythm")
INTERDAILY_STABILITY = Code(NOVAMIND_CODES, "interdaily-stability", "Interdaily stability (IS)")
INTRADAILY_VARIABILITY = Code(NOVAMIND_CODES, "intradaily-variability", "Intradaily variability (IV)")
RELATIVE_AMPLITUDE = Code(NOVAMIND_CODES, "relative-amplitude", "Relative amplitude (RA)")
L5 = Code(NOVAMIND_CODES, "l5", "Least active 5 hours, mean activity")
M10 = Code(NOVAMIND_CODES, "m10", "Most active 10 hours, mean activity")
SLEEP_REGULARITY = Code(NOVAMIND_CODES, "sleep-regularity-index", "Sleep regularity index (SRI)")
COUNTS_PER_MINUTE = ("counts/min", "{counts}/min")


def _finite(components: list[tuple[Code, dict[str, Any]]]) -> list[tuple[Code, dict[str, Any]]]:
    """Drop components whose value could not be computed (NaN): FHIR decimals must be numbers."""
    return [(code, q) for code, q in components if math.isfinite(q["value"])]


def _aware(value: pd.Timestamp, zone: ZoneInfo) -> datetime:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize(zone, ambiguous=True, nonexistent="shift_forward")
    return ts.to_pydatetime()


def _observations(analysis: RecordingAnalysis, subject: str, zone: ZoneInfo) -> Iterator[dict[str, Any]]:
    rec = analysis.recording
    device = " ".join(p for p in (rec.device.manufacturer, rec.device.model, rec.device.format) if p)
    start, end = _aware(rec.start, zone), _aware(rec.end, zone)
    per_minute = 60.0 / rec.epoch_seconds
    rhythm = analysis.circadian
    components: list[tuple[Code, dict[str, Any]]] = [
        (INTERDAILY_STABILITY, quantity(rhythm.interdaily_stability, "1")),
        (INTRADAILY_VARIABILITY, quantity(rhythm.intradaily_variability, "1")),
    ]
    if rhythm.relative_amplitude is not None:
        components.append((RELATIVE_AMPLITUDE, quantity(rhythm.relative_amplitude, "1")))
    if rhythm.l5 is not None and rhythm.m10 is not None:
        components.append((L5, quantity(rhythm.l5.mean_activity * per_minute, *COUNTS_PER_MINUTE)))
        components.append((M10, quantity(rhythm.m10.mean_activity * per_minute, *COUNTS_PER_MINUTE)))
    if analysis.sleep_regularity_index is not None:
        components.append((SLEEP_REGULARITY, quantity(analysis.sleep_regularity_index, "1")))
    yield observation(
        code=RHYTHM,
        subject=subject,
        effective_start=start,
        effective_end=end,
        device=device,
        components=_finite(components),
        note="IS and IV on 1-h bins, RA/L5/M10 on native epochs (raw counts); see the Novamind docs.",
    )
    for night in analysis.nights:
        night_components: list[tuple[Code, dict[str, Any]]] = [
            (SLEEP_DURATION, quantity(night.total_sleep_time_min, "min")),
            (SLEEP_EFFICIENCY, quantity(night.sleep_efficiency_pct, "%")),
            (SLEEP_ONSET_LATENCY, quantity(night.sleep_onset_latency_min, "min")),
            (WASO, quantity(night.waso_min, "min")),
            (AWAKENINGS, quantity(night.n_awakenings, "{awakenings}")),
        ]
        yield observation(
            code=NIGHT,
            subject=subject,
            effective_start=_aware(night.window_start, zone),
            effective_end=_aware(night.window_end, zone),
            value=quantity(night.total_sleep_time_min, "min")
            if math.isfinite(night.total_sleep_time_min)
            else None,
            device=device,
            components=_finite(night_components),
        )


def analysis_bundle(analysis: RecordingAnalysis, *, subject: str, timezone: str = "UTC") -> dict[str, Any]:
    """The analysis as a FHIR R4 ``collection`` Bundle (JSON-ready dictionary).

    ``subject`` is a reference such as ``Patient/pt_…`` (a pseudonym, never a name);
    ``timezone`` (IANA) places naive device clock times.
    """
    zone = ZoneInfo(timezone)
    return collection_bundle(_observations(analysis, subject, zone), timestamp=datetime.now(UTC))
