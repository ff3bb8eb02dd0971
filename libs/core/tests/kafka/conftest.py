"""Shared pieces of the consumer-runner tests: an effects table whose rows count applications,
a handler writing to it, a publisher, and a runner with test timings."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from novamind.core.kafka import (
    ConsumerRunner,
    DecodedEvent,
    EventProducer,
    SqlIdempotencyLedger,
    decode_json_event,
)
from novamind.core.resilience import RetryPolicy
from novamind.devtools.pytest_plugin import KafkaTopicFactory

EFFECTS_METADATA = MetaData()
#: One row per application of an event: an event applied twice shows up as two rows.
effects = Table(
    "effects",
    EFFECTS_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(255), nullable=False),
    Column("n", Integer, nullable=False),
)

FAST_RETRIES = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)
Handler = Callable[[DecodedEvent, AsyncSession], Awaitable[None]]


@pytest.fixture
def ledger(engine: AsyncEngine) -> SqlIdempotencyLedger:
    return SqlIdempotencyLedger(engine)


@pytest_asyncio.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[EventProducer]:
    async with EventProducer(kafka_bootstrap, client_id="consumer-runner-tests") as producer:
        yield producer


@pytest.fixture
def group_id() -> str:
    return f"test-group-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture
async def topic(kafka_topic_factory: KafkaTopicFactory) -> str:
    return await kafka_topic_factory("runner")


async def record_effect(event: DecodedEvent, session: AsyncSession) -> None:
    await session.execute(insert(effects).values(event_id=event.event_id, n=event.payload["n"]))


async def effect_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(effects.c.event_id, func.count()).group_by(effects.c.event_id))
        return {event_id: count for event_id, count in rows.all()}


async def publish(
    producer: EventProducer, topic: str, n: int, *, event_id: str | None = None, key: str = "patient-a"
) -> str:
    event_id = event_id or f"evt-{uuid.uuid4().hex}"
    await producer.send(
        topic, key=key, value=json.dumps({"n": n}).encode(), event_id=event_id, event_type="test.event.v1"
    )
    return event_id


def make_runner(
    kafka_bootstrap: str,
    group_id: str,
    topic: str,
    ledger: Any,
    producer: Any,
    handler: Handler = record_effect,
    **overrides: Any,
) -> ConsumerRunner:
    """A runner with test timings: on Tansu a 2 s session makes the first join take about 1 s."""
    options: dict[str, Any] = {
        "retry_policy": FAST_RETRIES,
        "poll_timeout": 0.1,
        "session_timeout_ms": 2_000,
        "heartbeat_interval_ms": 300,
        "dlq_max_backoff": 0.05,
    }
    options.update(overrides)
    return ConsumerRunner(
        bootstrap=kafka_bootstrap,
        group_id=group_id,
        topics=[topic],
        decoder=decode_json_event,
        handler=handler,
        ledger=ledger,
        producer=producer,
        name=group_id,
        **options,
    )
