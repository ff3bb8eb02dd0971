"""Composition root of the twin service: settings in, a runnable service out."""

from __future__ import annotations

from datetime import UTC, datetime

from novamind.api.twin.v1 import twin_pb2, twin_pb2_grpc
from novamind.core.config import CoreSettings
from novamind.core.db import make_engine
from novamind.core.kafka import (
    DEVICE_READINGS,
    ConsumerRunner,
    EventProducer,
    SqlIdempotencyLedger,
)
from novamind.core.resilience import RetryPolicy
from novamind.core.service import GrpcService, ServiceRuntime
from novamind.twin.adapters import store
from novamind.twin.adapters.grpc_api import TwinServicer
from novamind.twin.adapters.ingestion import apply_device_reading, decode_device_reading
from novamind.twin.config import TwinSettings

TWIN_SERVICE = twin_pb2.DESCRIPTOR.services_by_name["TwinService"].full_name


def require_kafka(settings: CoreSettings) -> str:
    if not settings.kafka_bootstrap:
        raise SystemExit(
            "NOVAMIND_KAFKA_BOOTSTRAP is not set: the twin needs a Kafka cluster (make dev embeds one)"
        )
    return settings.kafka_bootstrap


def build_runtime(settings: TwinSettings | None = None) -> ServiceRuntime:
    settings = settings or TwinSettings()
    bootstrap = require_kafka(settings)
    engine = make_engine(settings.sqlalchemy_url("twin"))
    producer = EventProducer(bootstrap, client_id=f"{settings.kafka_client_id_prefix}-twin")
    readings_consumer = ConsumerRunner(
        bootstrap=bootstrap,
        group_id=settings.consumer_group,
        topics=[DEVICE_READINGS],
        decoder=decode_device_reading,
        handler=apply_device_reading,
        ledger=SqlIdempotencyLedger(engine),
        producer=producer,
        retry_policy=RetryPolicy(max_attempts=settings.event_max_attempts),
        name="device-readings",
    )
    servicer = TwinServicer(engine, [readings_consumer], started_at=datetime.now(UTC))

    async def database_ready() -> None:
        await store.ping(engine)

    async def close() -> None:
        await producer.stop()
        await engine.dispose()

    return ServiceRuntime(
        settings=settings,
        grpc_services=[
            GrpcService(
                TWIN_SERVICE, lambda server: twin_pb2_grpc.add_TwinServiceServicer_to_server(servicer, server)
            )
        ],
        readiness_checks={"database": database_ready},
        consumers=[readings_consumer],
        on_startup=[producer.start],
        on_shutdown=[close],
    )
