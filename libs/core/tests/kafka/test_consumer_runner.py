"""The consumer runner against a real broker: every record is applied, deduplicated or
dead-lettered, offsets follow durable effects, and nothing is applied twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from novamind.core.db import make_engine
from novamind.core.errors import ServiceUnavailableError, ValidationError
from novamind.core.kafka import (
    DLQ_ATTEMPTS,
    DLQ_CONSUMER_GROUP,
    DLQ_ERROR_CODE,
    DLQ_FAILED_AT,
    DLQ_REASON,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    EVENT_ID,
    TRACEPARENT,
    DecodedEvent,
    EventProducer,
    SqlIdempotencyLedger,
    create_ledger_tables,
    decode_headers,
    dlq_topic,
)
from novamind.devtools.pytest_plugin import KafkaTopicFactory, committed_offsets, read_records, wait_for

from .conftest import (
    EFFECTS_METADATA,
    FAST_RETRIES,
    effect_counts,
    make_runner,
    publish,
    record_effect,
)

pytestmark = pytest.mark.timeout(60)


@pytest_asyncio.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(sqlite_url)
    await create_ledger_tables(engine)
    async with engine.begin() as connection:
        await connection.run_sync(EFFECTS_METADATA.create_all)
    yield engine
    await engine.dispose()


async def test_events_are_applied_once_and_offsets_committed_after_the_effect(
    kafka_bootstrap: str,
    kafka_topic_factory: KafkaTopicFactory,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    engine: AsyncEngine,
    group_id: str,
) -> None:
    topic = await kafka_topic_factory("roundtrip", partitions=3)
    event_ids = [await publish(producer, topic, n, key=f"patient-{n % 4}") for n in range(12)]

    runner = make_runner(kafka_bootstrap, group_id, topic, ledger, producer)
    async with runner:
        await wait_for(lambda: runner.stats.applied == 12, what="12 applied events")
        await wait_for(lambda: sum(runner.stats.committed.values()) == 12, what="offsets committed")

    assert await effect_counts(engine) == {event_id: 1 for event_id in event_ids}
    committed = await committed_offsets(kafka_bootstrap, group_id, topic, partitions=3)
    assert sum(offset or 0 for offset in committed) == 12
    assert (runner.stats.duplicate, runner.stats.dead_lettered) == (0, 0)


async def test_duplicate_event_ids_are_dropped_and_counted(
    kafka_bootstrap: str,
    topic: str,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    engine: AsyncEngine,
    group_id: str,
) -> None:
    for n, event_id in enumerate(["a", "b", "a", "c", "a"]):
        await publish(producer, topic, n, event_id=f"{group_id}-{event_id}")

    runner = make_runner(kafka_bootstrap, group_id, topic, ledger, producer)
    async with runner:
        await wait_for(lambda: runner.stats.settled == 5, what="5 settled records")

    assert (runner.stats.applied, runner.stats.duplicate) == (3, 2)
    assert await effect_counts(engine) == {f"{group_id}-a": 1, f"{group_id}-b": 1, f"{group_id}-c": 1}
    assert await committed_offsets(kafka_bootstrap, group_id, topic) == [5]


async def test_malformed_records_are_dead_lettered_with_reason_and_original_bytes(
    kafka_bootstrap: str,
    topic: str,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    engine: AsyncEngine,
    group_id: str,
) -> None:
    not_json = b'{"n": 1,'
    await producer.send(topic, key="patient-a", value=not_json, event_id="bad-json", event_type="t")
    no_event_id = json.dumps({"n": 2}).encode()
    await producer.send_record(topic, key=b"patient-b", value=no_event_id, headers=[("event-type", b"t")])
    good = await publish(producer, topic, 3)

    runner = make_runner(kafka_bootstrap, group_id, topic, ledger, producer)
    async with runner:
        await wait_for(lambda: runner.stats.settled == 3, what="3 settled records")

    assert (runner.stats.applied, runner.stats.dead_lettered) == (1, 2)
    assert await effect_counts(engine) == {good: 1}
    assert await committed_offsets(kafka_bootstrap, group_id, topic) == [3]

    dead = await read_records(kafka_bootstrap, dlq_topic(topic), 2)
    first, second = (decode_headers(record.headers) for record in dead)
    assert dead[0].value == not_json and dead[0].key == b"patient-a"
    assert first[EVENT_ID] == "bad-json"
    assert "not valid JSON" in first[DLQ_REASON]
    assert first[DLQ_ERROR_CODE] == "VALIDATION_ERROR"
    assert first[DLQ_ATTEMPTS] == "1"
    assert (first[DLQ_SOURCE_TOPIC], first[DLQ_SOURCE_PARTITION], first[DLQ_SOURCE_OFFSET]) == (
        topic,
        "0",
        "0",
    )
    assert first[DLQ_CONSUMER_GROUP] == group_id
    assert datetime.fromisoformat(first[DLQ_FAILED_AT]).tzinfo is not None
    assert dead[1].value == no_event_id and dead[1].key == b"patient-b"
    assert "event-id" in second[DLQ_REASON]
    assert (second[DLQ_ERROR_CODE], second[DLQ_ATTEMPTS], second[DLQ_SOURCE_OFFSET]) == (
        "VALIDATION_ERROR",
        "1",
        "1",
    )


async def test_transient_failure_after_partial_work_is_retried_and_applied_once(
    kafka_bootstrap: str,
    topic: str,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    engine: AsyncEngine,
    group_id: str,
) -> None:
    attempts = 0

    async def flaky(event: DecodedEvent, session: AsyncSession) -> None:
        nonlocal attempts
        attempts += 1
        await record_effect(event, session)  # partial work, rolled back with the failure
        if attempts < 3:
            raise ServiceUnavailableError("downstream briefly unavailable", service="test")

    event_id = await publish(producer, topic, 1)
    runner = make_runner(kafka_bootstrap, group_id, topic, ledger, producer, handler=flaky)
    async with runner:
        await wait_for(lambda: runner.stats.applied == 1, what="the event applied")

    assert attempts == 3 and runner.stats.retries == 2
    assert await effect_counts(engine) == {event_id: 1}
    assert await ledger.is_processed(group_id, event_id)


async def test_persistent_transient_failure_is_dead_lettered_after_max_attempts(
    kafka_bootstrap: str,
    topic: str,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    engine: AsyncEngine,
    group_id: str,
) -> None:
    async def always_down(event: DecodedEvent, session: AsyncSession) -> None:
        await record_effect(event, session)
        raise ServiceUnavailableError("downstream unavailable", service="test")

    event_id = await publish(producer, topic, 1)
    after = await publish(producer, topic, 2)
    runner = make_runner(kafka_bootstrap, group_id, topic, ledger, producer, handler=always_down)
    async with runner:
        await wait_for(lambda: runner.stats.dead_lettered == 2, what="both events dead-lettered")

    (dead, _) = await read_records(kafka_bootstrap, dlq_topic(topic), 2)
    headers = decode_headers(dead.headers)
    assert headers[DLQ_ATTEMPTS] == str(FAST_RETRIES.max_attempts)
    assert headers[DLQ_ERROR_CODE] == "SERVICE_UNAVAILABLE"
    assert "downstream unavailable" in headers[DLQ_REASON]
    assert headers[EVENT_ID] == event_id
    assert runner.stats.retries == 2 * (FAST_RETRIES.max_attempts - 1)
    assert await effect_counts(engine) == {}
    assert not await ledger.is_processed(group_id, event_id)
    assert not await ledger.is_processed(group_id, after)
    assert await committed_offsets(kafka_bootstrap, group_id, topic) == [2]


@pytest.mark.parametrize(
    ("error", "code", "reason_part"),
    [
        (KeyError("heart_rate"), "INTERNAL_SERVER_ERROR", "KeyError: 'heart_rate'"),
        (ValidationError("score out of range", field="phq9.item3"), "VALIDATION_ERROR", "[phq9.item3]"),
    ],
)
async def test_non_transient_failure_is_dead_lettered_at_once_without_payload_values(
    kafka_bootstrap: str,
    topic: str,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    group_id: str,
    error: Exception,
    code: str,
    reason_part: str,
) -> None:
    async def broken(event: DecodedEvent, session: AsyncSession) -> None:
        raise error

    secret = json.dumps({"n": 1, "note": "sensitive-free-text-4711"}).encode()
    await producer.send(topic, key="patient-a", value=secret, event_id="e-1", event_type="t")
    runner = make_runner(kafka_bootstrap, group_id, topic, ledger, producer, handler=broken)
    async with runner:
        await wait_for(lambda: runner.stats.dead_lettered == 1, what="the event dead-lettered")

    (dead,) = await read_records(kafka_bootstrap, dlq_topic(topic), 1)
    headers = decode_headers(dead.headers)
    assert (headers[DLQ_ERROR_CODE], headers[DLQ_ATTEMPTS]) == (code, "1")
    assert reason_part in headers[DLQ_REASON] and type(error).__name__ in headers[DLQ_REASON]
    assert "4711" not in headers[DLQ_REASON]
    assert dead.value == secret
    assert runner.stats.retries == 0


async def test_crash_before_commit_redelivers_without_a_second_effect(
    kafka_bootstrap: str,
    topic: str,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    engine: AsyncEngine,
    group_id: str,
) -> None:
    event_ids = [await publish(producer, topic, n) for n in range(5)]
    reached_third = asyncio.Event()

    async def hangs_on_third(event: DecodedEvent, session: AsyncSession) -> None:
        await record_effect(event, session)
        if event.event_id == event_ids[2]:
            reached_third.set()
            await asyncio.Event().wait()  # the process "dies" here

    crashing = make_runner(kafka_bootstrap, group_id, topic, ledger, producer, handler=hangs_on_third)
    await crashing.start()
    run = asyncio.create_task(crashing.run())
    await asyncio.wait_for(reached_third.wait(), 15)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await crashing.stop()
    assert crashing.stats.applied == 2
    (committed_before,) = await committed_offsets(kafka_bootstrap, group_id, topic)

    successor = make_runner(kafka_bootstrap, group_id, topic, ledger, producer)
    async with successor:
        await wait_for(lambda: successor.stats.applied == 3, what="the rest applied by the successor")

    assert await effect_counts(engine) == {event_id: 1 for event_id in event_ids}
    assert successor.stats.duplicate == 2 - (committed_before or 0)
    assert await committed_offsets(kafka_bootstrap, group_id, topic) == [5]


async def test_stop_finishes_the_in_flight_record_commits_and_leaves_the_rest_to_the_group(
    kafka_bootstrap: str,
    topic: str,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    engine: AsyncEngine,
    group_id: str,
) -> None:
    event_ids = [await publish(producer, topic, n) for n in range(6)]
    in_third, release = asyncio.Event(), asyncio.Event()

    async def slow_third(event: DecodedEvent, session: AsyncSession) -> None:
        if event.event_id == event_ids[2]:
            in_third.set()
            await release.wait()
        await record_effect(event, session)

    first = make_runner(kafka_bootstrap, group_id, topic, ledger, producer, handler=slow_third)
    async with first:
        await asyncio.wait_for(in_third.wait(), 15)
        first.request_stop()  # SIGTERM arrives while the third event is in flight
        release.set()
    assert first.stats.applied == 3
    assert await committed_offsets(kafka_bootstrap, group_id, topic) == [3]

    second = make_runner(kafka_bootstrap, group_id, topic, ledger, producer)
    async with second:
        await wait_for(lambda: second.stats.applied == 3, what="the remaining three applied")
    assert second.stats.duplicate == 0
    assert await effect_counts(engine) == {event_id: 1 for event_id in event_ids}
    assert await committed_offsets(kafka_bootstrap, group_id, topic) == [6]


async def test_trace_context_travels_from_producer_to_handler(
    kafka_bootstrap: str,
    topic: str,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    group_id: str,
) -> None:
    seen: list[int] = []

    async def remember_trace(event: DecodedEvent, session: AsyncSession) -> None:
        seen.append(trace.get_current_span().get_span_context().trace_id)

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("clinician request") as origin:
        await publish(producer, topic, 1)
    trace_id = origin.get_span_context().trace_id

    runner = make_runner(kafka_bootstrap, group_id, topic, ledger, producer, handler=remember_trace)
    async with runner:
        await wait_for(lambda: len(seen) == 1, what="the handler to run")

    assert seen == [trace_id]
    (record,) = await read_records(kafka_bootstrap, topic, 1)
    assert f"{trace_id:032x}" in decode_headers(record.headers)[TRACEPARENT]


async def test_counters_account_for_every_record(
    kafka_bootstrap: str,
    topic: str,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    group_id: str,
) -> None:
    async def rejects_n_99(event: DecodedEvent, session: AsyncSession) -> None:
        if event.payload["n"] == 99:
            raise ValidationError("n must not be 99", field="n")
        await record_effect(event, session)

    produced = 0
    for n in range(3):
        await publish(producer, topic, n)
        produced += 1
    await publish(producer, topic, 7, event_id=f"{group_id}-dup")
    await publish(producer, topic, 7, event_id=f"{group_id}-dup")
    await producer.send(topic, key="patient-a", value=b"not json", event_id="x", event_type="t")
    await publish(producer, topic, 99)
    produced += 4

    runner = make_runner(kafka_bootstrap, group_id, topic, ledger, producer, handler=rejects_n_99)
    async with runner:
        await wait_for(lambda: runner.stats.settled == produced, what="every record settled")
        await wait_for(
            lambda: (
                REGISTRY.get_sample_value(
                    "novamind_kafka_consumer_lag", {"topic": topic, "partition": "0", "group": group_id}
                )
                == 0
            ),
            what="consumer lag to reach 0",
        )

    def counted(outcome: str) -> float:
        labels = {"topic": topic, "group": group_id, "outcome": outcome}
        return REGISTRY.get_sample_value("novamind_kafka_events_total", labels) or 0.0

    assert (runner.stats.applied, runner.stats.duplicate, runner.stats.dead_lettered) == (4, 1, 2)
    assert counted("applied") + counted("duplicate") + counted("dead_lettered") == produced
    assert (counted("applied"), counted("duplicate"), counted("dead_lettered")) == (4, 1, 2)
    handler_runs = REGISTRY.get_sample_value(
        "novamind_kafka_handler_seconds_count", {"topic": topic, "group": group_id}
    )
    assert handler_runs == 6  # every decoded record, duplicates included


class FlakyDlqProducer:
    """Delegates to a real producer, but refuses dead letters while ``dlq_down`` is set."""

    def __init__(self, inner: EventProducer) -> None:
        self.inner = inner
        self.dlq_down = True
        self.refused = 0

    async def send_record(self, topic: str, **kwargs: Any) -> Any:
        if self.dlq_down:
            self.refused += 1
            raise ServiceUnavailableError("DLQ unavailable", service="kafka")
        return await self.inner.send_record(topic, **kwargs)


async def test_unreachable_dlq_holds_the_offset_until_the_dead_letter_is_acknowledged(
    kafka_bootstrap: str,
    topic: str,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    group_id: str,
) -> None:
    await publish(producer, topic, 1)
    await producer.send(topic, key="patient-a", value=b"poison", event_id="poison", event_type="t")
    await publish(producer, topic, 3)
    dlq = FlakyDlqProducer(producer)

    runner = make_runner(kafka_bootstrap, group_id, topic, ledger, dlq)
    async with runner:
        await wait_for(lambda: dlq.refused >= 3, what="repeated DLQ refusals")
        await wait_for(
            lambda: runner.stats.committed.get(TopicPartition(topic, 0)) == 1, what="commit up to poison"
        )
        assert runner.stats.settled == 1
        assert await committed_offsets(kafka_bootstrap, group_id, topic) == [1]

        dlq.dlq_down = False
        await wait_for(lambda: runner.stats.settled == 3, what="the rest settled once the DLQ is back")

    assert (runner.stats.applied, runner.stats.dead_lettered) == (2, 1)
    assert await committed_offsets(kafka_bootstrap, group_id, topic) == [3]
    (dead,) = await read_records(kafka_bootstrap, dlq_topic(topic), 1)
    assert dead.value == b"poison"
