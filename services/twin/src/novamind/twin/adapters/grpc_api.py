"""The gRPC face of the twin (``novamind.api.twin.v1.TwinService``).

Errors are taxonomy errors (:mod:`novamind.core.errors`); the core server interceptor maps them
to gRPC statuses with an ErrorDetail. Messages name the field and rule, never patient values.
Every mutation is one transaction: the twin's new version, its history row and the outbox events.
"""

from __future__ import annotations

import base64
import binascii
import math
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
import sqlalchemy as sa
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from novamind.api.common.v1 import common_pb2
from novamind.api.pharmacogenomics.v1 import pharmacogenomics_pb2, pharmacogenomics_pb2_grpc
from novamind.api.twin.v1 import twin_pb2, twin_pb2_grpc
from novamind.core.errors import (
    DeadlineExceededError,
    NotFoundError,
    NotImplementedYetError,
    ServiceUnavailableError,
    ValidationError,
)
from novamind.core.kafka import ConsumerRunner, processed_events
from novamind.core.privacy import is_pseudonym
from novamind.core.rpc import ServiceClient, current_request_id
from novamind.twin.adapters.analysis_requests import (
    ORIGIN_API,
    AnalysisRequester,
    QueuedRequest,
    api_request_id,
    week_series,
)
from novamind.twin.adapters.ingestion import add_symptom_report, instrument_of
from novamind.twin.adapters.orchestrator import InsightInputs, InsightsOrchestrator
from novamind.twin.adapters.state import TwinState
from novamind.twin.adapters.store import ReadingStore, SchemaCounts
from novamind.twin.adapters.tables import analyses, readings, twins
from novamind.twin.adapters.twin_store import Change, TwinRecord, TwinStore
from novamind.twin.domain import sections
from novamind.twin.domain.medications import MedicationEntry, validate_medications
from novamind.twin.domain.readings import (
    COUNTS_PER_MINUTE,
    EPOCH_SECONDS,
    HEART_RATE,
    MINUTES_PER_WEEK,
    STEP_COUNT,
    WEEK,
    daily_means,
    daily_totals,
    local_midnight,
    trailing_week_start,
)
from novamind.twin.domain.symptoms import score_report

DEFAULT_HISTORY_DAYS = 90
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_BATCH = 500
MAX_IDEMPOTENCY_KEY = 200


def _page_size(value: int) -> int:
    if value == 0:
        return DEFAULT_PAGE_SIZE
    if value > MAX_PAGE_SIZE:
        raise ValidationError(f"page_size must be 1-{MAX_PAGE_SIZE}", field="page_size")
    return value


def _encode_token(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def _decode_token(kind: str, token: str) -> str | None:
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationError("page_token is not a token this service issued", field="page_token") from None
    prefix, _, value = text.partition(":")
    if prefix != kind or not value:
        raise ValidationError("page_token is not a token this service issued", field="page_token")
    return value


def _patient(ref: common_pb2.PatientRef, field: str = "patient") -> str:
    if not ref.pseudonym:
        raise ValidationError("the patient pseudonym is required", field=f"{field}.pseudonym")
    if not is_pseudonym(ref.pseudonym):
        raise ValidationError("not a patient pseudonym (pt_ + 20 hex digits)", field=f"{field}.pseudonym")
    return ref.pseudonym


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _change_id() -> str:
    """Cause id of an API change without an idempotency key: the request id, else a new UUID."""
    return current_request_id() or str(uuid.uuid4())


class TwinServicer(twin_pb2_grpc.TwinServiceServicer):
    """Serves ``TwinService`` from the store; insights are delegated to the orchestrator."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        twins: TwinStore,
        readings_store: ReadingStore,
        requester: AnalysisRequester,
        consumers: Sequence[ConsumerRunner],
        started_at: datetime,
        orchestrator: InsightsOrchestrator | None = None,
        pharmacogenomics: ServiceClient | None = None,
        genotype_timeout_seconds: float = 10.0,
    ) -> None:
        self._engine = engine
        self._twins = twins
        self._readings = readings_store
        self._requester = requester
        self._consumers = consumers
        self._started_at = started_at
        self._orchestrator = orchestrator
        self._pharmacogenomics = pharmacogenomics
        self._genotype_timeout = genotype_timeout_seconds

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncSession]:
        async with AsyncSession(self._engine, expire_on_commit=False) as session:
            yield session

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        async with AsyncSession(self._engine, expire_on_commit=False) as session, session.begin():
            yield session

    # -- reads -------------------------------------------------------------------------------

    async def GetTwin(
        self, request: twin_pb2.GetTwinRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> twin_pb2.GetTwinResponse:
        patient = _patient(request.patient)
        async with self._read() as session:
            record = await self._twins.get(session, patient)
            if record is None:
                raise NotFoundError("the patient has no twin", field="patient.pseudonym")
            counts = await self._readings.counts(session, [patient])
        days = request.symptom_history_days or DEFAULT_HISTORY_DAYS
        return twin_pb2.GetTwinResponse(twin=twin_message(record, counts.get(patient, []), days))

    async def BatchGetTwins(
        self, request: twin_pb2.BatchGetTwinsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> twin_pb2.BatchGetTwinsResponse:
        if len(request.patients) > MAX_BATCH:
            raise ValidationError(f"at most {MAX_BATCH} patients per call", field="patients")
        wanted = list(
            dict.fromkeys(_patient(ref, f"patients[{i}]") for i, ref in enumerate(request.patients))
        )
        async with self._read() as session:
            found = await self._twins.get_many(session, wanted)
            counts = await self._readings.counts(session, list(found))
        days = request.symptom_history_days or DEFAULT_HISTORY_DAYS
        return twin_pb2.BatchGetTwinsResponse(
            twins=[twin_message(found[p], counts.get(p, []), days) for p in wanted if p in found],
            not_found=[common_pb2.PatientRef(pseudonym=p) for p in wanted if p not in found],
        )

    async def ListTwinVersions(
        self, request: twin_pb2.ListTwinVersionsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> twin_pb2.ListTwinVersionsResponse:
        patient = _patient(request.patient)
        size = _page_size(request.page_size)
        token = _decode_token("v", request.page_token)
        if token is not None and not token.isdigit():
            raise ValidationError("page_token is not a token this service issued", field="page_token")
        async with self._read() as session:
            exists = await session.scalar(sa.select(twins.c.version).where(twins.c.patient == patient))
            if exists is None:
                raise NotFoundError("the patient has no twin", field="patient.pseudonym")
            rows = await self._twins.versions(
                session, patient, before=None if token is None else int(token), limit=size + 1
            )
        page = rows[:size]
        response = twin_pb2.ListTwinVersionsResponse(
            versions=[
                twin_pb2.TwinVersion(
                    version=version,
                    committed_at=_timestamp(committed_at),
                    changed_sections=changed,
                    cause_event_id=cause,
                )
                for version, committed_at, changed, cause in page
            ]
        )
        if len(rows) > size:
            response.next_page_token = _encode_token("v", str(page[-1][0]))
        return response

    async def ListPatients(
        self, request: twin_pb2.ListPatientsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> twin_pb2.ListPatientsResponse:
        size = _page_size(request.page_size)
        after = _decode_token("p", request.page_token)
        restrict = [_patient(ref, f"restrict_to[{i}]") for i, ref in enumerate(request.restrict_to)]
        query = sa.select(twins).order_by(twins.c.patient).limit(size + 1)
        if after is not None:
            query = query.where(twins.c.patient > after)
        if restrict:
            query = query.where(twins.c.patient.in_(restrict))
        async with self._read() as session:
            rows = (await session.execute(query)).all()
        page = rows[:size]
        response = twin_pb2.ListPatientsResponse()
        for row in page:
            record = self._twins.record_of(row)
            summary = twin_pb2.PatientSummary(
                patient=common_pb2.PatientRef(pseudonym=record.patient),
                version=record.version,
                updated_at=_timestamp(record.updated_at),
            )
            phq9 = record.state.latest_total(common_pb2.SYMPTOM_INSTRUMENT_PHQ9)
            gad7 = record.state.latest_total(common_pb2.SYMPTOM_INSTRUMENT_GAD7)
            if phq9 is not None:
                summary.latest_phq9_total = phq9
            if gad7 is not None:
                summary.latest_gad7_total = gad7
            response.patients.append(summary)
        if len(rows) > size:
            response.next_page_token = _encode_token("p", page[-1].patient)
        return response

    async def GetIngestionStats(
        self, request: twin_pb2.GetIngestionStatsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> twin_pb2.GetIngestionStatsResponse:
        patient = _patient(request.patient) if request.HasField("patient") else None
        topics: list[twin_pb2.TopicIngestionStats] = []
        for consumer in self._consumers:
            counts = consumer.stats
            # Each runner consumes one topic, so its counts are that topic's.
            topics.extend(
                twin_pb2.TopicIngestionStats(
                    topic=topic,
                    received=counts.settled,
                    applied=counts.applied,
                    duplicates=counts.duplicate,
                    dead_lettered=counts.dead_lettered,
                    retried=counts.retries,
                )
                for topic in consumer.topics
            )
        async with self._read() as session:
            reading_query = sa.select(sa.func.count()).select_from(readings)
            if patient is None:
                groups = sorted({consumer.group_id for consumer in self._consumers})
                distinct = await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(processed_events)
                    .where(processed_events.c.consumer_group.in_(groups))
                )
                readings_applied = await session.scalar(reading_query)
            else:
                # Per patient, every stored reading, analysis and symptom report is one event.
                readings_applied = await session.scalar(reading_query.where(readings.c.patient == patient))
                analysis_count = await session.scalar(
                    sa.select(sa.func.count()).select_from(analyses).where(analyses.c.patient == patient)
                )
                record = await self._twins.get(session, patient)
                reports = 0 if record is None else len(record.state.symptom_reports)
                distinct = int(readings_applied or 0) + int(analysis_count or 0) + reports
        return twin_pb2.GetIngestionStatsResponse(
            topics=topics,
            readings_applied=int(readings_applied or 0),
            distinct_events=int(distinct or 0),
            since=_timestamp(self._started_at),
        )

    # -- mutations ---------------------------------------------------------------------------

    async def SubmitSymptomReport(
        self, request: twin_pb2.SubmitSymptomReportRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> twin_pb2.SubmitSymptomReportResponse:
        patient = _patient(request.patient)
        if not request.HasField("reported_at"):
            raise ValidationError("reported_at is required", field="reported_at")
        total = score_report(
            instrument_of(request.instrument),
            list(request.item_responses),
            total=request.mood_rating if request.HasField("mood_rating") else None,
            rating_field="mood_rating",
        )
        key = request.idempotency_key
        if len(key) > MAX_IDEMPOTENCY_KEY:
            raise ValidationError(
                f"idempotency_key is longer than {MAX_IDEMPOTENCY_KEY} characters", field="idempotency_key"
            )
        report = twin_pb2.SymptomReport(
            report_id=key or str(uuid.uuid4()),
            instrument=request.instrument,
            item_responses=list(request.item_responses),
            total=total,
            reported_at=request.reported_at,
            source="api",
        )
        expected = request.expected_version if request.HasField("expected_version") else None
        async with self._write() as session:
            if key:
                duplicate = await self._stored_report(session, patient, key)
                if duplicate is not None:
                    return duplicate
            applied = await self._twins.apply(
                session,
                patient,
                add_symptom_report(report),
                cause_event_id=report.report_id,
                expected_version=expected,
            )
            if not applied.changed:
                duplicate = await self._stored_report(session, patient, report.report_id)
                if duplicate is not None:
                    return duplicate
        assert applied.twin is not None
        return twin_pb2.SubmitSymptomReportResponse(report=report, version=applied.twin.version)

    async def _stored_report(
        self, session: AsyncSession, patient: str, report_id: str
    ) -> twin_pb2.SubmitSymptomReportResponse | None:
        record = await self._twins.get(session, patient)
        stored = None if record is None else record.state.report(report_id)
        if record is None or stored is None:
            return None
        version = await self._twins.version_caused_by(session, patient, report_id)
        return twin_pb2.SubmitSymptomReportResponse(
            report=stored, version=version or record.version, duplicate=True
        )

    async def SetMedications(
        self, request: twin_pb2.SetMedicationsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> twin_pb2.SetMedicationsResponse:
        patient = _patient(request.patient)
        validate_medications(
            [
                MedicationEntry(
                    name=m.name,
                    dose_value=m.daily_dose.value if m.HasField("daily_dose") else None,
                    dose_unit=m.daily_dose.unit,
                    started_at=m.started_at.ToDatetime(tzinfo=UTC) if m.HasField("started_at") else None,
                    stopped_at=m.stopped_at.ToDatetime(tzinfo=UTC) if m.HasField("stopped_at") else None,
                )
                for m in request.medications
            ]
        )
        wanted = list(request.medications)

        def replace(state: TwinState) -> Change | None:
            if [m.SerializeToString(deterministic=True) for m in state.medications] == [
                m.SerializeToString(deterministic=True) for m in wanted
            ]:
                return None
            state.medications = [_copy(m) for m in wanted]
            return Change(
                (sections.MEDICATIONS,),
                {
                    "medications": [
                        json_format.MessageToDict(m, preserving_proto_field_name=True) for m in wanted
                    ]
                },
            )

        expected = request.expected_version if request.HasField("expected_version") else None
        async with self._write() as session:
            applied = await self._twins.apply(
                session, patient, replace, cause_event_id=_change_id(), expected_version=expected
            )
        assert applied.twin is not None
        return twin_pb2.SetMedicationsResponse(
            medications=applied.twin.state.medications, version=applied.twin.version
        )

    async def RecordGenotype(
        self, request: twin_pb2.RecordGenotypeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> twin_pb2.RecordGenotypeResponse:
        patient = _patient(request.patient)
        which = request.WhichOneof("input")
        if which is None:
            raise ValidationError("a genotype needs vcf or outside_calls", field="input")
        if which == "outside_calls":
            _validate_outside_calls(request.outside_calls)
        genotype = await self._interpret(patient, request)
        expected = request.expected_version if request.HasField("expected_version") else None

        def record_genotype(state: TwinState) -> Change:
            state.genotype = genotype
            return Change(
                (sections.GENOTYPE,),
                {"genotype": json_format.MessageToDict(genotype, preserving_proto_field_name=True)},
            )

        async with self._write() as session:
            applied = await self._twins.apply(
                session, patient, record_genotype, cause_event_id=_change_id(), expected_version=expected
            )
        assert applied.twin is not None
        return twin_pb2.RecordGenotypeResponse(genotype=genotype, version=applied.twin.version)

    async def _interpret(
        self, patient: str, request: twin_pb2.RecordGenotypeRequest
    ) -> twin_pb2.GenotypeSummary:
        """Interpret through pharmacogenomics; outside calls are kept uninterpreted when it cannot."""
        interpret = pharmacogenomics_pb2.InterpretGenotypeRequest(
            patient=common_pb2.PatientRef(pseudonym=patient)
        )
        if request.HasField("vcf"):
            interpret.vcf.CopyFrom(request.vcf)
        else:
            interpret.outside_calls.CopyFrom(request.outside_calls)
        try:
            if self._pharmacogenomics is None:
                raise ServiceUnavailableError(
                    "no pharmacogenomics client is configured", service="pharmacogenomics"
                )
            stub = pharmacogenomics_pb2_grpc.PharmacogenomicsServiceStub(self._pharmacogenomics.channel)
            response: pharmacogenomics_pb2.InterpretGenotypeResponse = await self._pharmacogenomics.call(
                stub.InterpretGenotype, interpret, timeout=self._genotype_timeout
            )
        except (NotImplementedYetError, ServiceUnavailableError, DeadlineExceededError) as exc:
            if request.HasField("vcf"):
                raise
            return uninterpreted_genotype(request.outside_calls, exc.code.value)
        return twin_pb2.GenotypeSummary(
            genes=response.genes,
            knowledge_base=response.knowledge_base,
            recorded_at=_timestamp(datetime.now(UTC)),
        )

    async def RequestActigraphyAnalysis(
        self, request: twin_pb2.RequestActigraphyAnalysisRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> twin_pb2.RequestActigraphyAnalysisResponse:
        patient = _patient(request.patient)
        key = request.idempotency_key
        if len(key) > MAX_IDEMPOTENCY_KEY:
            raise ValidationError(
                f"idempotency_key is longer than {MAX_IDEMPOTENCY_KEY} characters", field="idempotency_key"
            )
        if request.HasField("series") and request.HasField("week"):
            raise ValidationError("give either week or series, not both", field="series")
        if request.HasField("series"):
            _validate_week_series(request.series)
        event_id = api_request_id(patient, key) if key else str(uuid.uuid4())
        cause = key or event_id
        async with self._write() as session:
            queued = await self._requester.find(session, event_id)
            if queued is None:
                record = await self._twins.get(session, patient)
                time_zone = record.time_zone if record is not None else self._twins.default_time_zone
                series = await self._series_to_analyse(session, patient, request, time_zone)
                queued = await self._requester.queue(
                    session,
                    patient,
                    series,
                    event_id=event_id,
                    origin=ORIGIN_API,
                    cause_event_id=cause,
                    model_size=request.model_size,
                    correlation_id=current_request_id() or event_id,
                )
                await self._twins.apply(
                    session,
                    patient,
                    lambda _: Change((sections.ANALYSIS_REQUEST,), {"request_event_id": event_id}),
                    cause_event_id=cause,
                )
        return _request_response(queued)

    async def _series_to_analyse(
        self,
        session: AsyncSession,
        patient: str,
        request: twin_pb2.RequestActigraphyAnalysisRequest,
        time_zone: str,
    ) -> common_pb2.TimeSeries:
        if request.HasField("series"):
            series = common_pb2.TimeSeries()
            series.CopyFrom(request.series)
            series.step_seconds = EPOCH_SECONDS
            series.unit = COUNTS_PER_MINUTE
            series.time_zone = series.time_zone or time_zone
            return series
        if request.HasField("week"):
            if not request.week.HasField("start"):
                raise ValidationError("the week needs its start", field="week.start")
            start = request.week.start.ToDatetime(tzinfo=UTC)
            if request.week.HasField("end") and request.week.end.ToDatetime(tzinfo=UTC) - start != WEEK:
                raise ValidationError("a week is 10,080 minutes from its start", field="week.end")
        else:
            newest = await self._readings.newest_complete_day(session, patient)
            if newest is None:
                raise NotFoundError("the patient has no complete day of activity counts", field="week")
            start = trailing_week_start(newest, ZoneInfo(time_zone))
        week = await self._requester.stored_week(session, patient, start)
        if week.minutes_present == 0:
            raise NotFoundError("no stored activity counts in the requested week", field="week")
        return week_series(week, time_zone)

    # -- insights ----------------------------------------------------------------------------

    async def GetInsights(
        self, request: twin_pb2.GetInsightsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> twin_pb2.GetInsightsResponse:
        if self._orchestrator is None:
            raise NotImplementedYetError("insights are not configured in this process")
        patient = _patient(request.patient)
        options = request.options if request.HasField("options") else twin_pb2.InsightOptions()
        inputs = await self.insight_inputs(patient, options.lookback_days or DEFAULT_HISTORY_DAYS)
        return await self._orchestrator.insights(inputs, options)

    async def insight_inputs(self, patient: str, lookback_days: int) -> InsightInputs:
        """What the orchestrator gets: the twin (symptom history of ``lookback_days``), the previous
        analysis, the trailing week of the newest complete day, and daily biometric series (steps
        per day, mean and resting heart rate per day, total sleep time per night of the latest
        analysis) over ``lookback_days`` local days. Raises NotFoundError without a twin.
        """
        async with self._read() as session:
            record = await self._twins.get(session, patient)
            if record is None:
                raise NotFoundError("the patient has no twin", field="patient.pseudonym")
            counts = await self._readings.counts(session, [patient])
            return InsightInputs(
                twin=twin_message(record, counts.get(patient, []), lookback_days),
                previous_actigraphy=record.state.previous_actigraphy,
                week=await self._trailing_week(session, record),
                daily_biometrics=await self._daily_biometrics(session, record, lookback_days),
            )

    async def _trailing_week(self, session: AsyncSession, record: TwinRecord) -> common_pb2.TimeSeries | None:
        newest = await self._readings.newest_complete_day(session, record.patient)
        if newest is None:
            return None
        week = await self._requester.stored_week(
            session, record.patient, trailing_week_start(newest, ZoneInfo(record.time_zone))
        )
        return week_series(week, record.time_zone) if week.minutes_present else None

    async def _daily_biometrics(
        self, session: AsyncSession, record: TwinRecord, lookback_days: int
    ) -> list[common_pb2.DailySeries]:
        zone = ZoneInfo(record.time_zone)
        today = datetime.now(UTC).astimezone(zone).date()
        start = local_midnight(today - timedelta(days=lookback_days - 1), zone)
        end = local_midnight(today + timedelta(days=1), zone)
        steps = await self._readings.samples(session, record.patient, STEP_COUNT, start, end)
        heart = await self._readings.samples(session, record.patient, HEART_RATE, start, end)
        resting = await self._readings.samples(
            session, record.patient, HEART_RATE, start, end, at_rest_only=True
        )
        series = [
            _daily("steps", "{steps}", daily_totals(steps, zone)),
            _daily("heart_rate", "/min", daily_means(heart, zone)),
            _daily("resting_heart_rate", "/min", daily_means(resting, zone)),
        ]
        sleep: dict[date, float] = {}
        efficiency: dict[date, float] = {}
        latest = record.state.latest_actigraphy
        for night in latest.nights if latest is not None else ():
            try:
                night_date = date.fromisoformat(night.night_date)
            except ValueError:
                continue
            if night.HasField("total_sleep_time_minutes"):
                sleep[night_date] = night.total_sleep_time_minutes
            if night.HasField("sleep_efficiency_percent"):
                efficiency[night_date] = night.sleep_efficiency_percent
        series.append(_daily("total_sleep_time_minutes", "min", dict(sorted(sleep.items()))))
        series.append(_daily("sleep_efficiency", "%", dict(sorted(efficiency.items()))))
        return [s for s in series if s.values]


def _daily(name: str, unit: str, values: Mapping[date, float]) -> common_pb2.DailySeries:
    return common_pb2.DailySeries(
        name=name,
        unit=unit,
        values=[common_pb2.DailyValue(date=day.isoformat(), value=value) for day, value in values.items()],
    )


def _copy(message: common_pb2.Medication) -> common_pb2.Medication:
    copy = common_pb2.Medication()
    copy.CopyFrom(message)
    return copy


def twin_message(record: TwinRecord, counts: Sequence[SchemaCounts], history_days: int) -> twin_pb2.Twin:
    """The wire form of a twin with the symptom reports of the last ``history_days`` days."""
    since = datetime.now(UTC) - timedelta(days=history_days)
    state = record.state
    twin = twin_pb2.Twin(
        patient=common_pb2.PatientRef(pseudonym=record.patient),
        version=record.version,
        created_at=_timestamp(record.created_at),
        updated_at=_timestamp(record.updated_at),
        time_zone=record.time_zone,
        symptom_history=[r for r in state.symptom_reports if r.reported_at.ToDatetime(tzinfo=UTC) >= since],
        medications=state.medications,
        readings=twin_pb2.ReadingCounts(
            total=sum(c.count for c in counts), by_schema={c.schema: c.count for c in counts}
        ),
    )
    if counts:
        twin.readings.last_reading_at.CopyFrom(_timestamp(max(c.last_reading_at for c in counts)))
    if state.latest_actigraphy is not None:
        twin.latest_actigraphy.CopyFrom(state.latest_actigraphy)
    if state.genotype is not None:
        twin.genotype.CopyFrom(state.genotype)
    return twin


def uninterpreted_genotype(
    calls: pharmacogenomics_pb2.OutsideCalls, reason_code: str
) -> twin_pb2.GenotypeSummary:
    """Outside-lab calls kept as reported (phenotype = the lab's), with a note saying so."""
    note = (
        f"not interpreted: the pharmacogenomics service could not interpret the calls ({reason_code}); "
        "phenotype as reported by the lab"
    )
    genes = [
        pharmacogenomics_pb2.GeneResult(
            gene=call.gene,
            status=pharmacogenomics_pb2.CALL_STATUS_CALLED,
            diplotype=call.diplotype,
            phenotype=call.reported_phenotype,
            source=pharmacogenomics_pb2.CALL_SOURCE_OUTSIDE_CALL,
            notes=[note],
        )
        for call in calls.calls
    ]
    by_gene: dict[str, list[pharmacogenomics_pb2.HlaAlleleStatus]] = {}
    for status in calls.hla:
        by_gene.setdefault(status.allele.split("*", 1)[0], []).append(status)
    genes += [
        pharmacogenomics_pb2.GeneResult(
            gene=gene,
            status=pharmacogenomics_pb2.CALL_STATUS_CALLED,
            hla=statuses,
            source=pharmacogenomics_pb2.CALL_SOURCE_OUTSIDE_CALL,
            notes=[note],
        )
        for gene, statuses in by_gene.items()
    ]
    return twin_pb2.GenotypeSummary(
        genes=sorted(genes, key=lambda g: g.gene), recorded_at=_timestamp(datetime.now(UTC))
    )


def _validate_outside_calls(calls: pharmacogenomics_pb2.OutsideCalls) -> None:
    if not calls.calls and not calls.hla:
        raise ValidationError("outside_calls has no calls and no HLA results", field="outside_calls")
    for index, call in enumerate(calls.calls):
        if not call.gene:
            raise ValidationError("a call needs its gene", field=f"outside_calls.calls[{index}].gene")
        if not call.diplotype:
            raise ValidationError(
                "a call needs its diplotype", field=f"outside_calls.calls[{index}].diplotype"
            )
    for index, status in enumerate(calls.hla):
        if not status.allele.startswith("HLA-") or "*" not in status.allele:
            raise ValidationError(
                "an HLA allele looks like 'HLA-B*15:02'", field=f"outside_calls.hla[{index}].allele"
            )


def _validate_week_series(series: common_pb2.TimeSeries) -> None:
    """A supplied week: 10,080 one-minute counts from a start, with a matching missing mask."""
    if not series.HasField("start"):
        raise ValidationError("the series needs its start", field="series.start")
    if series.step_seconds not in (0, EPOCH_SECONDS):
        raise ValidationError(
            "a week has one value per minute (step_seconds 60)", field="series.step_seconds"
        )
    if len(series.values) != MINUTES_PER_WEEK:
        raise ValidationError(
            f"a week has {MINUTES_PER_WEEK} values, got {len(series.values)}", field="series.values"
        )
    if len(series.missing) not in (0, MINUTES_PER_WEEK):
        raise ValidationError("missing flags must match the values one to one", field="series.missing")
    if series.unit not in ("", COUNTS_PER_MINUTE):
        raise ValidationError(f"the unit must be {COUNTS_PER_MINUTE}", field="series.unit")
    for index, value in enumerate(series.values):
        if not math.isfinite(value) or value < 0:
            raise ValidationError("counts must be finite and non-negative", field=f"series.values[{index}]")
    if series.time_zone:
        try:
            ZoneInfo(series.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError("unknown IANA time zone", field="series.time_zone") from None
    if len(series.missing) and all(series.missing):
        raise ValidationError("every minute of the week is missing", field="series.missing")


def _request_response(queued: QueuedRequest) -> twin_pb2.RequestActigraphyAnalysisResponse:
    return twin_pb2.RequestActigraphyAnalysisResponse(
        request_event_id=queued.event_id,
        week=common_pb2.TimeInterval(start=_timestamp(queued.week_start), end=_timestamp(queued.week_end)),
        minutes_present=queued.minutes_present,
    )
