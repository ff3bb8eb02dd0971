"""Topic names and creation, and the producer's envelope, against a real broker."""

from __future__ import annotations

import json
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from novamind.core.kafka import (
    ACTIGRAPHY_ANALYSIS_COMPLETED,
    ACTIGRAPHY_ANALYSIS_REQUESTED,
    CONTENT_TYPE,
    DEVICE_READINGS,
    EVENT_ID,
    EVENT_TYPE,
    FLEET_TOPICS,
    SYMPTOM_REPORTS,
    TRACEPARENT,
    TWIN_UPDATED,
    EventProducer,
    TopicSpec,
    decode_headers,
    dlq_topic,
    ensure_topics,
)
from novamind.devtools.pytest_plugin import KafkaTopicFactory, read_records

pytestmark = pytest.mark.timeout(30)


def test_every_fleet_topic_is_listed_with_its_dlq() -> None:
    names = [spec.name for spec in FLEET_TOPICS]
    sources = [
        DEVICE_READINGS,
        SYMPTOM_REPORTS,
        ACTIGRAPHY_ANALYSIS_REQUESTED,
        ACTIGRAPHY_ANALYSIS_COMPLETED,
        TWIN_UPDATED,
    ]

    assert sorted(names) == sorted(sources + [dlq_topic(name) for name in sources])
    assert dlq_topic("device.readings.v1") == "device.readings.v1.dlq"
    assert DEVICE_READINGS == "device.readings.v1"


async def test_ensure_topics_creates_missing_topics_and_tolerates_existing_ones(kafka_bootstrap: str) -> None:
    name = f"ensure.{uuid.uuid4().hex[:12]}"
    specs = [TopicSpec(name, partitions=2), TopicSpec(dlq_topic(name), partitions=1)]

    await ensure_topics(kafka_bootstrap, specs)
    await ensure_topics(kafka_bootstrap, specs)

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        topics = await admin.list_topics()
        await admin.delete_topics([spec.name for spec in specs])
    finally:
        await admin.close()
    assert {name, dlq_topic(name)} <= set(topics)


async def test_producer_sends_the_envelope_and_waits_for_the_ack(
    kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    topic = await kafka_topic_factory("producer")
    value = json.dumps({"steps": 412}).encode()

    async with EventProducer(kafka_bootstrap, client_id="producer-test") as producer:
        metadata = await producer.send(
            topic,
            key="patient-a",
            value=value,
            event_id="evt-1",
            event_type="step-count.v1",
            headers={"schema": "omh:step-count:2.0"},
        )

    assert (metadata.topic, metadata.partition, metadata.offset) == (topic, 0, 0)
    (record,) = await read_records(kafka_bootstrap, topic, 1)
    headers = decode_headers(record.headers)
    assert (record.key, record.value) == (b"patient-a", value)
    assert headers[EVENT_ID] == "evt-1" and headers[EVENT_TYPE] == "step-count.v1"
    assert headers[CONTENT_TYPE] == "application/json" and headers["schema"] == "omh:step-count:2.0"
    assert TRACEPARENT not in headers  # no active trace: nothing to propagate


async def test_sending_before_start_is_a_clear_error(kafka_bootstrap: str) -> None:
    producer = EventProducer(kafka_bootstrap, client_id="unstarted")
    with pytest.raises(Exception, match="not started"):
        await producer.send("t", key="k", value=b"{}", event_id="e", event_type="t")


def test_a_malformed_event_names_the_field_but_never_quotes_its_value() -> None:
    from types import SimpleNamespace

    from novamind.api.events.v1 import events_pb2
    from novamind.core.errors import ValidationError
    from novamind.core.kafka import parse_proto_event

    secret = "2026-13-99T25:61:00Z-patient-value"
    record = SimpleNamespace(value=json.dumps({"eventId": "e1", "reportedAt": secret}).encode())
    with pytest.raises(ValidationError) as caught:
        parse_proto_event(record, events_pb2.SymptomReported)
    assert caught.value.field == "reportedAt" and secret not in str(caught.value)
    ok = SimpleNamespace(value=json.dumps({"eventId": "e2", "source": "app"}).encode())
    assert parse_proto_event(ok, events_pb2.SymptomReported).source == "app"
    with pytest.raises(ValidationError, match="event_id"):
        parse_proto_event(SimpleNamespace(value=b'{"source": "app"}'), events_pb2.SymptomReported)
