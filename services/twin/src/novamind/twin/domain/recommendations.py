"""Integrated recommendations: explicit rules over the insight sections that succeeded.

Each rule has a stable id, a priority, a text for the clinician, evidence statements that cite
the numbers (with units) the rule used, and the sections it read. A rule whose evidence is
absent (section failed, not requested, value not computed) does not fire. ``symptoms`` is the
twin's own symptom history and is always available.

Rules (id: condition -> priority):

* ``safety.phq9_item9``: latest PHQ-9 item 9 > 0 -> URGENT.
* ``symptoms.phq9_severity``: latest PHQ-9 total in a Kroenke (2001) band: 5-9 mild -> LOW,
  10-14 moderate -> MEDIUM, 15-19 moderately severe and 20-27 severe -> HIGH.
* ``symptoms.gad7_severity``: latest GAD-7 total in a Spitzer (2006) band: 5-9 mild -> LOW,
  10-14 moderate -> MEDIUM, 15-21 severe -> HIGH.
* ``sleep.efficiency_decline``: sleep efficiency fell >= 10 points against the previous
  analysis -> MEDIUM.
* ``sleep.short_total_sleep_time``: mean total sleep time < 360 min over >= 3 nights -> MEDIUM.
* ``circadian.irregular_rhythm``: interdaily stability < 0.4 or intradaily variability > 1.0
  -> LOW (one of them), MEDIUM (both).
* ``forecast.phq9_crossing``: the median PHQ-9 forecast crosses 10, 15 or 20 within the
  horizon -> MEDIUM (10), HIGH (15, 20).
* ``forecast.gad7_crossing``: the median GAD-7 forecast crosses 10 or 15 -> MEDIUM (10), HIGH (15).
* ``combined.sleep_decline_and_phq9``: ``sleep.efficiency_decline`` and
  ``forecast.phq9_crossing`` both fire -> HIGH.
* ``correlation.lagged_association``: tests with FDR q <= 0.05 and |r| >= 0.3, the strongest
  per (biometric, symptom) pair, at most 3 -> LOW.
* ``medication.pgx_current_drug``: a current drug's guideline action is a dose change,
  "consider an alternative" or "avoid" -> MEDIUM, HIGH when "avoid".
* ``medication.interaction``: a moderate or high interaction warning involving a current drug
  -> MEDIUM, HIGH when high.

A forecast *crosses* a threshold T on the first forecast day whose median is >= T while the value
before it (the latest observed total, then the previous day's median) was < T; the highest
threshold crossed is reported. Thresholds are in :class:`RuleThresholds`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

SECTION_SYMPTOMS = "symptoms"
SECTION_ACTIGRAPHY = "actigraphy"
SECTION_FORECAST = "forecast"
SECTION_CORRELATIONS = "correlations"
SECTION_MEDICATIONS = "medications"


class Priority(enum.IntEnum):
    """Priority of a recommendation (same numbers as ``twin.v1.Priority``)."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    URGENT = 4


class Instrument(enum.StrEnum):
    """Symptom instruments of the twin's history."""

    PHQ9 = "phq9"
    GAD7 = "gad7"
    MOOD = "mood"


class ForecastTarget(enum.StrEnum):
    """Forecast daily scores (the daily series names)."""

    PHQ9_TOTAL = "phq9_total"
    GAD7_TOTAL = "gad7_total"
    MOOD_RATING = "mood_rating"


class GuidanceAction(enum.StrEnum):
    """What a pharmacogenomic guideline recommends for a drug."""

    STANDARD_DOSING = "standard dosing"
    REDUCE_DOSE = "reduce dose"
    INCREASE_DOSE = "increase dose"
    CONSIDER_ALTERNATIVE = "consider an alternative drug"
    AVOID = "avoid"
    NO_RECOMMENDATION = "no recommendation"
    INSUFFICIENT_DATA = "insufficient data"


class Severity(enum.IntEnum):
    """Severity of an interaction warning."""

    LOW = 1
    MODERATE = 2
    HIGH = 3


@dataclass(frozen=True, slots=True)
class SymptomScore:
    """One symptom report: total score and item responses (PHQ-9: 9, GAD-7: 7, mood: none)."""

    instrument: Instrument
    total: float
    reported_on: date
    items: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SleepSummary:
    """The metrics of one actigraphy analysis the rules read (minutes, percent, unitless 0-2)."""

    nights_analyzed: int = 0
    total_sleep_time_minutes: float | None = None
    sleep_efficiency_percent: float | None = None
    interdaily_stability: float | None = None
    intradaily_variability: float | None = None


@dataclass(frozen=True, slots=True)
class ActigraphyEvidence:
    """The latest analysis and, when there is one, the analysis before it."""

    latest: SleepSummary
    previous: SleepSummary | None = None


@dataclass(frozen=True, slots=True)
class ForecastDay:
    """The forecast distribution of one day: median and the outermost interval bounds."""

    horizon_day: int
    target_date: str
    median: float
    lower: float | None = None
    upper: float | None = None


@dataclass(frozen=True, slots=True)
class SymptomForecast:
    """A forecast of one daily score; ``interval_coverage`` is the nominal coverage (0.8)."""

    target: ForecastTarget
    days: tuple[ForecastDay, ...]
    interval_coverage: float | None = None


@dataclass(frozen=True, slots=True)
class Correlation:
    """One lagged correlation test: biometric on day t against symptom on day t + lag_days."""

    biometric: str
    symptom: str
    lag_days: int
    coefficient: float
    q_value: float
    method: str = "pearson"
    n_pairs: int = 0


@dataclass(frozen=True, slots=True)
class DrugGuidance:
    """Guideline recommendation for one drug; ``phenotypes`` are (gene, phenotype) pairs."""

    drug: str
    action: GuidanceAction
    phenotypes: tuple[tuple[str, str], ...] = ()
    guideline: str = ""
    strength: str = ""


@dataclass(frozen=True, slots=True)
class InteractionAlert:
    """An interaction warning; ``kind`` is e.g. "drug-drug-gene"."""

    victim_drug: str
    severity: Severity
    perpetrator_drug: str = ""
    gene: str = ""
    kind: str = ""


@dataclass(frozen=True, slots=True)
class MedicationEvidence:
    """Current medications (generic names) with the guidance and interactions returned for them."""

    current_medications: tuple[str, ...]
    guidance: tuple[DrugGuidance, ...] = ()
    interactions: tuple[InteractionAlert, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleThresholds:
    """Thresholds of the rules (units in the names)."""

    sleep_efficiency_drop_points: float = 10.0
    short_sleep_minutes: float = 360.0
    min_nights: int = 3
    low_interdaily_stability: float = 0.4
    high_intradaily_variability: float = 1.0
    phq9_forecast_thresholds: tuple[float, ...] = (10.0, 15.0, 20.0)
    gad7_forecast_thresholds: tuple[float, ...] = (10.0, 15.0)
    correlation_max_q: float = 0.05
    correlation_min_abs_coefficient: float = 0.3
    correlation_max_reported: int = 3


@dataclass(frozen=True, slots=True)
class RecommendationInputs:
    """What the rules read. A section is ``None`` when it was not requested or failed.

    ``symptoms`` is ascending by report time.
    """

    symptoms: tuple[SymptomScore, ...] = ()
    actigraphy: ActigraphyEvidence | None = None
    forecasts: tuple[SymptomForecast, ...] | None = None
    correlations: tuple[Correlation, ...] | None = None
    medications: MedicationEvidence | None = None
    thresholds: RuleThresholds = field(default_factory=RuleThresholds)


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One integrated recommendation."""

    rule_id: str
    priority: Priority
    text: str
    evidence: tuple[str, ...]
    sections_used: tuple[str, ...]


# ---- formatting ------------------------------------------------------------------------------


def _num(value: float, decimals: int = 1) -> str:
    """``12.0`` -> ``"12"``, ``11.46`` -> ``"11.5"``."""
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _q(value: float) -> str:
    return "q < 0.001" if value < 0.001 else f"q = {value:.2g}"


_SERIES_NAMES = {
    "phq9_total": "PHQ-9",
    "gad7_total": "GAD-7",
    "mood_rating": "mood",
    "total_sleep_time_minutes": "total sleep time",
    "sleep_efficiency_percent": "sleep efficiency",
    "sleep_efficiency": "sleep efficiency",
    "resting_heart_rate": "resting heart rate",
    "heart_rate": "heart rate",
    "steps": "steps",
}

_INSTRUMENT_NAMES = {Instrument.PHQ9: "PHQ-9", Instrument.GAD7: "GAD-7", Instrument.MOOD: "mood"}
_TARGET_NAMES = {
    ForecastTarget.PHQ9_TOTAL: "PHQ-9",
    ForecastTarget.GAD7_TOTAL: "GAD-7",
    ForecastTarget.MOOD_RATING: "mood",
}


def _series_name(name: str) -> str:
    return _SERIES_NAMES.get(name, name.replace("_", " "))


def _latest(symptoms: Sequence[SymptomScore], instrument: Instrument) -> SymptomScore | None:
    found: SymptomScore | None = None
    for score in symptoms:
        if score.instrument is instrument:
            found = score
    return found


# ---- symptom rules ---------------------------------------------------------------------------


def _phq9_item9(inputs: RecommendationInputs) -> Recommendation | None:
    latest = _latest(inputs.symptoms, Instrument.PHQ9)
    if latest is None or len(latest.items) < 9 or latest.items[8] <= 0:
        return None
    return Recommendation(
        rule_id="safety.phq9_item9",
        priority=Priority.URGENT,
        text="Assess suicide risk now: the latest PHQ-9 endorses thoughts of death or self-harm (item 9).",
        evidence=(f"PHQ-9 item 9 scored {latest.items[8]} of 3 on {latest.reported_on.isoformat()}",),
        sections_used=(SECTION_SYMPTOMS,),
    )


# (lower bound, band, priority, text) — Kroenke, Spitzer & Williams, J Gen Intern Med 2001;16:606-613.
_PHQ9_BANDS: tuple[tuple[float, str, Priority, str], ...] = (
    (20.0, "severe, 20-27", Priority.HIGH, "Severe depressive symptoms: start or adjust treatment promptly."),
    (
        15.0,
        "moderately severe, 15-19",
        Priority.HIGH,
        "Moderately severe depressive symptoms: active treatment with pharmacotherapy and/or psychotherapy.",
    ),
    (
        10.0,
        "moderate, 10-14",
        Priority.MEDIUM,
        "Moderate depressive symptoms: review the treatment plan at the next visit.",
    ),
    (5.0, "mild, 5-9", Priority.LOW, "Mild depressive symptoms: watchful waiting; repeat the PHQ-9."),
)

# Spitzer, Kroenke, Williams & Lowe, Arch Intern Med 2006;166:1092-1097.
_GAD7_BANDS: tuple[tuple[float, str, Priority, str], ...] = (
    (15.0, "severe, 15-21", Priority.HIGH, "Severe anxiety symptoms: start or adjust treatment promptly."),
    (
        10.0,
        "moderate, 10-14",
        Priority.MEDIUM,
        "Moderate anxiety symptoms: review the treatment plan at the next visit.",
    ),
    (5.0, "mild, 5-9", Priority.LOW, "Mild anxiety symptoms: monitor; repeat the GAD-7."),
)


def _severity(
    inputs: RecommendationInputs,
    instrument: Instrument,
    bands: tuple[tuple[float, str, Priority, str], ...],
    maximum: int,
    rule_id: str,
) -> Recommendation | None:
    latest = _latest(inputs.symptoms, instrument)
    if latest is None:
        return None
    for lower, band, priority, text in bands:
        if latest.total >= lower:
            name = _INSTRUMENT_NAMES[instrument]
            return Recommendation(
                rule_id=rule_id,
                priority=priority,
                text=text,
                evidence=(
                    f"latest {name} total {_num(latest.total)} of {maximum} ({band}) "
                    f"on {latest.reported_on.isoformat()}",
                ),
                sections_used=(SECTION_SYMPTOMS,),
            )
    return None


def _phq9_severity(inputs: RecommendationInputs) -> Recommendation | None:
    return _severity(inputs, Instrument.PHQ9, _PHQ9_BANDS, 27, "symptoms.phq9_severity")


def _gad7_severity(inputs: RecommendationInputs) -> Recommendation | None:
    return _severity(inputs, Instrument.GAD7, _GAD7_BANDS, 21, "symptoms.gad7_severity")


# ---- actigraphy rules ------------------------------------------------------------------------


def _sleep_efficiency_decline(inputs: RecommendationInputs) -> Recommendation | None:
    if inputs.actigraphy is None or inputs.actigraphy.previous is None:
        return None
    latest = inputs.actigraphy.latest.sleep_efficiency_percent
    previous = inputs.actigraphy.previous.sleep_efficiency_percent
    if latest is None or previous is None:
        return None
    drop = previous - latest
    if drop < inputs.thresholds.sleep_efficiency_drop_points:
        return None
    return Recommendation(
        rule_id="sleep.efficiency_decline",
        priority=Priority.MEDIUM,
        text="Sleep efficiency dropped week over week: ask about sleep and recent changes.",
        evidence=(
            f"sleep efficiency fell {_num(drop)} points this week "
            f"(from {_num(previous)}% to {_num(latest)}%)",
        ),
        sections_used=(SECTION_ACTIGRAPHY,),
    )


def _short_total_sleep_time(inputs: RecommendationInputs) -> Recommendation | None:
    if inputs.actigraphy is None:
        return None
    latest = inputs.actigraphy.latest
    tst = latest.total_sleep_time_minutes
    if tst is None or latest.nights_analyzed < inputs.thresholds.min_nights:
        return None
    if tst >= inputs.thresholds.short_sleep_minutes:
        return None
    return Recommendation(
        rule_id="sleep.short_total_sleep_time",
        priority=Priority.MEDIUM,
        text="Short sleep: review sleep hygiene, insomnia and medication effects on sleep.",
        evidence=(
            f"mean total sleep time {_num(tst / 60.0)} h ({latest.nights_analyzed} nights), "
            f"below {_num(inputs.thresholds.short_sleep_minutes / 60.0)} h",
        ),
        sections_used=(SECTION_ACTIGRAPHY,),
    )


def _irregular_rhythm(inputs: RecommendationInputs) -> Recommendation | None:
    if inputs.actigraphy is None:
        return None
    latest = inputs.actigraphy.latest
    thresholds = inputs.thresholds
    evidence: list[str] = []
    if (
        latest.interdaily_stability is not None
        and latest.interdaily_stability < thresholds.low_interdaily_stability
    ):
        evidence.append(
            f"interdaily stability {latest.interdaily_stability:.2f} "
            f"(below {_num(thresholds.low_interdaily_stability, 2)}; 0-1)"
        )
    if (
        latest.intradaily_variability is not None
        and latest.intradaily_variability > thresholds.high_intradaily_variability
    ):
        evidence.append(
            f"intradaily variability {latest.intradaily_variability:.2f} "
            f"(above {_num(thresholds.high_intradaily_variability, 2)}; 0-2)"
        )
    if not evidence:
        return None
    return Recommendation(
        rule_id="circadian.irregular_rhythm",
        priority=Priority.MEDIUM if len(evidence) == 2 else Priority.LOW,
        text="Irregular or fragmented rest-activity rhythm: discuss daily routine and sleep timing.",
        evidence=tuple(evidence),
        sections_used=(SECTION_ACTIGRAPHY,),
    )


# ---- forecast rules --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Crossing:
    threshold: float
    day: ForecastDay
    coverage: float | None


def _crossing(
    forecast: SymptomForecast, baseline: float | None, thresholds: Sequence[float]
) -> _Crossing | None:
    """The highest threshold the median crosses upward within the horizon, at its first day."""
    days = sorted(forecast.days, key=lambda d: d.horizon_day)
    for threshold in sorted(thresholds, reverse=True):
        before = baseline
        for day in days:
            if before is not None and before < threshold <= day.median:
                return _Crossing(threshold, day, forecast.interval_coverage)
            before = day.median
    return None


def _forecast_crossing_evidence(name: str, crossing: _Crossing) -> str:
    day = crossing.day
    unit = "day" if day.horizon_day == 1 else "days"
    text = (
        f"forecast {name} crosses {_num(crossing.threshold)} within {day.horizon_day} {unit} "
        f"(median {_num(day.median)} on {day.target_date}"
    )
    if day.lower is not None and day.upper is not None:
        coverage = f"{_num(crossing.coverage * 100, 0)}% " if crossing.coverage else ""
        text += f", {coverage}interval {_num(day.lower)}-{_num(day.upper)}"
    return text + ")"


def _forecast_crossing(
    inputs: RecommendationInputs,
    target: ForecastTarget,
    instrument: Instrument,
    thresholds: Sequence[float],
    rule_id: str,
) -> Recommendation | None:
    if inputs.forecasts is None:
        return None
    forecast = next((f for f in inputs.forecasts if f.target is target), None)
    if forecast is None:
        return None
    latest = _latest(inputs.symptoms, instrument)
    crossing = _crossing(forecast, None if latest is None else latest.total, thresholds)
    if crossing is None:
        return None
    name = _TARGET_NAMES[target]
    evidence = [_forecast_crossing_evidence(name, crossing)]
    sections = [SECTION_FORECAST]
    if latest is not None:
        evidence.append(f"latest {name} total {_num(latest.total)} on {latest.reported_on.isoformat()}")
        sections.append(SECTION_SYMPTOMS)
    high = crossing.threshold >= 15.0
    return Recommendation(
        rule_id=rule_id,
        priority=Priority.HIGH if high else Priority.MEDIUM,
        text=f"{name} is forecast to worsen past {_num(crossing.threshold)}: "
        + ("review soon." if high else "review at the next visit."),
        evidence=tuple(evidence),
        sections_used=tuple(sections),
    )


def _phq9_crossing(inputs: RecommendationInputs) -> Recommendation | None:
    return _forecast_crossing(
        inputs,
        ForecastTarget.PHQ9_TOTAL,
        Instrument.PHQ9,
        inputs.thresholds.phq9_forecast_thresholds,
        "forecast.phq9_crossing",
    )


def _gad7_crossing(inputs: RecommendationInputs) -> Recommendation | None:
    return _forecast_crossing(
        inputs,
        ForecastTarget.GAD7_TOTAL,
        Instrument.GAD7,
        inputs.thresholds.gad7_forecast_thresholds,
        "forecast.gad7_crossing",
    )


def _sleep_decline_and_phq9(inputs: RecommendationInputs) -> Recommendation | None:
    sleep = _sleep_efficiency_decline(inputs)
    mood = _phq9_crossing(inputs)
    if sleep is None or mood is None:
        return None
    return Recommendation(
        rule_id="combined.sleep_decline_and_phq9",
        priority=Priority.HIGH,
        text="Review sleep and mood together: sleep is worsening and depressive symptoms "
        "are forecast to rise.",
        evidence=(*sleep.evidence, *mood.evidence),
        sections_used=tuple(dict.fromkeys((*sleep.sections_used, *mood.sections_used))),
    )


# ---- correlation rule ------------------------------------------------------------------------


def _lag_phrase(symptom: str, lag_days: int) -> str:
    if lag_days == 0:
        return f"same-day {symptom}"
    if lag_days == 1:
        return f"next-day {symptom}"
    return f"{symptom} {lag_days} days later"


def _lagged_association(inputs: RecommendationInputs) -> Recommendation | None:
    if inputs.correlations is None:
        return None
    thresholds = inputs.thresholds
    strongest: dict[tuple[str, str], Correlation] = {}
    for test in inputs.correlations:
        if test.q_value > thresholds.correlation_max_q:
            continue
        if abs(test.coefficient) < thresholds.correlation_min_abs_coefficient:
            continue
        key = (test.biometric, test.symptom)
        best = strongest.get(key)
        if best is None or abs(test.coefficient) > abs(best.coefficient):
            strongest[key] = test
    if not strongest:
        return None
    chosen = sorted(strongest.values(), key=lambda t: (-abs(t.coefficient), t.q_value))
    evidence = []
    for test in chosen[: thresholds.correlation_max_reported]:
        unit = "day" if test.lag_days == 1 else "days"
        days = f", {test.n_pairs} days" if test.n_pairs else ""
        evidence.append(
            f"{_series_name(test.biometric)} correlate with "
            f"{_lag_phrase(_series_name(test.symptom), test.lag_days)} r = {test.coefficient:.2f}, "
            f"lag {test.lag_days} {unit}, {_q(test.q_value)} ({test.method.capitalize()}{days})"
        )
    return Recommendation(
        rule_id="correlation.lagged_association",
        priority=Priority.LOW,
        text="Biometric signals move with symptoms: discuss them with the patient "
        "(associations, not proof of cause).",
        evidence=tuple(evidence),
        sections_used=(SECTION_CORRELATIONS,),
    )


# ---- medication rules ------------------------------------------------------------------------

_ACTIONABLE = frozenset(
    {
        GuidanceAction.REDUCE_DOSE,
        GuidanceAction.INCREASE_DOSE,
        GuidanceAction.CONSIDER_ALTERNATIVE,
        GuidanceAction.AVOID,
    }
)


def _current(medications: MedicationEvidence) -> frozenset[str]:
    return frozenset(name.strip().lower() for name in medications.current_medications if name.strip())


def _pgx_current_drug(inputs: RecommendationInputs) -> Recommendation | None:
    if inputs.medications is None:
        return None
    current = _current(inputs.medications)
    evidence: list[str] = []
    avoid = False
    for guidance in inputs.medications.guidance:
        if guidance.drug.lower() not in current or guidance.action not in _ACTIONABLE:
            continue
        avoid = avoid or guidance.action is GuidanceAction.AVOID
        phenotypes = ", ".join(f"{gene} {phenotype}" for gene, phenotype in guidance.phenotypes)
        source = ", ".join(part for part in (guidance.guideline, guidance.strength) if part)
        evidence.append(
            f"{guidance.drug}: {phenotypes or 'genotype'} -> {guidance.action.value}"
            + (f" ({source})" if source else "")
        )
    if not evidence:
        return None
    return Recommendation(
        rule_id="medication.pgx_current_drug",
        priority=Priority.HIGH if avoid else Priority.MEDIUM,
        text="A current medication has actionable pharmacogenomic guidance: review drug and dose.",
        evidence=tuple(evidence),
        sections_used=(SECTION_MEDICATIONS,),
    )


def _interaction(inputs: RecommendationInputs) -> Recommendation | None:
    if inputs.medications is None:
        return None
    current = _current(inputs.medications)
    evidence: list[str] = []
    worst = Severity.LOW
    for alert in inputs.medications.interactions:
        if alert.severity < Severity.MODERATE:
            continue
        involved = {alert.victim_drug.lower(), alert.perpetrator_drug.lower()} & current
        if not involved:
            continue
        worst = max(worst, alert.severity)
        pair = alert.victim_drug + (f" with {alert.perpetrator_drug}" if alert.perpetrator_drug else "")
        detail = ", ".join(part for part in (alert.kind, alert.gene) if part)
        line = f"{pair}" + (f" ({detail})" if detail else "") + f": severity {alert.severity.name.lower()}"
        if line not in evidence:
            evidence.append(line)
    if not evidence:
        return None
    return Recommendation(
        rule_id="medication.interaction",
        priority=Priority.HIGH if worst is Severity.HIGH else Priority.MEDIUM,
        text="Interaction involving a current medication: review the combination.",
        evidence=tuple(evidence),
        sections_used=(SECTION_MEDICATIONS,),
    )


RULES = (
    _phq9_item9,
    _phq9_severity,
    _gad7_severity,
    _sleep_efficiency_decline,
    _short_total_sleep_time,
    _irregular_rhythm,
    _phq9_crossing,
    _gad7_crossing,
    _sleep_decline_and_phq9,
    _lagged_association,
    _pgx_current_drug,
    _interaction,
)


def recommend(inputs: RecommendationInputs) -> list[Recommendation]:
    """Every rule that fires on ``inputs``, most urgent first (then by rule id)."""
    fired = [rec for rule in RULES if (rec := rule(inputs)) is not None]
    return sorted(fired, key=lambda rec: (-rec.priority, rec.rule_id))
