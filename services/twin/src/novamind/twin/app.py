"""Composition root of the twin service: settings in, a runnable service out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from novamind.api.twin.v1 import twin_pb2, twin_pb2_grpc
from novamind.core.config import CoreSettings
from novamind.core.crypto import EnvelopeCipher, KeyRing
from novamind.core.db import make_engine
from novamind.core.kafka import (
    ACTIGRAPHY_ANALYSIS_COMPLETED,
    ACTIGRAPHY_ANALYSIS_REQUESTED,
    DEVICE_READINGS,
    SYMPTOM_REPORTS,
    TWIN_UPDATED,
    ConsumerRunner,
    Decoder,
    EventProducer,
    Handler,
    SqlIdempotencyLedger,
)
from novamind.core.resilience import CircuitBreakers, RetryPolicy
from novamind.core.service import GrpcService, ServiceRuntime
from novamind.twin.adapters import store
from novamind.twin.adapters.analysis_requests import AnalysisRequester
from novamind.twin.adapters.grpc_api import TwinServicer
from novamind.twin.adapters.ingestion import (
    AnalysisCompletedHandler,
    DeviceReadingHandler,
    SymptomReportHandler,
    decode_analysis_completed,
    decode_device_reading,
    decode_symptom_report,
)
from novamind.twin.adapters.orchestrator import (
    DEPENDENCIES,
    InsightsOrchestrator,
    InsightsSettings,
    build_clients,
)
from novamind.twin.adapters.outbox import Outbox, OutboxRelay
from novamind.twin.adapters.store import ReadingStore
from novamind.twin.adapters.twin_store import TwinStore
from novamind.twin.config import TwinSettings

TWIN_SERVICE = twin_pb2.DESCRIPTOR.services_by_name["TwinService"].full_name

#: Device readings applied per ledger transaction (the runner's batch mode): a week of minute
#: readings is 10,080 records, and one transaction per record made its commits the bottleneck.
READINGS_APPLY_BATCH_SIZE = 500


@dataclass(frozen=True)
class TwinTopics:
    """The Kafka topics the twin consumes and produces (tests substitute their own)."""

    device_readings: str = DEVICE_READINGS
    symptom_reports: str = SYMPTOM_REPORTS
    analysis_completed: str = ACTIGRAPHY_ANALYSIS_COMPLETED
    analysis_requested: str = ACTIGRAPHY_ANALYSIS_REQUESTED
    twin_updated: str = TWIN_UPDATED


def require_kafka(settings: CoreSettings) -> str:
    if not settings.kafka_bootstrap:
        raise SystemExit(
            "NOVAMIND_KAFKA_BOOTSTRAP is not set: the twin needs a Kafka cluster (make dev embeds one)"
        )
    return settings.kafka_bootstrap


def insights_settings(settings: TwinSettings) -> InsightsSettings:
    """The orchestrator's deadlines from the twin's settings."""
    return InsightsSettings(
        overall_deadline_seconds=settings.insights_deadline_seconds,
        pat_timeout_seconds=settings.pat_timeout_seconds,
        forecasting_timeout_seconds=settings.forecasting_timeout_seconds,
        correlation_timeout_seconds=settings.correlation_timeout_seconds,
        pharmacogenomics_timeout_seconds=settings.pharmacogenomics_timeout_seconds,
    )


@dataclass(frozen=True)
class TwinService:
    """A built twin: the runtime to run and the parts tests and operations look at."""

    runtime: ServiceRuntime
    twins: TwinStore
    readings: ReadingStore
    requester: AnalysisRequester
    relay: OutboxRelay
    outbox: Outbox
    consumers: list[ConsumerRunner]
    readings_handler: DeviceReadingHandler


def build_runtime(
    settings: TwinSettings | None = None, *, topics: TwinTopics | None = None
) -> ServiceRuntime:
    """The twin's runtime (``novamind-twin serve``)."""
    return build_service(settings, topics=topics).runtime


def build_service(
    settings: TwinSettings | None = None,
    *,
    topics: TwinTopics | None = None,
    readings_apply_batch_size: int = READINGS_APPLY_BATCH_SIZE,
) -> TwinService:
    """Wire the twin from ``settings``: store, ingestion, outbox relay, gRPC API and insights.

    ``readings_apply_batch_size`` is how many device readings share one ledger transaction
    (1: one transaction per reading, the runner's per-record mode).
    """
    settings = settings or TwinSettings()
    topics = topics or TwinTopics()
    bootstrap = require_kafka(settings)
    engine = make_engine(settings.sqlalchemy_url("twin"))
    cipher = EnvelopeCipher(KeyRing.from_settings(settings))
    producer = EventProducer(bootstrap, client_id=f"{settings.kafka_client_id_prefix}-twin")
    outbox_writer = Outbox(cipher)
    twins = TwinStore(
        cipher,
        outbox_writer,
        default_time_zone=settings.default_time_zone,
        max_attempts=settings.twin_write_max_attempts,
        backoff_seconds=settings.twin_write_backoff_seconds,
        max_backoff_seconds=settings.twin_write_max_backoff_seconds,
        topic=topics.twin_updated,
    )
    readings = ReadingStore(cipher)
    requester = AnalysisRequester(
        readings, outbox_writer, min_days=settings.analysis_min_days, topic=topics.analysis_requested
    )
    ledger = SqlIdempotencyLedger(engine)

    def runner(
        name: str, group: str, topic: str, decoder: Decoder, handler: Handler, apply_batch_size: int = 1
    ) -> ConsumerRunner:
        return ConsumerRunner(
            bootstrap=bootstrap,
            group_id=group,
            topics=[topic],
            decoder=decoder,
            handler=handler,
            ledger=ledger,
            producer=producer,
            retry_policy=RetryPolicy(max_attempts=settings.event_max_attempts),
            name=name,
            session_timeout_ms=settings.consumer_session_timeout_ms,
            heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
            apply_batch_size=apply_batch_size,
        )

    readings_handler = DeviceReadingHandler(twins, readings, requester)
    consumers = [
        runner(
            "device-readings",
            settings.consumer_group,
            topics.device_readings,
            decode_device_reading,
            readings_handler,
            apply_batch_size=readings_apply_batch_size,
        ),
        runner(
            "symptom-reports",
            settings.symptoms_consumer_group,
            topics.symptom_reports,
            decode_symptom_report,
            SymptomReportHandler(twins),
        ),
        runner(
            "analyses-completed",
            settings.analyses_consumer_group,
            topics.analysis_completed,
            decode_analysis_completed,
            AnalysisCompletedHandler(twins, cipher),
        ),
    ]
    relay = OutboxRelay(
        engine,
        outbox_writer,
        producer,
        batch_size=settings.outbox_batch_size,
        poll_seconds=settings.outbox_poll_seconds,
        max_backoff_seconds=settings.outbox_max_backoff_seconds,
        retention_seconds=settings.outbox_retention_hours * 3600,
    )
    breakers = CircuitBreakers(
        failure_threshold=settings.breaker_failure_threshold,
        recovery_seconds=settings.breaker_recovery_seconds,
    )
    clients = build_clients(
        {name: settings.address_of(name) for name in DEPENDENCIES},
        breakers=breakers,
        retry_policy=RetryPolicy(max_attempts=2, initial_backoff=0.05, max_backoff=0.2),
        default_timeout=settings.default_call_timeout_seconds,
    )
    orchestrator = InsightsOrchestrator(clients, insights_settings(settings))
    servicer = TwinServicer(
        engine=engine,
        twins=twins,
        readings_store=readings,
        requester=requester,
        consumers=consumers,
        started_at=datetime.now(UTC),
        orchestrator=orchestrator,
        pharmacogenomics=clients.get("pharmacogenomics"),
        genotype_timeout_seconds=settings.genotype_timeout_seconds,
    )

    async def database_ready() -> None:
        await store.ping(engine)

    async def close() -> None:
        await orchestrator.close()
        await producer.stop()
        await engine.dispose()

    runtime = ServiceRuntime(
        settings=settings,
        grpc_services=[
            GrpcService(
                TWIN_SERVICE, lambda server: twin_pb2_grpc.add_TwinServiceServicer_to_server(servicer, server)
            )
        ],
        readiness_checks={"database": database_ready},
        # The relay runs last, so on shutdown it publishes what the consumers committed.
        consumers=[*consumers, relay],
        on_startup=[producer.start],
        on_shutdown=[close],
    )
    return TwinService(runtime, twins, readings, requester, relay, outbox_writer, consumers, readings_handler)
