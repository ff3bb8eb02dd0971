"""The twin as a running service: gRPC over loopback, real Kafka topics, SQLite.

One twin runs for the whole module on its own topics; each test uses its own patients. A
pharmacogenomics stand-in (the real service does not interpret genotypes yet) speaks the real
protocol on loopback and can be told to answer NOT_IMPLEMENTED, be unavailable, or interpret.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from novamind.api.common.v1 import common_pb2
from novamind.api.events.v1 import events_pb2
from novamind.api.pharmacogenomics.v1 import pharmacogenomics_pb2, pharmacogenomics_pb2_grpc
from novamind.api.twin.v1 import twin_pb2, twin_pb2_grpc
from novamind.core.errors import (
    ConflictError,
    NotFoundError,
    NotImplementedYetError,
    NovamindError,
    ServiceUnavailableError,
    ValidationError,
)
from novamind.core.kafka import dlq_topic
from novamind.core.resilience import CircuitBreakers, RetryPolicy
from novamind.core.rpc import ServerInterceptor, ServiceClient, open_channel
from novamind.devtools.net import free_port
from novamind.devtools.pytest_plugin import KafkaTopicFactory, running_service, wait_for
from novamind.devtools.readings import activity_count_point
from novamind.twin.adapters.migrate import upgrade_to_head
from novamind.twin.app import TwinService, TwinTopics, build_service
from novamind.twin.domain.readings import MINUTES_PER_WEEK

from .conftest import new_patient, proto_json, service_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

T = TypeVar("T")


class StandInPharmacogenomics(pharmacogenomics_pb2_grpc.PharmacogenomicsServiceServicer):
    """InterpretGenotype as told: "not_implemented", "unavailable" or "interpret"."""

    def __init__(self) -> None:
        self.mode = "not_implemented"
        self.calls = 0

    async def InterpretGenotype(
        self, request: pharmacogenomics_pb2.InterpretGenotypeRequest, context: Any
    ) -> pharmacogenomics_pb2.InterpretGenotypeResponse:
        self.calls += 1
        if self.mode == "not_implemented":
            raise NotImplementedYetError("InterpretGenotype is not served by this build")
        if self.mode == "unavailable":
            raise ServiceUnavailableError("the knowledge base is loading")
        return pharmacogenomics_pb2.InterpretGenotypeResponse(
            patient=request.patient,
            genes=[
                pharmacogenomics_pb2.GeneResult(
                    gene=call.gene,
                    status=pharmacogenomics_pb2.CALL_STATUS_CALLED,
                    diplotype=call.diplotype,
                    phenotype="Intermediate Metabolizer",
                    source=pharmacogenomics_pb2.CALL_SOURCE_OUTSIDE_CALL,
                )
                for call in request.outside_calls.calls
            ],
            knowledge_base=pharmacogenomics_pb2.KnowledgeBase(cpic_version="1.36"),
        )


@dataclass
class RunningTwin:
    service: TwinService
    topics: TwinTopics
    bootstrap: str
    stub: twin_pb2_grpc.TwinServiceStub
    client: ServiceClient
    pharmacogenomics: StandInPharmacogenomics
    producer: AIOKafkaProducer
    _records: dict[str, list[Any]] = field(default_factory=dict)

    async def call(self, method: Callable[..., Awaitable[T]], request: Message) -> T:
        return await self.client.call(method, request, timeout=10, idempotent=False)

    async def produce(self, topic: str, key: str, value: bytes) -> None:
        await self.producer.send_and_wait(topic, value, key=key.encode())

    async def records(self, topic: str) -> list[Any]:
        """Every record on ``topic`` so far (single partition), read incrementally."""
        seen = self._records.setdefault(topic, [])
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, len(seen))
            while True:
                batch = await consumer.getmany(tp, timeout_ms=100)
                if not batch.get(tp):
                    break
                seen.extend(batch[tp])
        finally:
            await consumer.stop()
        return seen

    async def events(self, topic: str, patient: str, cls: type[Any]) -> list[Any]:
        found = []
        for record in await self.records(topic):
            if record.key == patient.encode():
                message = cls()
                json_format.Parse(record.value, message)
                found.append(message)
        return found


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def twin(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningTwin]:
    factory = KafkaTopicFactory(kafka_bootstrap)
    topics = TwinTopics(
        device_readings=await factory("twin-readings"),
        symptom_reports=await factory("twin-symptoms"),
        analysis_completed=await factory("twin-completed"),
        analysis_requested=await factory("twin-requested"),
        twin_updated=await factory("twin-updated"),
    )
    stand_in = StandInPharmacogenomics()
    pgx_port = free_port()
    pgx_server = grpc.aio.server(interceptors=[ServerInterceptor("pharmacogenomics")])
    pharmacogenomics_pb2_grpc.add_PharmacogenomicsServiceServicer_to_server(stand_in, pgx_server)
    pgx_server.add_insecure_port(f"127.0.0.1:{pgx_port}")
    await pgx_server.start()
    database: Path = tmp_path_factory.mktemp("twin-service") / "twin.db"
    settings = service_settings(
        f"sqlite+aiosqlite:///{database}",
        kafka_bootstrap=kafka_bootstrap,
        pharmacogenomics_address=f"127.0.0.1:{pgx_port}",
        breaker_failure_threshold=50,
    )
    await upgrade_to_head(settings)
    service = build_service(settings, topics=topics)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        async with running_service(service.runtime, timeout=30):
            channel = open_channel(f"127.0.0.1:{settings.grpc_port}")
            client = ServiceClient(
                "twin",
                channel,
                breakers=CircuitBreakers(failure_threshold=1000),
                retry_policy=RetryPolicy(max_attempts=1),
            )
            yield RunningTwin(
                service,
                topics,
                kafka_bootstrap,
                twin_pb2_grpc.TwinServiceStub(channel),
                client,
                stand_in,
                producer,
            )
            await channel.close()
    finally:
        await producer.stop()
        await pgx_server.stop(None)
        await factory.delete_created()


def ref(patient: str) -> common_pb2.PatientRef:
    return common_pb2.PatientRef(pseudonym=patient)


def stamp(value: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(value)
    return result


def phq9_request(
    patient: str, items: list[int], key: str = "", **extra: Any
) -> twin_pb2.SubmitSymptomReportRequest:
    return twin_pb2.SubmitSymptomReportRequest(
        patient=ref(patient),
        instrument=common_pb2.SYMPTOM_INSTRUMENT_PHQ9,
        item_responses=items,
        reported_at=stamp(datetime.now(UTC) - timedelta(hours=1)),
        idempotency_key=key,
        **extra,
    )


async def raises(kind: type[NovamindError], call: Awaitable[Any]) -> NovamindError:
    with pytest.raises(kind) as caught:
        await call
    return caught.value


# -- reads and symptom reports ---------------------------------------------------------------


async def test_a_patient_without_a_twin_is_not_found(twin: RunningTwin) -> None:
    patient = new_patient()
    error = await raises(
        NotFoundError, twin.call(twin.stub.GetTwin, twin_pb2.GetTwinRequest(patient=ref(patient)))
    )
    assert error.field == "patient.pseudonym" and patient not in error.message
    await raises(
        NotFoundError, twin.call(twin.stub.GetInsights, twin_pb2.GetInsightsRequest(patient=ref(patient)))
    )
    bad = await raises(
        ValidationError, twin.call(twin.stub.GetTwin, twin_pb2.GetTwinRequest(patient=ref("MRN-1")))
    )
    assert bad.field == "patient.pseudonym" and "MRN-1" not in str(bad)


async def test_a_repeated_symptom_report_is_a_duplicate_and_one_change_is_one_twin_updated_event(
    twin: RunningTwin,
) -> None:
    patient = new_patient()
    key = str(uuid.uuid4())
    first = await twin.call(
        twin.stub.SubmitSymptomReport, phq9_request(patient, [1, 2, 3, 0, 1, 2, 3, 0, 1], key)
    )
    assert (first.version, first.duplicate, first.report.total, first.report.report_id) == (
        1,
        False,
        13.0,
        key,
    )
    again = await twin.call(
        twin.stub.SubmitSymptomReport, phq9_request(patient, [1, 2, 3, 0, 1, 2, 3, 0, 1], key)
    )
    assert (again.version, again.duplicate, again.report) == (1, True, first.report)
    got = await twin.call(twin.stub.GetTwin, twin_pb2.GetTwinRequest(patient=ref(patient)))
    assert got.twin.version == 1 and [r.report_id for r in got.twin.symptom_history] == [key]

    # A second change follows the first through the relay, in order: once it is on the topic, a
    # duplicate publication of the first would be there too.
    await twin.call(
        twin.stub.SetMedications,
        twin_pb2.SetMedicationsRequest(
            patient=ref(patient), medications=[common_pb2.Medication(name="sertraline")]
        ),
    )

    async def second_published() -> bool:
        return any(
            e.version == 2
            for e in await twin.events(twin.topics.twin_updated, patient, events_pb2.TwinUpdated)
        )

    await wait_for(second_published, timeout=15, what="twin.updated.v1 of version 2")
    updates = await twin.events(twin.topics.twin_updated, patient, events_pb2.TwinUpdated)
    assert [(u.version, u.previous_version, list(u.changed_sections), u.cause_event_id) for u in updates][
        :1
    ] == [(1, 0, ["symptoms"], key)]
    assert [u.version for u in updates] == [1, 2]
    record = next(r for r in await twin.records(twin.topics.twin_updated) if r.key == patient.encode())
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["event-id"] == updates[0].event_id
    assert headers["event-type"] == "novamind.api.events.v1.TwinUpdated"


@pytest.mark.parametrize(
    ("request_change", "field"),
    [
        (lambda r: r.ClearField("reported_at"), "reported_at"),
        (lambda r: r.item_responses.pop(), "item_responses"),
        (lambda r: r.item_responses.__setitem__(4, 7), "item_responses[4]"),
        (lambda r: setattr(r, "instrument", common_pb2.SYMPTOM_INSTRUMENT_UNSPECIFIED), "instrument"),
        (
            lambda r: (
                setattr(r, "instrument", common_pb2.SYMPTOM_INSTRUMENT_MOOD),
                r.ClearField("item_responses"),
            ),
            "mood_rating",
        ),
        (lambda r: setattr(r, "idempotency_key", "k" * 201), "idempotency_key"),
    ],
)
async def test_malformed_symptom_reports_are_rejected_naming_the_field(
    twin: RunningTwin, request_change: Callable[[Any], Any], field: str
) -> None:
    request = phq9_request(new_patient(), [1] * 9)
    request_change(request)
    error = await raises(ValidationError, twin.call(twin.stub.SubmitSymptomReport, request))
    assert error.field == field


async def test_a_stale_expected_version_is_a_conflict(twin: RunningTwin) -> None:
    patient = new_patient()
    await twin.call(twin.stub.SubmitSymptomReport, phq9_request(patient, [0] * 9))
    await twin.call(twin.stub.SubmitSymptomReport, phq9_request(patient, [1] * 9, expected_version=1))
    error = await raises(
        ConflictError,
        twin.call(twin.stub.SubmitSymptomReport, phq9_request(patient, [2] * 9, expected_version=1)),
    )
    assert error.field == "expected_version"


async def test_batch_get_lists_patients_without_a_twin_in_not_found(twin: RunningTwin) -> None:
    known, unknown = new_patient(), new_patient()
    await twin.call(twin.stub.SubmitSymptomReport, phq9_request(known, [2] * 9))
    response = await twin.call(
        twin.stub.BatchGetTwins,
        twin_pb2.BatchGetTwinsRequest(patients=[ref(unknown), ref(known), ref(known)]),
    )
    assert [t.patient.pseudonym for t in response.twins] == [known]
    assert [p.pseudonym for p in response.not_found] == [unknown]
    assert response.twins[0].symptom_history[0].total == 18


async def test_list_patients_pages_through_the_restricted_patients(twin: RunningTwin) -> None:
    patients = sorted(new_patient() for _ in range(5))
    for index, patient in enumerate(patients):
        await twin.call(twin.stub.SubmitSymptomReport, phq9_request(patient, [index % 4] * 9))
    seen: list[twin_pb2.PatientSummary] = []
    token = ""
    pages = 0
    while True:
        page = await twin.call(
            twin.stub.ListPatients,
            twin_pb2.ListPatientsRequest(
                page_size=2, page_token=token, restrict_to=[ref(p) for p in reversed(patients)]
            ),
        )
        pages += 1
        seen.extend(page.patients)
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert [s.patient.pseudonym for s in seen] == patients
    assert [s.latest_phq9_total for s in seen] == [float(9 * (i % 4)) for i in range(5)]
    assert not any(s.HasField("latest_gad7_total") for s in seen)
    await raises(
        ValidationError, twin.call(twin.stub.ListPatients, twin_pb2.ListPatientsRequest(page_token="bm9wZQ"))
    )
    await raises(
        ValidationError, twin.call(twin.stub.ListPatients, twin_pb2.ListPatientsRequest(page_size=501))
    )


async def test_the_version_history_pages_newest_first(twin: RunningTwin) -> None:
    patient = new_patient()
    for i in range(5):
        await twin.call(
            twin.stub.SubmitSymptomReport, phq9_request(patient, [i % 4] * 9, key=f"key-{i}-{uuid.uuid4()}")
        )
    first = await twin.call(
        twin.stub.ListTwinVersions, twin_pb2.ListTwinVersionsRequest(patient=ref(patient), page_size=3)
    )
    second = await twin.call(
        twin.stub.ListTwinVersions,
        twin_pb2.ListTwinVersionsRequest(patient=ref(patient), page_size=3, page_token=first.next_page_token),
    )
    assert [v.version for v in first.versions] == [5, 4, 3] and first.next_page_token
    assert [v.version for v in second.versions] == [2, 1] and not second.next_page_token
    assert all(list(v.changed_sections) == ["symptoms"] for v in [*first.versions, *second.versions])
    assert second.versions[-1].cause_event_id.startswith("key-0-")


# -- medications and genotype ----------------------------------------------------------------


async def test_medications_are_validated_and_replaced(twin: RunningTwin) -> None:
    patient = new_patient()
    bad = await raises(
        ValidationError,
        twin.call(
            twin.stub.SetMedications,
            twin_pb2.SetMedicationsRequest(
                patient=ref(patient),
                medications=[
                    common_pb2.Medication(name="sertraline"),
                    common_pb2.Medication(
                        name="lithium", daily_dose=common_pb2.Quantity(value=-1, unit="mg")
                    ),
                ],
            ),
        ),
    )
    assert bad.field == "medications[1].daily_dose.value"
    upper = await raises(
        ValidationError,
        twin.call(
            twin.stub.SetMedications,
            twin_pb2.SetMedicationsRequest(
                patient=ref(patient), medications=[common_pb2.Medication(name="Zoloft")]
            ),
        ),
    )
    assert upper.field == "medications[0].name"
    wanted = [common_pb2.Medication(name="sertraline", daily_dose=common_pb2.Quantity(value=50, unit="mg"))]
    done = await twin.call(
        twin.stub.SetMedications, twin_pb2.SetMedicationsRequest(patient=ref(patient), medications=wanted)
    )
    assert (list(done.medications), done.version) == (wanted, 1)
    same = await twin.call(
        twin.stub.SetMedications, twin_pb2.SetMedicationsRequest(patient=ref(patient), medications=wanted)
    )
    assert same.version == 1  # nothing changed, no new version
    cleared = await twin.call(
        twin.stub.SetMedications, twin_pb2.SetMedicationsRequest(patient=ref(patient), expected_version=1)
    )
    assert (list(cleared.medications), cleared.version) == ([], 2)


def outside_calls() -> pharmacogenomics_pb2.OutsideCalls:
    return pharmacogenomics_pb2.OutsideCalls(
        calls=[
            pharmacogenomics_pb2.OutsideCall(
                gene="CYP2C19", diplotype="*1/*2", reported_phenotype="Intermediate Metabolizer", source="lab"
            ),
            pharmacogenomics_pb2.OutsideCall(gene="CYP2D6", diplotype="*1/*4", source="lab"),
        ],
        hla=[
            pharmacogenomics_pb2.HlaAlleleStatus(
                allele="HLA-B*15:02", status=pharmacogenomics_pb2.CARRIER_STATUS_NEGATIVE
            )
        ],
    )


@pytest.mark.parametrize("mode", ["not_implemented", "unavailable"])
async def test_outside_calls_are_kept_uninterpreted_when_pharmacogenomics_cannot_interpret(
    twin: RunningTwin, mode: str
) -> None:
    twin.pharmacogenomics.mode = mode
    patient = new_patient()
    response = await twin.call(
        twin.stub.RecordGenotype,
        twin_pb2.RecordGenotypeRequest(patient=ref(patient), outside_calls=outside_calls()),
    )
    genes = {g.gene: g for g in response.genotype.genes}
    assert sorted(genes) == ["CYP2C19", "CYP2D6", "HLA-B"]
    assert genes["CYP2C19"].phenotype == "Intermediate Metabolizer" and genes["CYP2C19"].diplotype == "*1/*2"
    assert genes["CYP2D6"].phenotype == ""
    assert genes["HLA-B"].hla[0].allele == "HLA-B*15:02"
    assert all("not interpreted" in g.notes[0] for g in genes.values())
    assert response.version == 1
    got = await twin.call(twin.stub.GetTwin, twin_pb2.GetTwinRequest(patient=ref(patient)))
    assert got.twin.genotype == response.genotype


async def test_a_vcf_that_cannot_be_interpreted_is_an_error(twin: RunningTwin) -> None:
    twin.pharmacogenomics.mode = "not_implemented"
    patient = new_patient()
    request = twin_pb2.RecordGenotypeRequest(
        patient=ref(patient),
        vcf=pharmacogenomics_pb2.VcfInput(vcf=b"##fileformat=VCFv4.2\n", reference_genome="GRCh38"),
    )
    await raises(NotImplementedYetError, twin.call(twin.stub.RecordGenotype, request))
    await raises(NotFoundError, twin.call(twin.stub.GetTwin, twin_pb2.GetTwinRequest(patient=ref(patient))))


async def test_an_interpreted_genotype_is_stored_as_interpreted(twin: RunningTwin) -> None:
    twin.pharmacogenomics.mode = "interpret"
    patient = new_patient()
    try:
        response = await twin.call(
            twin.stub.RecordGenotype,
            twin_pb2.RecordGenotypeRequest(patient=ref(patient), outside_calls=outside_calls()),
        )
    finally:
        twin.pharmacogenomics.mode = "not_implemented"
    assert response.genotype.knowledge_base.cpic_version == "1.36"
    assert {g.gene: g.phenotype for g in response.genotype.genes} == {
        "CYP2C19": "Intermediate Metabolizer",
        "CYP2D6": "Intermediate Metabolizer",
    }
    assert not any(g.notes for g in response.genotype.genes)


# -- actigraphy ------------------------------------------------------------------------------


def week_series(start: datetime, present: int) -> common_pb2.TimeSeries:
    values = [float(i % 300) for i in range(MINUTES_PER_WEEK)]
    missing = [i >= present for i in range(MINUTES_PER_WEEK)]
    return common_pb2.TimeSeries(
        start=stamp(start), step_seconds=60, values=values, missing=missing, unit="{counts}/min"
    )


async def test_an_analysis_of_a_supplied_week_is_requested_once_per_idempotency_key(
    twin: RunningTwin,
) -> None:
    patient = new_patient()
    start = datetime(2026, 3, 2, tzinfo=UTC)
    key = str(uuid.uuid4())
    request = twin_pb2.RequestActigraphyAnalysisRequest(
        patient=ref(patient), series=week_series(start, 9000), idempotency_key=key
    )
    first = await twin.call(twin.stub.RequestActigraphyAnalysis, request)
    again = await twin.call(twin.stub.RequestActigraphyAnalysis, request)
    assert first == again and first.minutes_present == 9000
    assert first.week.start.ToDatetime(tzinfo=UTC) == start
    assert first.week.end.ToDatetime(tzinfo=UTC) == start + timedelta(days=7)

    async def requested() -> list[events_pb2.ActigraphyAnalysisRequested]:
        return await twin.events(
            twin.topics.analysis_requested, patient, events_pb2.ActigraphyAnalysisRequested
        )

    await wait_for(lambda: _nonempty(requested()), timeout=15, what="the analysis request")
    # The request bumped the twin; its twin.updated.v1 follows the request on the outbox.
    await wait_for(
        lambda: _nonempty(twin.events(twin.topics.twin_updated, patient, events_pb2.TwinUpdated)),
        timeout=15,
        what="twin.updated.v1",
    )
    published = await requested()
    assert [r.event_id for r in published] == [first.request_event_id]
    assert len(published[0].week.values) == MINUTES_PER_WEEK and published[0].week.time_zone == "UTC"
    versions = await twin.call(
        twin.stub.ListTwinVersions, twin_pb2.ListTwinVersionsRequest(patient=ref(patient))
    )
    assert [list(v.changed_sections) for v in versions.versions] == [["analysis_request"]]

    short = week_series(start, 10)
    del short.values[-1]
    error = await raises(
        ValidationError,
        twin.call(
            twin.stub.RequestActigraphyAnalysis,
            twin_pb2.RequestActigraphyAnalysisRequest(patient=ref(patient), series=short),
        ),
    )
    assert error.field == "series.values"
    none_stored = await raises(
        NotFoundError,
        twin.call(
            twin.stub.RequestActigraphyAnalysis,
            twin_pb2.RequestActigraphyAnalysisRequest(patient=ref(new_patient())),
        ),
    )
    assert none_stored.field == "week"


async def _nonempty(items: Awaitable[list[Any]]) -> bool:
    return bool(await items)


async def topic_stats(twin: RunningTwin, topic: str) -> twin_pb2.TopicIngestionStats:
    stats = await twin.call(twin.stub.GetIngestionStats, twin_pb2.GetIngestionStatsRequest())
    return next(t for t in stats.topics if t.topic == topic)


async def test_readings_from_kafka_request_one_analysis_per_completed_day_and_none_on_redelivery(
    twin: RunningTwin,
) -> None:
    patient = new_patient()
    first_day = date(2026, 2, 2)
    records = []
    for day in range(5):
        noon = datetime(2026, 2, 2 + day, 12, tzinfo=UTC)
        records += [
            activity_count_point(str(uuid.uuid4()), patient, noon + timedelta(minutes=m), 20 + m)
            for m in range(5)
        ]
    before = await topic_stats(twin, twin.topics.device_readings)
    for value in records:
        await twin.produce(twin.topics.device_readings, patient, value)

    async def settled(count: int) -> bool:
        stats = await topic_stats(twin, twin.topics.device_readings)
        return stats.applied + stats.duplicates - before.applied - before.duplicates >= count

    await wait_for(lambda: settled(len(records)), timeout=30, what="readings applied")
    for value in records:  # a producer retry: the same records again
        await twin.produce(twin.topics.device_readings, patient, value)
    await wait_for(lambda: settled(2 * len(records)), timeout=30, what="duplicates dropped")
    after = await topic_stats(twin, twin.topics.device_readings)
    assert after.duplicates - before.duplicates == len(records)

    # The first reading created the twin (version 1); 2-5 February completed (versions 2-5); from
    # the third day with data on, each completed day requested its trailing week. The relay
    # publishes the last version's twin.updated.v1 after the requests.
    got = await twin.call(twin.stub.GetTwin, twin_pb2.GetTwinRequest(patient=ref(patient)))
    assert got.twin.version == 5 and got.twin.readings.total == 25
    assert got.twin.readings.by_schema["activity-count"] == 25
    await wait_for(
        lambda: _has_version(twin, patient, got.twin.version),
        timeout=15,
        what="twin.updated.v1 of the last version",
    )
    requests = await twin.events(
        twin.topics.analysis_requested, patient, events_pb2.ActigraphyAnalysisRequested
    )
    assert [r.week.start.ToDatetime(tzinfo=UTC).date() for r in requests] == [
        first_day + timedelta(days=d) - timedelta(days=6) for d in (2, 3)
    ]
    assert [sum(not m for m in r.week.missing) for r in requests] == [15, 20]
    stats = await twin.call(
        twin.stub.GetIngestionStats, twin_pb2.GetIngestionStatsRequest(patient=ref(patient))
    )
    assert stats.readings_applied == 25 and stats.distinct_events == 25
    assert {t.topic for t in stats.topics} == {
        twin.topics.device_readings,
        twin.topics.symptom_reports,
        twin.topics.analysis_completed,
    }


async def _has_version(twin: RunningTwin, patient: str, version: int) -> bool:
    return any(
        e.version == version
        for e in await twin.events(twin.topics.twin_updated, patient, events_pb2.TwinUpdated)
    )


def completion(
    patient: str, week_start: datetime, *, error: bool = False, efficiency: float = 85.0
) -> events_pb2.ActigraphyAnalysisCompleted:
    message = events_pb2.ActigraphyAnalysisCompleted(
        event_id=str(uuid.uuid4()),
        occurred_at=stamp(datetime.now(UTC)),
        patient=ref(patient),
        request_event_id=str(uuid.uuid4()),
        analysis_id=str(uuid.uuid4()),
        week=common_pb2.TimeInterval(start=stamp(week_start), end=stamp(week_start + timedelta(days=7))),
    )
    if error:
        message.ClearField("analysis_id")
        message.error.CopyFrom(
            common_pb2.ErrorDetail(code="MODEL_NOT_READY", message="weights missing", service="pat")
        )
    else:
        message.sleep.sleep_efficiency_percent = efficiency
    return message


async def test_completed_analyses_update_the_twin_in_week_order(twin: RunningTwin) -> None:
    patient = new_patient()
    newer, older = datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
    events = [
        completion(patient, newer, efficiency=80),
        completion(patient, older, efficiency=90),
        completion(patient, newer, error=True),
    ]
    for event in events:
        await twin.produce(twin.topics.analysis_completed, patient, proto_json(event))

    await wait_for(lambda: _has_version(twin, patient, 2), timeout=30, what="the second actigraphy version")
    got = await twin.call(twin.stub.GetTwin, twin_pb2.GetTwinRequest(patient=ref(patient)))
    assert got.twin.latest_actigraphy.analysis_id == events[0].analysis_id
    assert got.twin.latest_actigraphy.sleep.sleep_efficiency_percent == 80
    updates = await twin.events(twin.topics.twin_updated, patient, events_pb2.TwinUpdated)
    assert [(u.version, list(u.changed_sections), u.cause_event_id) for u in updates] == [
        (1, ["actigraphy"], events[0].event_id),
        (2, ["actigraphy"], events[1].event_id),
    ]

    async def failure_recorded() -> bool:
        stats = await twin.call(
            twin.stub.GetIngestionStats, twin_pb2.GetIngestionStatsRequest(patient=ref(patient))
        )
        return stats.distinct_events == 3

    await wait_for(failure_recorded, timeout=15, what="the failed analysis recorded")
    got = await twin.call(twin.stub.GetTwin, twin_pb2.GetTwinRequest(patient=ref(patient)))
    assert got.twin.version == 2 and got.twin.latest_actigraphy.analysis_id == events[0].analysis_id

    insights = await twin.call(twin.stub.GetInsights, twin_pb2.GetInsightsRequest(patient=ref(patient)))
    assert insights.patient.pseudonym == patient and insights.twin_version == 2


async def test_symptom_reports_from_kafka_are_stored_and_malformed_ones_dead_lettered(
    twin: RunningTwin,
) -> None:
    patient = new_patient()
    good = events_pb2.SymptomReported(
        event_id=str(uuid.uuid4()),
        patient=ref(patient),
        instrument=common_pb2.SYMPTOM_INSTRUMENT_GAD7,
        item_responses=[3, 3, 2, 2, 1, 1, 0],
        reported_at=stamp(datetime.now(UTC)),
        source="app",
    )
    bad = events_pb2.SymptomReported()
    bad.CopyFrom(good)
    bad.event_id = str(uuid.uuid4())
    bad.item_responses[6] = 9
    await twin.produce(twin.topics.symptom_reports, patient, proto_json(bad))
    await twin.produce(twin.topics.symptom_reports, patient, proto_json(good))

    async def stored() -> bool:
        try:
            got = await twin.call(twin.stub.GetTwin, twin_pb2.GetTwinRequest(patient=ref(patient)))
        except NotFoundError:
            return False
        return bool(got.twin.symptom_history)

    await wait_for(stored, timeout=30, what="the symptom report")
    got = await twin.call(twin.stub.GetTwin, twin_pb2.GetTwinRequest(patient=ref(patient)))
    assert [(r.report_id, r.total, r.source) for r in got.twin.symptom_history] == [
        (good.event_id, 12.0, "app")
    ]
    letters = [
        r for r in await twin.records(dlq_topic(twin.topics.symptom_reports)) if r.key == patient.encode()
    ]
    assert len(letters) == 1
    headers = {k: v.decode() for k, v in letters[0].headers}
    assert headers["dlq-error-code"] == "VALIDATION_ERROR" and "[item_responses[6]]" in headers["dlq-reason"]
