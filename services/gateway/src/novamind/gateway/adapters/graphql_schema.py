# mypy: disable-error-code="untyped-decorator"
# (strawberry's field decorators are not typed for mypy; the resolvers themselves are.)
"""The GraphQL schema (strawberry-graphql): patients, their twin and insights, mutations, updates.

Every field backed by a model service is nullable, so a failing service nulls only its section
(GraphQL spec, "Handling Field Errors") and the error names the section, the service and whether
a retry may help. Every field that reads or writes patient data is a :func:`guarded_field` (or a
:func:`guarded_mutation`, or calls :func:`guard_subscription`): the policy decides, the access is
audited. Patients are named by pseudonym; any other identifier is pseudonymised on arrival.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import strawberry
from google.protobuf.timestamp_pb2 import Timestamp
from strawberry.types import Info

from novamind.api.actigraphy.v1 import actigraphy_pb2
from novamind.api.common.v1 import common_pb2
from novamind.api.events.v1 import events_pb2
from novamind.api.pharmacogenomics.v1 import pharmacogenomics_pb2
from novamind.api.twin.v1 import twin_pb2
from novamind.core.errors import ServiceUnavailableError, ValidationError
from novamind.gateway.adapters.authorization import (
    LOCATOR_METADATA,
    OPERATION_METADATA,
    guard_subscription,
    guarded_field,
    guarded_mutation,
    no_patient,
    request_context,
)
from novamind.gateway.adapters.graphql_context import RequestScope
from novamind.gateway.adapters.graphql_errors import ErrorCodes, GatewaySchema
from novamind.gateway.adapters.graphql_limits import limit_extensions
from novamind.gateway.adapters.graphql_types import (
    ActigraphyAnalysis,
    ActigraphySummary,
    CorrelationAnalysis,
    Forecast,
    ForecastTarget,
    Genotype,
    InsightSection,
    Medication,
    MedicationGuidance,
    PageInfo,
    ReadingCounts,
    Recommendation,
    SectionError,
    SymptomInstrument,
    SymptomReport,
    TwinVersion,
    TwinVersionConnection,
    sorted_unique,
    timestamp,
)
from novamind.gateway.adapters.loaders import section_error
from novamind.gateway.adapters.twin_client import patient_ref
from novamind.gateway.config import GatewaySettings
from novamind.gateway.domain import inputs
from novamind.gateway.domain.health import ServiceHealthReport
from novamind.gateway.domain.health import ServingStatus as DomainServingStatus
from novamind.gateway.domain.insights import InsightNeeds, Section
from novamind.gateway.domain.policy import Operation, visible_patients

S = TypeVar("S")

strawberry.enum(
    DomainServingStatus,
    name="ServingStatus",
    description="gRPC health status of a service; UNREACHABLE when it gave no answer in time.",
)

#: Longest forecast horizon (days) and history window (days) the twin accepts.
MAX_FORECAST_DAYS = 30
MAX_LOOKBACK_DAYS = 365
MAX_CANDIDATE_DRUGS = 50


@strawberry.type(description="Health of one back-end service, as its gRPC health service reports it.")
class ServiceHealth:
    service: str
    address: str
    status: DomainServingStatus
    serving: bool
    latency_ms: float = strawberry.field(description="Round trip of the health check, milliseconds.")
    detail: str | None

    @classmethod
    def from_report(cls, report: ServiceHealthReport) -> ServiceHealth:
        return cls(
            service=report.service,
            address=report.address,
            status=report.status,
            serving=report.serving,
            latency_ms=report.latency_ms,
            detail=report.detail,
        )


# ---- sections ----------------------------------------------------------------------------------------

_SECTION_FIELDS: dict[Section, Literal["actigraphy", "forecast", "correlations", "medications"]] = {
    Section.ACTIGRAPHY: "actigraphy",
    Section.FORECAST: "forecast",
    Section.CORRELATIONS: "correlations",
    Section.MEDICATIONS: "medications",
}


def section_value(
    response: twin_pb2.GetInsightsResponse, section: Section, build: Callable[[Any], S]
) -> S | None:
    """A section of an insights response; raises its SectionError's taxonomy error when it failed."""
    failure = section_error(response, section)
    if failure is not None:
        raise failure
    field = _SECTION_FIELDS[section]
    if not response.HasField(field):
        return None
    return build(getattr(response, field))


def _forecast_days(days: int | None, field: str) -> int:
    if days is None:
        return 0
    if not 1 <= days <= MAX_FORECAST_DAYS:
        raise ValidationError(f"must be 1-{MAX_FORECAST_DAYS} days", field=field)
    return days


def _lookback_days(days: int | None, field: str) -> int:
    if days is None:
        return 0
    if not 7 <= days <= MAX_LOOKBACK_DAYS:
        raise ValidationError(f"must be 7-{MAX_LOOKBACK_DAYS} days", field=field)
    return days


def _drugs(names: list[str] | None, field: str) -> tuple[str, ...]:
    if not names:
        return ()
    if len(names) > MAX_CANDIDATE_DRUGS:
        raise ValidationError(f"at most {MAX_CANDIDATE_DRUGS} drugs", field=field)
    cleaned = sorted_unique(n.strip().lower() for n in names)
    for index, name in enumerate(cleaned):
        if not name or len(name) > 64:
            raise ValidationError("not a generic drug name", field=f"{field}[{index}]")
    return cleaned


def _targets(targets: list[ForecastTarget] | None) -> tuple[str, ...]:
    return sorted_unique(t.proto_name for t in targets or ())


@strawberry.input(description="Which insight sections to compute and how.")
class InsightOptionsInput:
    sections: list[InsightSection] | None = strawberry.field(default=None, description="Default: all four.")
    forecast_days: int | None = strawberry.field(default=None, description="Horizon, 1-30 days; default 14.")
    forecast_targets: list[ForecastTarget] | None = None
    candidate_drugs: list[str] | None = None
    lookback_days: int | None = strawberry.field(default=None, description="History window, 7-365 days.")
    actigraphy_explanation: bool = False
    actigraphy_fhir: bool = False

    def needs(self) -> InsightNeeds:
        chosen = self.sections if self.sections else list(InsightSection)
        return InsightNeeds(
            sections=frozenset(Section(s.value) for s in chosen),
            actigraphy_explanation=self.actigraphy_explanation,
            actigraphy_fhir=self.actigraphy_fhir,
            forecast_days=_forecast_days(self.forecast_days, "options.forecastDays"),
            forecast_targets=_targets(self.forecast_targets),
            candidate_drugs=_drugs(self.candidate_drugs, "options.candidateDrugs"),
            lookback_days=_lookback_days(self.lookback_days, "options.lookbackDays"),
            recommendations=True,
        )


@strawberry.type(description="Integrated insights; a failed section is null with an error naming it.")
class Insights:
    twin_version: int
    generated_at: datetime | None
    recommendations: list[Recommendation]
    section_errors: list[SectionError]
    response: strawberry.Private[twin_pb2.GetInsightsResponse]

    @classmethod
    def from_pb(cls, r: twin_pb2.GetInsightsResponse) -> Insights:
        return cls(
            twin_version=r.twin_version,
            generated_at=timestamp(r, "generated_at"),
            recommendations=[Recommendation.from_pb(x) for x in r.recommendations],
            section_errors=[SectionError.from_pb(e) for e in r.section_errors],
            response=r,
        )

    @strawberry.field
    def actigraphy(self) -> ActigraphyAnalysis | None:
        return section_value(self.response, Section.ACTIGRAPHY, ActigraphyAnalysis.from_pb)

    @strawberry.field
    def forecast(self) -> Forecast | None:
        return section_value(self.response, Section.FORECAST, Forecast.from_pb)

    @strawberry.field
    def correlations(self) -> CorrelationAnalysis | None:
        return section_value(self.response, Section.CORRELATIONS, CorrelationAnalysis.from_pb)

    @strawberry.field
    def medication_guidance(self) -> MedicationGuidance | None:
        return section_value(self.response, Section.MEDICATIONS, MedicationGuidance.from_pb)


# ---- twin ----------------------------------------------------------------------------------------------


@strawberry.type(description="The patient twin: the versioned state the insights are computed from.")
class Twin:
    version: int = strawberry.field(description="Pass as expectedVersion to change the twin safely.")
    created_at: datetime | None
    updated_at: datetime | None
    time_zone: str = strawberry.field(description="IANA time zone of the patient.")
    medications: list[Medication]
    genotype: Genotype | None
    latest_actigraphy: ActigraphySummary | None
    readings: ReadingCounts
    reports: strawberry.Private[list[SymptomReport]]
    max_days: strawberry.Private[int]

    @classmethod
    def from_pb(cls, t: twin_pb2.Twin, *, max_days: int) -> Twin:
        return cls(
            version=t.version,
            created_at=timestamp(t, "created_at"),
            updated_at=timestamp(t, "updated_at"),
            time_zone=t.time_zone,
            medications=[Medication.from_pb(m) for m in t.medications],
            genotype=Genotype.from_pb(t.genotype) if t.HasField("genotype") else None,
            latest_actigraphy=ActigraphySummary.from_pb(t.latest_actigraphy)
            if t.HasField("latest_actigraphy")
            else None,
            readings=ReadingCounts.from_pb(t.readings),
            reports=[SymptomReport.from_pb(r) for r in t.symptom_history],
            max_days=max_days,
        )

    @strawberry.field(description="Symptom reports of the last `days` days, oldest first.")
    def symptom_history(self, days: int = 90) -> list[SymptomReport]:
        if not 1 <= days <= self.max_days:
            raise ValidationError(f"must be 1-{self.max_days} days", field="days")
        since = datetime.now(UTC) - timedelta(days=days)
        return [r for r in self.reports if r.reported_at is None or r.reported_at >= since]


# ---- patients ------------------------------------------------------------------------------------------


@strawberry.type(description="A patient, known to the gateway by pseudonym only.")
class Patient:
    id: strawberry.ID = strawberry.field(description="The patient's pseudonym (pt_ + 20 hex digits).")

    @guarded_field(Operation.READ_TWIN, description="The twin; null when the patient has none yet.")
    async def twin(self, info: Info[Any, Any]) -> Twin | None:
        context = request_context(info)
        found = await context.twins.load(str(self.id))
        if found is None:
            return None
        return Twin.from_pb(found, max_days=context.services.settings.symptom_history_max_days)

    @guarded_field(Operation.READ_HISTORY, description="Committed versions of the twin, newest first.")
    async def history(
        self, info: Info[Any, Any], first: int = 20, after: str | None = None
    ) -> TwinVersionConnection | None:
        context = request_context(info)
        _check_page(first, context.services.settings.max_page_size)
        page = await context.services.twin.list_versions(
            str(self.id), context.caller_metadata, page_size=first, page_token=after or ""
        )
        return TwinVersionConnection(
            versions=[TwinVersion.from_pb(v) for v in page.versions],
            page_info=PageInfo(
                has_next_page=bool(page.next_page_token), end_cursor=page.next_page_token or None
            ),
        )

    @guarded_field(Operation.READ_ACTIGRAPHY, description="Latest actigraphy analysis (PAT + sleep metrics).")
    async def actigraphy(
        self, info: Info[Any, Any], explanation: bool = False, fhir: bool = False
    ) -> ActigraphyAnalysis | None:
        needs = InsightNeeds(
            sections=frozenset({Section.ACTIGRAPHY}), actigraphy_explanation=explanation, actigraphy_fhir=fhir
        )
        response = await request_context(info).insights.load(str(self.id), needs)
        return section_value(response, Section.ACTIGRAPHY, ActigraphyAnalysis.from_pb)

    @guarded_field(Operation.READ_FORECAST, description="Quantile forecasts of daily symptom scores.")
    async def forecast(
        self, info: Info[Any, Any], days: int | None = None, targets: list[ForecastTarget] | None = None
    ) -> Forecast | None:
        needs = InsightNeeds(
            sections=frozenset({Section.FORECAST}),
            forecast_days=_forecast_days(days, "days"),
            forecast_targets=_targets(targets),
        )
        response = await request_context(info).insights.load(str(self.id), needs)
        return section_value(response, Section.FORECAST, Forecast.from_pb)

    @guarded_field(Operation.READ_CORRELATIONS, description="Lagged biometric-symptom correlations.")
    async def correlations(self, info: Info[Any, Any]) -> CorrelationAnalysis | None:
        needs = InsightNeeds(sections=frozenset({Section.CORRELATIONS}))
        response = await request_context(info).insights.load(str(self.id), needs)
        return section_value(response, Section.CORRELATIONS, CorrelationAnalysis.from_pb)

    @guarded_field(Operation.READ_MEDICATION_GUIDANCE, description="Pharmacogenomic guidance (CPIC).")
    async def medication_guidance(
        self, info: Info[Any, Any], candidate_drugs: list[str] | None = None
    ) -> MedicationGuidance | None:
        needs = InsightNeeds(
            sections=frozenset({Section.MEDICATIONS}),
            candidate_drugs=_drugs(candidate_drugs, "candidateDrugs"),
        )
        response = await request_context(info).insights.load(str(self.id), needs)
        return section_value(response, Section.MEDICATIONS, MedicationGuidance.from_pb)

    @guarded_field(Operation.READ_INSIGHTS, description="Every section plus integrated recommendations.")
    async def insights(
        self, info: Info[Any, Any], options: InsightOptionsInput | None = None
    ) -> Insights | None:
        needs = (options or InsightOptionsInput()).needs()
        response = await request_context(info).insights.load(str(self.id), needs)
        return Insights.from_pb(response)


@strawberry.type(description="A patient in a list, with the twin's headline numbers.")
class PatientEdge:
    node: Patient
    version: int
    updated_at: datetime | None
    latest_phq9_total: float | None = strawberry.field(description="Latest PHQ-9 total, 0-27.")
    latest_gad7_total: float | None = strawberry.field(description="Latest GAD-7 total, 0-21.")

    @classmethod
    def from_pb(cls, s: twin_pb2.PatientSummary) -> PatientEdge:
        return cls(
            node=Patient(id=strawberry.ID(s.patient.pseudonym)),
            version=s.version,
            updated_at=timestamp(s, "updated_at"),
            latest_phq9_total=s.latest_phq9_total if s.HasField("latest_phq9_total") else None,
            latest_gad7_total=s.latest_gad7_total if s.HasField("latest_gad7_total") else None,
        )


@strawberry.type(description="A page of patients, ordered by pseudonym.")
class PatientConnection:
    edges: list[PatientEdge]
    page_info: PageInfo


def _check_page(first: int, maximum: int) -> None:
    if not 1 <= first <= maximum:
        raise ValidationError(f"must be 1-{maximum}", field="first")


@strawberry.type
class Query:
    @guarded_field(
        Operation.LIST_PATIENTS,
        patient_of=no_patient,
        description="Patients the caller may see (a clinician: the assigned ones), paged.",
    )
    async def patients(
        self, info: Info[Any, Any], first: int = 20, after: str | None = None
    ) -> PatientConnection | None:
        context = request_context(info)
        _check_page(first, context.services.settings.max_page_size)
        visible = visible_patients(Operation.LIST_PATIENTS, context.principal)
        if visible is not None and not visible:
            return PatientConnection(edges=[], page_info=PageInfo(has_next_page=False, end_cursor=None))
        page = await context.services.twin.list_patients(
            context.caller_metadata,
            page_size=first,
            page_token=after or "",
            restrict_to=sorted(visible or ()),
        )
        return PatientConnection(
            edges=[PatientEdge.from_pb(p) for p in page.patients],
            page_info=PageInfo(
                has_next_page=bool(page.next_page_token), end_cursor=page.next_page_token or None
            ),
        )

    @strawberry.field(
        description="A patient by pseudonym (or another identifier, pseudonymised here); each field "
        "checks the caller's access.",
        metadata={LOCATOR_METADATA: True},
    )
    def patient(self, info: Info[Any, Any], id: strawberry.ID) -> Patient | None:
        return Patient(id=strawberry.ID(request_context(info).patient_pseudonym(str(id), field="id")))

    @guarded_field(
        Operation.READ_SERVICE_HEALTH,
        patient_of=no_patient,
        description="Health of every back-end service, checked now over gRPC.",
    )
    async def service_health(self, info: Info[Any, Any]) -> list[ServiceHealth]:
        checker = request_context(info).services.health
        return [ServiceHealth.from_report(r) for r in await checker.check_all()]


# ---- mutations -------------------------------------------------------------------------------------------


@strawberry.input(description="A PHQ-9 (9 items), GAD-7 (7 items) or daily mood (rating 0-10) report.")
class SymptomReportInput:
    patient_id: strawberry.ID
    instrument: SymptomInstrument
    item_responses: list[int] | None = strawberry.field(default=None, description="Each 0-3, in order.")
    mood_rating: float | None = strawberry.field(default=None, description="0 (worst) to 10 (best).")
    reported_at: datetime | None = strawberry.field(default=None, description="Default: now.")
    idempotency_key: str | None = strawberry.field(
        default=None, description="UUID; a repeat changes nothing."
    )
    expected_version: int | None = strawberry.field(
        default=None, description="Refuse unless the twin is here."
    )


@strawberry.enum(description="HLA carrier status.")
class CarrierStatus(enum.Enum):
    POSITIVE = "POSITIVE"
    NEGATIVE = "NEGATIVE"
    UNKNOWN = "UNKNOWN"


@strawberry.input(description="A star-allele diplotype from an outside laboratory.")
class OutsideCallInput:
    gene: str
    diplotype: str
    reported_phenotype: str = ""
    source: str = ""


@strawberry.input(description="An HLA allele result.")
class HlaInput:
    allele: str
    status: CarrierStatus


@strawberry.input(description="A genotype: a base64 GRCh38 VCF, or outside calls and HLA results.")
class GenotypeInput:
    patient_id: strawberry.ID
    vcf_base64: str | None = None
    reference_genome: str = "GRCh38"
    sample_column: str | None = None
    outside_calls: list[OutsideCallInput] | None = None
    hla: list[HlaInput] | None = None
    expected_version: int | None = None


@strawberry.input(description="An amount with its UCUM unit.")
class QuantityInput:
    value: float
    unit: str


@strawberry.input(description="One medication.")
class MedicationInput:
    name: str = strawberry.field(description="Generic (INN) name, e.g. sertraline.")
    rxnorm_code: str = ""
    daily_dose: QuantityInput | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    indication: str = ""


@strawberry.input(description="The complete medication list (replaces the stored one).")
class MedicationsInput:
    patient_id: strawberry.ID
    medications: list[MedicationInput]
    expected_version: int | None = None


@strawberry.enum(description="PAT model sizes (Ruan et al., 2024).")
class PatModelSize(enum.Enum):
    S = "S"
    M = "M"
    L = "L"
    H = "H"


@strawberry.input(description="An actigraphy analysis of one week of stored activity counts.")
class ActigraphyAnalysisInput:
    patient_id: strawberry.ID
    week_start: datetime | None = strawberry.field(default=None, description="Default: latest 7 local days.")
    week_end: datetime | None = None
    model_size: PatModelSize | None = None
    idempotency_key: str | None = None


@strawberry.type
class SymptomReportResult:
    report: SymptomReport
    version: int
    duplicate: bool


@strawberry.type
class GenotypeResult:
    genotype: Genotype
    version: int


@strawberry.type
class MedicationsResult:
    medications: list[Medication]
    version: int


@strawberry.type
class AnalysisRequestResult:
    request_event_id: str
    week_start: datetime | None
    week_end: datetime | None
    minutes_present: int = strawberry.field(description="Minutes with data in the week (of 10,080).")


def _timestamp_pb(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


VersionedRequest = (
    twin_pb2.SubmitSymptomReportRequest | twin_pb2.RecordGenotypeRequest | twin_pb2.SetMedicationsRequest
)


def _set_expected(request: VersionedRequest, version: int | None) -> None:
    """Ask the twin to refuse the change (CONFLICT) unless the twin is at ``version``."""
    if version is not None:
        request.expected_version = version


_INSTRUMENT_TO_PB = {
    inputs.Instrument.PHQ9: common_pb2.SYMPTOM_INSTRUMENT_PHQ9,
    inputs.Instrument.GAD7: common_pb2.SYMPTOM_INSTRUMENT_GAD7,
    inputs.Instrument.MOOD: common_pb2.SYMPTOM_INSTRUMENT_MOOD,
}


@strawberry.type
class Mutation:
    @guarded_mutation(Operation.SUBMIT_SYMPTOM_REPORT, description="Record a symptom report.")
    async def submit_symptom_report(
        self, info: Info[Any, Any], input: SymptomReportInput
    ) -> SymptomReportResult | None:
        context = request_context(info)
        patient = context.patient_pseudonym(str(input.patient_id), field="input.patientId")
        draft = inputs.validate_symptom_report(
            instrument=inputs.Instrument(input.instrument.value),
            item_responses=input.item_responses,
            mood_rating=input.mood_rating,
            reported_at=input.reported_at,
            idempotency_key=input.idempotency_key,
            expected_version=input.expected_version,
            now=datetime.now(UTC),
        )
        request = twin_pb2.SubmitSymptomReportRequest(
            patient=patient_ref(patient),
            instrument=_INSTRUMENT_TO_PB[draft.instrument],
            item_responses=list(draft.item_responses),
            reported_at=_timestamp_pb(draft.reported_at),
            idempotency_key=draft.idempotency_key,
        )
        if draft.mood_rating is not None:
            request.mood_rating = draft.mood_rating
        _set_expected(request, draft.expected_version)
        response = await context.services.twin.submit_symptom_report(request, context.caller_metadata)
        return SymptomReportResult(
            report=SymptomReport.from_pb(response.report),
            version=response.version,
            duplicate=response.duplicate,
        )

    @guarded_mutation(Operation.RECORD_GENOTYPE, description="Record (replace) the genotype.")
    async def record_genotype(self, info: Info[Any, Any], input: GenotypeInput) -> GenotypeResult | None:
        context = request_context(info)
        patient = context.patient_pseudonym(str(input.patient_id), field="input.patientId")
        draft = inputs.validate_genotype(
            vcf_base64=input.vcf_base64,
            reference_genome=input.reference_genome,
            sample_column=input.sample_column,
            calls=[
                inputs.OutsideCallDraft(c.gene.strip(), c.diplotype.strip(), c.reported_phenotype, c.source)
                for c in input.outside_calls or ()
            ],
            hla=[
                inputs.HlaDraft(h.allele.strip(), inputs.CarrierStatus(h.status.value))
                for h in input.hla or ()
            ],
            expected_version=input.expected_version,
            max_vcf_bytes=context.services.settings.max_vcf_bytes,
        )
        request = twin_pb2.RecordGenotypeRequest(patient=patient_ref(patient))
        if draft.vcf is not None:
            request.vcf.CopyFrom(
                pharmacogenomics_pb2.VcfInput(
                    vcf=draft.vcf, reference_genome=draft.reference_genome, sample_column=draft.sample_column
                )
            )
        else:
            request.outside_calls.CopyFrom(
                pharmacogenomics_pb2.OutsideCalls(
                    calls=[
                        pharmacogenomics_pb2.OutsideCall(
                            gene=c.gene,
                            diplotype=c.diplotype,
                            reported_phenotype=c.reported_phenotype,
                            source=c.source,
                        )
                        for c in draft.calls
                    ],
                    hla=[
                        pharmacogenomics_pb2.HlaAlleleStatus(
                            allele=h.allele,
                            status=pharmacogenomics_pb2.CarrierStatus.Value(
                                f"CARRIER_STATUS_{h.status.value}"
                            ),
                        )
                        for h in draft.hla
                    ],
                )
            )
        _set_expected(request, draft.expected_version)
        response = await context.services.twin.record_genotype(request, context.caller_metadata)
        return GenotypeResult(genotype=Genotype.from_pb(response.genotype), version=response.version)

    @guarded_mutation(Operation.SET_MEDICATIONS, description="Replace the medication list.")
    async def set_medications(
        self, info: Info[Any, Any], input: MedicationsInput
    ) -> MedicationsResult | None:
        context = request_context(info)
        patient = context.patient_pseudonym(str(input.patient_id), field="input.patientId")
        medications, expected = inputs.validate_medications(
            [
                inputs.MedicationDraft(
                    name=m.name,
                    rxnorm_code=m.rxnorm_code.strip(),
                    daily_dose=m.daily_dose.value if m.daily_dose is not None else None,
                    dose_unit=m.daily_dose.unit.strip() if m.daily_dose is not None else "",
                    started_at=m.started_at,
                    stopped_at=m.stopped_at,
                    indication=m.indication,
                )
                for m in input.medications
            ],
            expected_version=input.expected_version,
            now=datetime.now(UTC),
        )
        request = twin_pb2.SetMedicationsRequest(patient=patient_ref(patient))
        for m in medications:
            entry = request.medications.add(name=m.name, rxnorm_code=m.rxnorm_code, indication=m.indication)
            if m.daily_dose is not None:
                entry.daily_dose.CopyFrom(common_pb2.Quantity(value=m.daily_dose, unit=m.dose_unit))
            if m.started_at is not None:
                entry.started_at.CopyFrom(_timestamp_pb(m.started_at))
            if m.stopped_at is not None:
                entry.stopped_at.CopyFrom(_timestamp_pb(m.stopped_at))
        _set_expected(request, expected)
        response = await context.services.twin.set_medications(request, context.caller_metadata)
        return MedicationsResult(
            medications=[Medication.from_pb(m) for m in response.medications], version=response.version
        )

    @guarded_mutation(Operation.REQUEST_ANALYSIS, description="Queue a PAT analysis of a week.")
    async def request_actigraphy_analysis(
        self, info: Info[Any, Any], input: ActigraphyAnalysisInput
    ) -> AnalysisRequestResult | None:
        context = request_context(info)
        patient = context.patient_pseudonym(str(input.patient_id), field="input.patientId")
        draft = inputs.validate_analysis_request(
            week_start=input.week_start,
            week_end=input.week_end,
            idempotency_key=input.idempotency_key,
            now=datetime.now(UTC),
        )
        request = twin_pb2.RequestActigraphyAnalysisRequest(
            patient=patient_ref(patient), idempotency_key=draft.idempotency_key
        )
        if draft.week_start is not None and draft.week_end is not None:
            request.week.start.CopyFrom(_timestamp_pb(draft.week_start))
            request.week.end.CopyFrom(_timestamp_pb(draft.week_end))
        if input.model_size is not None:
            request.model_size = actigraphy_pb2.PatModelSize.Value(f"PAT_MODEL_SIZE_{input.model_size.value}")
        response = await context.services.twin.request_analysis(request, context.caller_metadata)
        return AnalysisRequestResult(
            request_event_id=response.request_event_id,
            week_start=timestamp(response.week, "start") if response.HasField("week") else None,
            week_end=timestamp(response.week, "end") if response.HasField("week") else None,
            minutes_present=response.minutes_present,
        )


# ---- subscriptions ----------------------------------------------------------------------------------------


@strawberry.type(description="A committed change of a twin.")
class TwinUpdate:
    patient_id: strawberry.ID
    version: int
    previous_version: int
    changed_sections: list[str]
    cause_event_id: str
    event_id: str
    occurred_at: datetime | None

    @classmethod
    def from_event(cls, e: events_pb2.TwinUpdated) -> TwinUpdate:
        return cls(
            patient_id=strawberry.ID(e.patient.pseudonym),
            version=e.version,
            previous_version=e.previous_version,
            changed_sections=list(e.changed_sections),
            cause_event_id=e.cause_event_id,
            event_id=e.event_id,
            occurred_at=timestamp(e, "occurred_at"),
        )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Every committed change of the patient's twin from now on (graphql-transport-ws).",
        metadata={OPERATION_METADATA: Operation.SUBSCRIBE_TWIN},
    )
    async def twin_updated(
        self, info: Info[Any, Any], patient_id: strawberry.ID
    ) -> AsyncGenerator[TwinUpdate, None]:
        context = request_context(info)
        patient = context.patient_pseudonym(str(patient_id), field="patientId")
        await guard_subscription(context, Operation.SUBSCRIBE_TWIN, patient)
        hub = context.services.hub
        if hub is None:
            raise ServiceUnavailableError(
                "twin updates need Kafka (NOVAMIND_KAFKA_BOOTSTRAP)", service="gateway"
            )
        async with hub.subscribe(patient) as events:
            async for event in events:
                yield TwinUpdate.from_event(event)


def build_schema(settings: GatewaySettings | None = None) -> strawberry.Schema:
    """The gateway schema with the document limits of ``settings``."""
    settings = settings or GatewaySettings()
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[*limit_extensions(settings), RequestScope, ErrorCodes],
    )


#: Root types whose every field must declare its operation (or be a locator).
ROOT_TYPES = (Query, Mutation, Subscription, Patient)
