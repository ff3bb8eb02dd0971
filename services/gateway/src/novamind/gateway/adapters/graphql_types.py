"""GraphQL output types of patient data, each built from the twin's protobuf messages.

Units follow the contracts in ``proto/``: minutes, percent (0-100), fractions (0-1), counts per
minute, scores with their instrument's range. Coded values that the dashboard only displays
(recommendation actions, call statuses, ...) are the protobuf enum names without their prefix.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import strawberry
from google.protobuf.timestamp_pb2 import Timestamp
from strawberry.scalars import JSON

from novamind.api.actigraphy.v1 import actigraphy_pb2
from novamind.api.common.v1 import common_pb2
from novamind.api.correlation.v1 import correlation_pb2
from novamind.api.forecasting.v1 import forecasting_pb2
from novamind.api.pharmacogenomics.v1 import pharmacogenomics_pb2
from novamind.api.twin.v1 import twin_pb2
from novamind.core.errors import DataProcessingError

# ---- conversion helpers -----------------------------------------------------------------------


def timestamp(message: Any, field: str) -> datetime | None:
    """A protobuf Timestamp field as an aware UTC datetime; None when unset."""
    if not message.HasField(field):
        return None
    value: Timestamp = getattr(message, field)
    return value.ToDatetime(tzinfo=UTC)


def optional(message: Any, field: str) -> Any:
    """A proto3 ``optional`` scalar; None when unset."""
    return getattr(message, field) if message.HasField(field) else None


def label(enum_type: Any, value: int, prefix: str) -> str:
    """A protobuf enum value's name without its prefix (``CALL_STATUS_CALLED`` -> ``CALLED``)."""
    try:
        name = str(enum_type.Name(value))
    except ValueError:
        return "UNSPECIFIED"
    return name.removeprefix(prefix)


# ---- enums ---------------------------------------------------------------------------------------


@strawberry.enum(description="Patient-reported instruments.")
class SymptomInstrument(enum.Enum):
    PHQ9 = "PHQ9"
    GAD7 = "GAD7"
    MOOD = "MOOD"


@strawberry.enum(description="Daily symptom scores the forecasting service predicts.")
class ForecastTarget(enum.Enum):
    PHQ9_TOTAL = "PHQ9_TOTAL"
    GAD7_TOTAL = "GAD7_TOTAL"
    MOOD_RATING = "MOOD_RATING"

    @property
    def proto_name(self) -> str:
        return f"TARGET_SYMPTOM_{self.value}"


@strawberry.enum(description="Priority of an integrated recommendation.")
class Priority(enum.Enum):
    UNSPECIFIED = "UNSPECIFIED"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    URGENT = "URGENT"


@strawberry.enum(description="Insight sections.")
class InsightSection(enum.Enum):
    ACTIGRAPHY = "actigraphy"
    FORECAST = "forecast"
    CORRELATIONS = "correlations"
    MEDICATIONS = "medications"


_INSTRUMENT_FROM_PB = {
    common_pb2.SYMPTOM_INSTRUMENT_PHQ9: SymptomInstrument.PHQ9,
    common_pb2.SYMPTOM_INSTRUMENT_GAD7: SymptomInstrument.GAD7,
    common_pb2.SYMPTOM_INSTRUMENT_MOOD: SymptomInstrument.MOOD,
}


# ---- shared ----------------------------------------------------------------------------------------


@strawberry.type(description="Which model produced a result, so every number traces to its weights.")
class ModelInfo:
    name: str
    version: str
    weights_sha256: str
    trained_at: datetime | None
    training_data: str
    quality_metrics: JSON = strawberry.field(description="Held-out quality, e.g. {auroc: 0.61}.")
    runtime_device: str

    @classmethod
    def from_pb(cls, m: common_pb2.ModelInfo) -> ModelInfo:
        return cls(
            name=m.name,
            version=m.version,
            weights_sha256=m.weights_sha256,
            trained_at=timestamp(m, "trained_at"),
            training_data=m.training_data,
            quality_metrics=JSON(dict(m.quality_metrics)),
            runtime_device=m.runtime_device,
        )


def model_or_none(message: Any, field: str = "model") -> ModelInfo | None:
    return ModelInfo.from_pb(getattr(message, field)) if message.HasField(field) else None


@strawberry.type(description="A measured amount with its UCUM unit.")
class Quantity:
    value: float
    unit: str


# ---- twin ------------------------------------------------------------------------------------------


@strawberry.type(description="A stored symptom report.")
class SymptomReport:
    report_id: str
    instrument: SymptomInstrument | None
    item_responses: list[int] = strawberry.field(description="Item responses in order, each 0-3.")
    total: float = strawberry.field(description="PHQ-9 0-27, GAD-7 0-21, mood 0-10.")
    reported_at: datetime | None
    source: str

    @classmethod
    def from_pb(cls, r: twin_pb2.SymptomReport) -> SymptomReport:
        return cls(
            report_id=r.report_id,
            instrument=_INSTRUMENT_FROM_PB.get(r.instrument),
            item_responses=list(r.item_responses),
            total=r.total,
            reported_at=timestamp(r, "reported_at"),
            source=r.source,
        )


@strawberry.type(description="A medication the patient takes or took.")
class Medication:
    name: str = strawberry.field(description="Generic (INN) name, lower case.")
    rxnorm_code: str
    daily_dose: Quantity | None
    started_at: datetime | None
    stopped_at: datetime | None
    indication: str

    @classmethod
    def from_pb(cls, m: common_pb2.Medication) -> Medication:
        dose = (
            Quantity(value=m.daily_dose.value, unit=m.daily_dose.unit) if m.HasField("daily_dose") else None
        )
        return cls(
            name=m.name,
            rxnorm_code=m.rxnorm_code,
            daily_dose=dose,
            started_at=timestamp(m, "started_at"),
            stopped_at=timestamp(m, "stopped_at"),
            indication=m.indication,
        )


@strawberry.type(description="HLA allele carrier status.")
class HlaStatus:
    allele: str
    status: str

    @classmethod
    def from_pb(cls, h: pharmacogenomics_pb2.HlaAlleleStatus) -> HlaStatus:
        return cls(
            allele=h.allele, status=label(pharmacogenomics_pb2.CarrierStatus, h.status, "CARRIER_STATUS_")
        )


@strawberry.type(description="Interpretation of one pharmacogene (CPIC terms).")
class GeneResult:
    gene: str
    status: str
    diplotype: str
    alternative_diplotypes: list[str]
    activity_score: float | None
    phenotype: str
    untested_positions: list[str]
    source: str
    hla: list[HlaStatus]
    notes: list[str]

    @classmethod
    def from_pb(cls, g: pharmacogenomics_pb2.GeneResult) -> GeneResult:
        return cls(
            gene=g.gene,
            status=label(pharmacogenomics_pb2.CallStatus, g.status, "CALL_STATUS_"),
            diplotype=g.diplotype,
            alternative_diplotypes=list(g.alternative_diplotypes),
            activity_score=optional(g, "activity_score"),
            phenotype=g.phenotype,
            untested_positions=list(g.untested_positions),
            source=label(pharmacogenomics_pb2.CallSource, g.source, "CALL_SOURCE_"),
            hla=[HlaStatus.from_pb(h) for h in g.hla],
            notes=list(g.notes),
        )


@strawberry.type(description="Versions of the pharmacogenomic knowledge used.")
class KnowledgeBase:
    cpic_version: str
    pharmvar_version: str
    interaction_table_version: str

    @classmethod
    def from_pb(cls, k: pharmacogenomics_pb2.KnowledgeBase) -> KnowledgeBase:
        return cls(
            cpic_version=k.cpic_version,
            pharmvar_version=k.pharmvar_version,
            interaction_table_version=k.interaction_table_version,
        )


@strawberry.type(description="The genotype as stored in the twin.")
class Genotype:
    genes: list[GeneResult]
    knowledge_base: KnowledgeBase | None
    recorded_at: datetime | None

    @classmethod
    def from_pb(cls, g: twin_pb2.GenotypeSummary) -> Genotype:
        return cls(
            genes=[GeneResult.from_pb(x) for x in g.genes],
            knowledge_base=KnowledgeBase.from_pb(g.knowledge_base) if g.HasField("knowledge_base") else None,
            recorded_at=timestamp(g, "recorded_at"),
        )


@strawberry.type(description="Device readings held for one Open mHealth schema.")
class SchemaReadingCount:
    schema: str
    count: int


@strawberry.type(description="Device readings the twin holds.")
class ReadingCounts:
    total: int
    by_schema: list[SchemaReadingCount]
    last_reading_at: datetime | None

    @classmethod
    def from_pb(cls, r: twin_pb2.ReadingCounts) -> ReadingCounts:
        return cls(
            total=r.total,
            by_schema=[SchemaReadingCount(schema=k, count=v) for k, v in sorted(r.by_schema.items())],
            last_reading_at=timestamp(r, "last_reading_at"),
        )


# ---- actigraphy ----------------------------------------------------------------------------------


@strawberry.type(description="Sleep metrics, mean over the analysable nights.")
class SleepMetrics:
    scoring_algorithm: str
    nights_analyzed: int
    time_in_bed_minutes: float | None
    total_sleep_time_minutes: float | None
    sleep_efficiency_percent: float | None = strawberry.field(description="0-100 %.")
    sleep_onset_latency_minutes: float | None
    wake_after_sleep_onset_minutes: float | None
    awakenings_count: float | None
    mean_awakening_length_minutes: float | None
    sleep_fraction_cole_kripke: float | None = strawberry.field(description="0-1.")
    sleep_fraction_sadeh: float | None = strawberry.field(description="0-1.")
    mid_sleep_time: str = strawberry.field(description="Local clock time HH:MM.")

    @classmethod
    def from_pb(cls, s: actigraphy_pb2.SleepMetrics) -> SleepMetrics:
        return cls(
            scoring_algorithm=label(
                actigraphy_pb2.SleepScoringAlgorithm, s.scoring_algorithm, "SLEEP_SCORING_ALGORITHM_"
            ),
            nights_analyzed=s.nights_analyzed,
            time_in_bed_minutes=optional(s, "time_in_bed_minutes"),
            total_sleep_time_minutes=optional(s, "total_sleep_time_minutes"),
            sleep_efficiency_percent=optional(s, "sleep_efficiency_percent"),
            sleep_onset_latency_minutes=optional(s, "sleep_onset_latency_minutes"),
            wake_after_sleep_onset_minutes=optional(s, "wake_after_sleep_onset_minutes"),
            awakenings_count=optional(s, "awakenings_count"),
            mean_awakening_length_minutes=optional(s, "mean_awakening_length_minutes"),
            sleep_fraction_cole_kripke=optional(s, "sleep_fraction_cole_kripke"),
            sleep_fraction_sadeh=optional(s, "sleep_fraction_sadeh"),
            mid_sleep_time=s.mid_sleep_time,
        )


@strawberry.type(description="Rest-activity rhythm metrics (van Someren 1999; cosinor).")
class CircadianMetrics:
    interdaily_stability: float | None
    intradaily_variability: float | None
    relative_amplitude: float | None
    l5_counts_per_minute: float | None
    l5_onset: str
    m10_counts_per_minute: float | None
    m10_onset: str
    cosinor_mesor_counts_per_minute: float | None
    cosinor_amplitude_counts_per_minute: float | None
    cosinor_acrophase_hours: float | None
    cosinor_acrophase_time: str
    cosinor_r_squared: float | None

    @classmethod
    def from_pb(cls, c: actigraphy_pb2.CircadianMetrics) -> CircadianMetrics:
        return cls(
            interdaily_stability=optional(c, "interdaily_stability"),
            intradaily_variability=optional(c, "intradaily_variability"),
            relative_amplitude=optional(c, "relative_amplitude"),
            l5_counts_per_minute=optional(c, "l5_counts_per_minute"),
            l5_onset=c.l5_onset,
            m10_counts_per_minute=optional(c, "m10_counts_per_minute"),
            m10_onset=c.m10_onset,
            cosinor_mesor_counts_per_minute=optional(c, "cosinor_mesor_counts_per_minute"),
            cosinor_amplitude_counts_per_minute=optional(c, "cosinor_amplitude_counts_per_minute"),
            cosinor_acrophase_hours=optional(c, "cosinor_acrophase_hours"),
            cosinor_acrophase_time=c.cosinor_acrophase_time,
            cosinor_r_squared=optional(c, "cosinor_r_squared"),
        )


@strawberry.type(description="Sleep for one night.")
class NightSummary:
    night_date: str
    sleep_onset: datetime | None
    final_awakening: datetime | None
    time_in_bed_minutes: float | None
    total_sleep_time_minutes: float | None
    sleep_efficiency_percent: float | None
    sleep_onset_latency_minutes: float | None
    wake_after_sleep_onset_minutes: float | None
    awakenings_count: int | None
    mean_awakening_length_minutes: float | None
    valid: bool

    @classmethod
    def from_pb(cls, n: actigraphy_pb2.NightSummary) -> NightSummary:
        return cls(
            night_date=n.night_date,
            sleep_onset=timestamp(n, "sleep_onset"),
            final_awakening=timestamp(n, "final_awakening"),
            time_in_bed_minutes=optional(n, "time_in_bed_minutes"),
            total_sleep_time_minutes=optional(n, "total_sleep_time_minutes"),
            sleep_efficiency_percent=optional(n, "sleep_efficiency_percent"),
            sleep_onset_latency_minutes=optional(n, "sleep_onset_latency_minutes"),
            wake_after_sleep_onset_minutes=optional(n, "wake_after_sleep_onset_minutes"),
            awakenings_count=optional(n, "awakenings_count"),
            mean_awakening_length_minutes=optional(n, "mean_awakening_length_minutes"),
            valid=n.valid,
        )


@strawberry.type(description="Completeness of the analysed week.")
class InputQuality:
    minutes_expected: int
    minutes_present: int
    wear_fraction: float = strawberry.field(description="0-1.")
    non_wear_minutes: int
    valid_days: int
    issues: list[str]

    @classmethod
    def from_pb(cls, q: actigraphy_pb2.InputQuality) -> InputQuality:
        return cls(
            minutes_expected=q.minutes_expected,
            minutes_present=q.minutes_present,
            wear_fraction=q.wear_fraction,
            non_wear_minutes=q.non_wear_minutes,
            valid_days=q.valid_days,
            issues=list(q.issues),
        )


@strawberry.type(description="A completed actigraphy analysis of one week.")
class ActigraphySummary:
    analysis_id: str
    week_start: datetime | None
    week_end: datetime | None
    analyzed_at: datetime | None
    sleep: SleepMetrics | None
    circadian: CircadianMetrics | None
    nights: list[NightSummary]
    input_quality: InputQuality | None
    model: ModelInfo | None

    @classmethod
    def from_pb(cls, a: twin_pb2.ActigraphySummary) -> ActigraphySummary:
        return cls(
            analysis_id=a.analysis_id,
            week_start=timestamp(a.week, "start") if a.HasField("week") else None,
            week_end=timestamp(a.week, "end") if a.HasField("week") else None,
            analyzed_at=timestamp(a, "analyzed_at"),
            sleep=SleepMetrics.from_pb(a.sleep) if a.HasField("sleep") else None,
            circadian=CircadianMetrics.from_pb(a.circadian) if a.HasField("circadian") else None,
            nights=[NightSummary.from_pb(n) for n in a.nights],
            input_quality=InputQuality.from_pb(a.input_quality) if a.HasField("input_quality") else None,
            model=model_or_none(a),
        )


@strawberry.type(description="PAT attention over days x local hours, row-major weights summing to 1.")
class AttentionMap:
    rows: int
    cols: int
    weights: list[float]
    row_dates: list[str]
    method: str

    @classmethod
    def from_pb(cls, m: actigraphy_pb2.AttentionMap) -> AttentionMap:
        return cls(
            rows=m.rows, cols=m.cols, weights=list(m.weights), row_dates=list(m.row_dates), method=m.method
        )


@strawberry.type(
    description="The actigraphy section: the latest analysis, the one before, explanation, FHIR."
)
class ActigraphyAnalysis:
    latest: ActigraphySummary
    previous: ActigraphySummary | None
    explanation: AttentionMap | None
    fhir_bundle: JSON | None = strawberry.field(description="FHIR R4 Bundle (collection) of the metrics.")

    @classmethod
    def from_pb(cls, s: twin_pb2.ActigraphySection) -> ActigraphyAnalysis:
        bundle: JSON | None = None
        if s.fhir_bundle_json:
            try:
                bundle = JSON(json.loads(s.fhir_bundle_json))
            except ValueError:
                raise DataProcessingError("the twin sent an unreadable FHIR bundle", service="twin") from None
        return cls(
            latest=ActigraphySummary.from_pb(s.latest),
            previous=ActigraphySummary.from_pb(s.previous) if s.HasField("previous") else None,
            explanation=AttentionMap.from_pb(s.explanation) if s.HasField("explanation") else None,
            fhir_bundle=bundle,
        )


# ---- forecast ----------------------------------------------------------------------------------------


@strawberry.type(description="One quantile of a predictive distribution.")
class QuantileValue:
    quantile: float
    value: float


@strawberry.type(description="The predictive distribution of one forecast day.")
class ForecastDay:
    horizon_day: int
    target_date: str
    quantiles: list[QuantileValue]

    @classmethod
    def from_pb(cls, q: common_pb2.QuantileForecast) -> ForecastDay:
        return cls(
            horizon_day=q.horizon_day,
            target_date=q.target_date,
            quantiles=[QuantileValue(quantile=v.quantile, value=v.value) for v in q.quantiles],
        )


@strawberry.type(description="How much one input feature drove the forecast.")
class FeatureImportance:
    feature: str
    importance: float
    method: str
    model_name: str
    horizon_day: int


@strawberry.type(description="A forecast of one daily symptom score.")
class SymptomForecast:
    target: ForecastTarget | None
    origin_date: str
    days: list[ForecastDay]
    interval_coverage_target: float
    empirical_coverage: float | None
    feature_importances: list[FeatureImportance]
    model: ModelInfo | None
    generated_at: datetime | None
    warnings: list[str]

    @classmethod
    def from_pb(cls, f: forecasting_pb2.ForecastResponse) -> SymptomForecast:
        name = label(forecasting_pb2.TargetSymptom, f.target, "TARGET_SYMPTOM_")
        return cls(
            target=ForecastTarget.__members__.get(name),
            origin_date=f.origin_date,
            days=[ForecastDay.from_pb(d) for d in f.forecasts],
            interval_coverage_target=f.interval_coverage_target,
            empirical_coverage=optional(f.calibration, "empirical_coverage")
            if f.HasField("calibration")
            else None,
            feature_importances=[
                FeatureImportance(
                    feature=i.feature,
                    importance=i.importance,
                    method=label(forecasting_pb2.ImportanceMethod, i.method, "IMPORTANCE_METHOD_"),
                    model_name=i.model_name,
                    horizon_day=i.horizon_day,
                )
                for i in f.feature_importances
            ],
            model=model_or_none(f),
            generated_at=timestamp(f, "generated_at"),
            warnings=list(f.warnings),
        )


@strawberry.type(description="The forecast section: one forecast per target score.")
class Forecast:
    forecasts: list[SymptomForecast]

    @classmethod
    def from_pb(cls, s: twin_pb2.ForecastSection) -> Forecast:
        return cls(forecasts=[SymptomForecast.from_pb(f) for f in s.forecasts])


# ---- correlations ------------------------------------------------------------------------------------


@strawberry.type(description="One lagged correlation test (lag in days, biometric leading).")
class LaggedCorrelation:
    biometric: str
    symptom: str
    lag_days: int
    method: str
    coefficient: float
    ci_low: float
    ci_high: float
    p_value: float
    q_value: float
    n_effective: float
    n_pairs: int
    significant: bool

    @classmethod
    def from_pb(cls, c: correlation_pb2.LaggedCorrelation) -> LaggedCorrelation:
        return cls(
            biometric=c.biometric,
            symptom=c.symptom,
            lag_days=c.lag_days,
            method=label(correlation_pb2.CorrelationMethod, c.method, "CORRELATION_METHOD_"),
            coefficient=c.coefficient,
            ci_low=c.ci_low,
            ci_high=c.ci_high,
            p_value=c.p_value,
            q_value=c.q_value,
            n_effective=c.n_effective,
            n_pairs=c.n_pairs,
            significant=c.significant,
        )


@strawberry.type(description="A Granger-causality test.")
class GrangerResult:
    biometric: str
    symptom: str
    lag_order: int
    f_statistic: float
    p_value: float
    q_value: float
    significant: bool
    n_observations: int
    notes: list[str]

    @classmethod
    def from_pb(cls, g: correlation_pb2.GrangerResult) -> GrangerResult:
        return cls(
            biometric=g.biometric,
            symptom=g.symptom,
            lag_order=g.lag_order,
            f_statistic=g.f_statistic,
            p_value=g.p_value,
            q_value=g.q_value,
            significant=g.significant,
            n_observations=g.n_observations,
            notes=list(g.notes),
        )


@strawberry.type(description="The correlation section.")
class CorrelationAnalysis:
    correlations: list[LaggedCorrelation]
    granger: list[GrangerResult]
    notes: list[str]
    tests_performed: int
    fdr_alpha: float
    generated_at: datetime | None
    warnings: list[str]

    @classmethod
    def from_pb(cls, s: twin_pb2.CorrelationSection) -> CorrelationAnalysis:
        a = s.analysis
        return cls(
            correlations=[LaggedCorrelation.from_pb(c) for c in a.correlations],
            granger=[GrangerResult.from_pb(g) for g in a.granger],
            notes=list(a.notes),
            tests_performed=a.tests_performed,
            fdr_alpha=a.fdr_alpha,
            generated_at=timestamp(a, "generated_at"),
            warnings=list(a.warnings),
        )


# ---- medication guidance -------------------------------------------------------------------------------


@strawberry.type(description="A guideline reference.")
class Guideline:
    name: str
    version: str
    source: str
    url: str


@strawberry.type(description="A phenotype that selected a recommendation.")
class GenePhenotype:
    gene: str
    phenotype: str


@strawberry.type(description="A genetic phenotype changed by a co-medication.")
class Phenoconversion:
    gene: str
    genetic_phenotype: str
    functional_phenotype: str
    perpetrator_drug: str
    modulator_strength: str
    note: str


@strawberry.type(description="An interaction warning.")
class InteractionWarning:
    kind: str
    victim_drug: str
    perpetrator_drug: str
    gene: str
    severity: str
    description: str

    @classmethod
    def from_pb(cls, w: pharmacogenomics_pb2.InteractionWarning) -> InteractionWarning:
        return cls(
            kind=label(pharmacogenomics_pb2.InteractionKind, w.kind, "INTERACTION_KIND_"),
            victim_drug=w.victim_drug,
            perpetrator_drug=w.perpetrator_drug,
            gene=w.gene,
            severity=label(pharmacogenomics_pb2.Severity, w.severity, "SEVERITY_"),
            description=w.description,
        )


@strawberry.type(description="A research-only model estimate; not for clinical decisions.")
class ResearchEstimate:
    response_probability: float
    side_effect_probability: float
    uncertainty: float
    label: str


@strawberry.type(description="Guideline recommendation for one drug.")
class DrugRecommendation:
    drug: str
    action: str
    strength: str
    recommendation: str
    implication: str
    guideline: Guideline | None
    phenotypes_used: list[GenePhenotype]
    phenoconversions: list[Phenoconversion]
    research_estimate: ResearchEstimate | None
    interactions: list[InteractionWarning]
    notes: list[str]

    @classmethod
    def from_pb(cls, r: pharmacogenomics_pb2.DrugRecommendation) -> DrugRecommendation:
        g = r.guideline
        estimate = r.research_estimate
        return cls(
            drug=r.drug,
            action=label(pharmacogenomics_pb2.RecommendationAction, r.action, "RECOMMENDATION_ACTION_"),
            strength=label(
                pharmacogenomics_pb2.RecommendationStrength, r.strength, "RECOMMENDATION_STRENGTH_"
            ),
            recommendation=r.recommendation,
            implication=r.implication,
            guideline=Guideline(name=g.name, version=g.version, source=g.source, url=g.url)
            if r.HasField("guideline")
            else None,
            phenotypes_used=[
                GenePhenotype(gene=k, phenotype=v) for k, v in sorted(r.phenotypes_used.items())
            ],
            phenoconversions=[
                Phenoconversion(
                    gene=p.gene,
                    genetic_phenotype=p.genetic_phenotype,
                    functional_phenotype=p.functional_phenotype,
                    perpetrator_drug=p.perpetrator_drug,
                    modulator_strength=label(
                        pharmacogenomics_pb2.ModulatorStrength, p.modulator_strength, "MODULATOR_STRENGTH_"
                    ),
                    note=p.note,
                )
                for p in r.phenoconversions
            ],
            research_estimate=ResearchEstimate(
                response_probability=estimate.response_probability,
                side_effect_probability=estimate.side_effect_probability,
                uncertainty=estimate.uncertainty,
                label=estimate.label,
            )
            if r.HasField("research_estimate")
            else None,
            interactions=[InteractionWarning.from_pb(w) for w in r.interactions],
            notes=list(r.notes),
        )


@strawberry.type(description="The medication section: pharmacogenomic guidance per candidate drug.")
class MedicationGuidance:
    recommendations: list[DrugRecommendation]
    interaction_warnings: list[InteractionWarning]
    genotype: list[GeneResult]
    knowledge_base: KnowledgeBase | None
    generated_at: datetime | None
    disclaimer: str

    @classmethod
    def from_pb(cls, s: twin_pb2.MedicationSection) -> MedicationGuidance:
        r = s.recommendations
        return cls(
            recommendations=[DrugRecommendation.from_pb(x) for x in r.recommendations],
            interaction_warnings=[InteractionWarning.from_pb(w) for w in r.interaction_warnings],
            genotype=[GeneResult.from_pb(g) for g in r.genotype],
            knowledge_base=KnowledgeBase.from_pb(r.knowledge_base) if r.HasField("knowledge_base") else None,
            generated_at=timestamp(r, "generated_at"),
            disclaimer=r.disclaimer,
        )


# ---- insights ----------------------------------------------------------------------------------------


@strawberry.type(description="A recommendation combining sections, citing its evidence.")
class Recommendation:
    id: str
    text: str
    priority: Priority
    evidence: list[str]
    sections_used: list[str]

    @classmethod
    def from_pb(cls, r: twin_pb2.IntegratedRecommendation) -> Recommendation:
        return cls(
            id=r.id,
            text=r.text,
            priority=Priority.__members__.get(
                label(twin_pb2.Priority, r.priority, "PRIORITY_"), Priority.UNSPECIFIED
            ),
            evidence=list(r.evidence),
            sections_used=list(r.sections_used),
        )


@strawberry.type(description="Why an insight section is missing.")
class SectionError:
    section: str
    code: str
    message: str
    service: str
    retryable: bool

    @classmethod
    def from_pb(cls, e: twin_pb2.SectionError) -> SectionError:
        return cls(
            section=e.section,
            code=e.error.code,
            message=e.error.message,
            service=e.error.service,
            retryable=e.error.retryable,
        )


@strawberry.type(description="One committed version of a twin.")
class TwinVersion:
    version: int
    committed_at: datetime | None
    changed_sections: list[str]
    cause_event_id: str

    @classmethod
    def from_pb(cls, v: twin_pb2.TwinVersion) -> TwinVersion:
        return cls(
            version=v.version,
            committed_at=timestamp(v, "committed_at"),
            changed_sections=list(v.changed_sections),
            cause_event_id=v.cause_event_id,
        )


@strawberry.type(description="A page of results.")
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(description="A page of a twin's history, newest first.")
class TwinVersionConnection:
    versions: list[TwinVersion]
    page_info: PageInfo


def sorted_unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(dict.fromkeys(values)))
