"""The outbox relay publishes committed changes to Kafka, at once, and survives a broker outage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio
import sqlalchemy as sa
from google.protobuf import json_format
from sqlalchemy.ext.asyncio import AsyncSession

from novamind.api.events.v1 import events_pb2
from novamind.core.kafka import EventProducer
from novamind.devtools.pytest_plugin import KafkaTopicFactory, read_records, wait_for
from novamind.twin.adapters import tables
from novamind.twin.adapters.ingestion import add_symptom_report
from novamind.twin.adapters.outbox import OutboxRelay
from novamind.twin.adapters.twin_store import TwinStore

from .conftest import Stores, new_patient
from .test_store import phq9


@pytest_asyncio.fixture
async def topic(kafka_topic_factory: KafkaTopicFactory) -> str:
    return await kafka_topic_factory("twin-updated")


@pytest_asyncio.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[EventProducer]:
    producer = EventProducer(kafka_bootstrap, client_id="twin-outbox-test")
    try:
        yield producer
    finally:
        await producer.stop()


async def test_a_committed_change_is_published_at_once_as_one_record(
    stores: Stores, topic: str, producer: EventProducer, kafka_bootstrap: str
) -> None:
    await producer.start()
    twins = TwinStore(stores.cipher, stores.outbox, topic=topic)
    relay = OutboxRelay(stores.engine, stores.outbox, producer, poll_seconds=600)
    await relay.start()
    task = asyncio.create_task(relay.run())
    try:
        await wait_for(lambda: relay.rounds == 1, what="the relay's first round")
        patient = new_patient()
        async with AsyncSession(stores.engine) as session, session.begin():
            await twins.apply(
                session, patient, add_symptom_report(phq9("r", [1] * 9)), cause_event_id="cause"
            )
        # The relay polls every 10 minutes: only the wake-up after the commit gets this out in time.
        await wait_for(lambda: relay.published == 1, timeout=10, what="the event published")
    finally:
        await relay.stop()
        await task
    [record] = await read_records(kafka_bootstrap, topic, 1)
    event = events_pb2.TwinUpdated()
    json_format.Parse(record.value, event)
    assert record.key == patient.encode()
    assert (event.version, event.previous_version, list(event.changed_sections), event.cause_event_id) == (
        1,
        0,
        ["symptoms"],
        "cause",
    )
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["event-id"] == event.event_id and headers["content-type"] == "application/json"
    assert await relay.pending() == 0


async def test_the_relay_backs_off_while_the_broker_is_unreachable_then_publishes(
    stores: Stores, topic: str, producer: EventProducer, kafka_bootstrap: str
) -> None:
    twins = TwinStore(stores.cipher, stores.outbox, topic=topic)
    relay = OutboxRelay(stores.engine, stores.outbox, producer, poll_seconds=0.05, max_backoff_seconds=0.2)
    patient = new_patient()
    async with AsyncSession(stores.engine) as session, session.begin():
        await twins.apply(session, patient, add_symptom_report(phq9("r1", [0] * 9)), cause_event_id="c1")
        await twins.apply(session, patient, add_symptom_report(phq9("r2", [1] * 9)), cause_event_id="c2")
    task = asyncio.create_task(relay.run())  # the producer is not connected: every send fails
    try:
        await wait_for(lambda: relay.failed_rounds >= 3, what="failed rounds")
        assert relay.published == 0 and await relay.pending() == 2
        await producer.start()
        await wait_for(lambda: relay.published == 2, timeout=10, what="the backlog published")
    finally:
        await relay.stop()
        await task
    records = await read_records(kafka_bootstrap, topic, 2)
    versions = []
    for record in records:
        event = events_pb2.TwinUpdated()
        json_format.Parse(record.value, event)
        versions.append(event.version)
    assert versions == [1, 2]
    async with stores.engine.connect() as conn:
        unpublished = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(tables.outbox)
            .where(tables.outbox.c.published_at.is_(None))
        )
    assert unpublished == 0
