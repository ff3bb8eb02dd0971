"""The consumer runner's batch mode against a real broker, on SQLite and PostgreSQL: up to
``apply_batch_size`` records share one ledger transaction, yet every record is still applied once,
deduplicated or dead-lettered on its own, and offsets only pass effects that committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY
from sqlalchemy import event, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from novamind.core.db import make_engine
from novamind.core.errors import ServiceUnavailableError, ValidationError
from novamind.core.kafka import (
    DLQ_ATTEMPTS,
    DLQ_ERROR_CODE,
    DLQ_REASON,
    DLQ_SOURCE_OFFSET,
    EVENT_ID,
    ConsumerRunner,
    DecodedEvent,
    EventProducer,
    SqlIdempotencyLedger,
    create_ledger_tables,
    decode_headers,
    decode_json_event,
    dlq_topic,
)
from novamind.devtools.pytest_plugin import KafkaTopicFactory, committed_offsets, read_records, wait_for

from .conftest import EFFECTS_METADATA, effect_counts, effects, publish, record_effect
from .conftest import make_runner as make_batch_runner

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest_asyncio.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    await create_ledger_tables(engine)
    async with engine.begin() as connection:
        await connection.run_sync(EFFECTS_METADATA.create_all)
    yield engine
    await engine.dispose()


class CommitCounter:
    """Counts database transactions committed through ``engine`` (SQLAlchemy's commit event)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.commits = 0
        event.listen(engine.sync_engine, "commit", self._count)

    def _count(self, connection: Any) -> None:
        self.commits += 1


def make_runner(*args: Any, **overrides: Any) -> ConsumerRunner:
    """A batch-mode runner with test timings."""
    return make_batch_runner(*args, **{"apply_batch_size": 50, **overrides})


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_claim_batch_commits_its_effects_and_ledger_rows_together_or_not_at_all(
    ledger: SqlIdempotencyLedger, engine: AsyncEngine
) -> None:
    async with ledger.claim("g", "x", topic="t", partition=0, offset=0):
        pass

    async with ledger.claim_batch("g", ["x", "a", "b", "a"]) as batch:
        claimed = [
            await batch.claim(event_id, topic="t", partition=0, offset=offset)
            for offset, event_id in enumerate(["x", "a", "b", "a"], start=1)
        ]
        await batch.session.execute(insert(effects).values(event_id="a", n=1))
    assert claimed == [False, True, True, False]  # applied before, new, new, earlier in the batch
    assert [await ledger.is_processed("g", e) for e in "xab"] == [True, True, True]

    with pytest.raises(RuntimeError):
        async with ledger.claim_batch("g", ["c", "d"]) as batch:
            assert await batch.claim("c", topic="t", partition=0, offset=5)
            await batch.session.execute(insert(effects).values(event_id="c", n=2))
            raise RuntimeError("the handler failed")
    assert not await ledger.is_processed("g", "c")
    assert await effect_counts(engine) == {"a": 1}


async def test_an_event_applied_elsewhere_after_the_lookup_makes_the_batch_fail(
    ledger: SqlIdempotencyLedger, engine: AsyncEngine
) -> None:
    with pytest.raises(IntegrityError):
        async with ledger.claim_batch("g", ["a", "b"]) as batch:
            async with ledger.claim("g", "b", topic="t", partition=0, offset=1):
                pass  # another member of the group applies "b" meanwhile
            assert await batch.claim("a", topic="t", partition=0, offset=0)
            assert await batch.claim("b", topic="t", partition=0, offset=1)
            await batch.session.execute(insert(effects).values(event_id="a", n=1))
    assert not await ledger.is_processed("g", "a")
    assert await effect_counts(engine) == {}


def test_batch_mode_needs_a_positive_size_and_a_ledger_that_can_claim_batches() -> None:
    class ClaimOnlyLedger:
        def claim(
            self, group: str, event_id: str, *, topic: str, partition: int, offset: int
        ) -> AbstractAsyncContextManager[AsyncSession]:
            raise NotImplementedError

    common: dict[str, Any] = {
        "bootstrap": "127.0.0.1:9",
        "group_id": "g",
        "topics": ["t"],
        "decoder": decode_json_event,
        "handler": record_effect,
        "producer": None,
    }
    with pytest.raises(ValueError, match="apply_batch_size"):
        ConsumerRunner(**common, ledger=ClaimOnlyLedger(), apply_batch_size=0)
    with pytest.raises(TypeError, match="claim_batch"):
        ConsumerRunner(**common, ledger=ClaimOnlyLedger(), apply_batch_size=10)
    ConsumerRunner(**common, ledger=ClaimOnlyLedger())  # per-record mode needs only claim


async def test_records_are_applied_once_with_one_transaction_per_apply_batch(
    kafka_bootstrap: str,
    kafka_topic_factory: KafkaTopicFactory,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    engine: AsyncEngine,
    group_id: str,
) -> None:
    topic = await kafka_topic_factory("batched", partitions=2)
    total = 400
    event_ids = [await publish(producer, topic, n, key=f"patient-{n % 7}") for n in range(total)]
    counter = CommitCounter(engine)

    runner = make_runner(kafka_bootstrap, group_id, topic, ledger, producer)
    async with runner:
        await wait_for(lambda: runner.stats.applied == total, what=f"{total} applied events")
        await wait_for(lambda: sum(runner.stats.committed.values()) == total, what="offsets committed")
        await wait_for(
            lambda: all(
                sample(
                    "novamind_kafka_consumer_lag", {"topic": topic, "partition": str(p), "group": group_id}
                )
                == 0
                for p in (0, 1)
            ),
            what="consumer lag to reach 0",
        )

    assert await effect_counts(engine) == {event_id: 1 for event_id in event_ids}
    assert (runner.stats.duplicate, runner.stats.dead_lettered, runner.stats.apply_batch_fallbacks) == (
        0,
        0,
        0,
    )
    # At least total / 50 transactions, and far fewer than one per record.
    assert total // 50 <= runner.stats.apply_batches <= total // 10
    assert counter.commits == runner.stats.apply_batches
    committed = await committed_offsets(kafka_bootstrap, group_id, topic, partitions=2)
    assert sum(offset or 0 for offset in committed) == total

    labels = {"topic": topic, "group": group_id}
    assert sample("novamind_kafka_events_total", {**labels, "outcome": "applied"}) == total
    assert sample("novamind_kafka_handler_seconds_count", labels) == total
    assert sample("novamind_kafka_apply_batch_records_sum", labels) == total
    assert sample("novamind_kafka_apply_batch_records_count", labels) == runner.stats.apply_batches


async def test_duplicates_within_an_apply_batch_across_batches_and_against_the_ledger_count_once(
    kafka_bootstrap: str,
    topic: str,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    engine: AsyncEngine,
    group_id: str,
) -> None:
    # "x" was applied by this group before; batches of 3: [x a b] [a c a] [b d].
    async with ledger.claim(group_id, f"{group_id}-x", topic=topic, partition=0, offset=0):
        pass
    sequence = ["x", "a", "b", "a", "c", "a", "b", "d"]
    for n, name in enumerate(sequence):
        await publish(producer, topic, n, event_id=f"{group_id}-{name}")

    runner = make_runner(kafka_bootstrap, group_id, topic, ledger, producer, apply_batch_size=3)
    async with runner:
        await wait_for(lambda: runner.stats.settled == len(sequence), what="every record settled")

    assert (runner.stats.applied, runner.stats.duplicate, runner.stats.dead_lettered) == (4, 4, 0)
    assert runner.stats.apply_batch_fallbacks == 0
    assert await effect_counts(engine) == {f"{group_id}-{name}": 1 for name in "abcd"}
    assert await committed_offsets(kafka_bootstrap, group_id, topic) == [len(sequence)]
    labels = {"topic": topic, "group": group_id}
    assert sample("novamind_kafka_events_total", {**labels, "outcome": "duplicate"}) == 4
    assert sample("novamind_kafka_events_total", {**labels, "outcome": "applied"}) == 4


async def test_a_poison_event_in_an_apply_batch_is_dead_lettered_alone_and_the_rest_applied(
    kafka_bootstrap: str,
    topic: str,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    engine: AsyncEngine,
    group_id: str,
) -> None:
    async def rejects_n_99(event: DecodedEvent, session: AsyncSession) -> None:
        await record_effect(event, session)  # partial work, rolled back with the batch
        if event.payload["n"] == 99:
            raise ValidationError("n must not be 99", field="n")

    good = [await publish(producer, topic, n) for n in range(4)]
    poison = await publish(producer, topic, 99)
    good += [await publish(producer, topic, n) for n in range(4, 8)]

    runner = make_runner(kafka_bootstrap, group_id, topic, ledger, producer, handler=rejects_n_99)
    async with runner:
        await wait_for(lambda: runner.stats.settled == 9, what="9 settled records")

    assert (runner.stats.applied, runner.stats.dead_lettered, runner.stats.duplicate) == (8, 1, 0)
    assert runner.stats.apply_batch_fallbacks >= 1 and runner.stats.retries == 0
    assert await effect_counts(engine) == {event_id: 1 for event_id in good}
    assert not await ledger.is_processed(group_id, poison)
    assert await committed_offsets(kafka_bootstrap, group_id, topic) == [9]
    (dead,) = await read_records(kafka_bootstrap, dlq_topic(topic), 1)
    headers = decode_headers(dead.headers)
    assert headers[EVENT_ID] == poison
    assert (headers[DLQ_ERROR_CODE], headers[DLQ_ATTEMPTS], headers[DLQ_SOURCE_OFFSET]) == (
        "VALIDATION_ERROR",
        "1",
        "4",
    )
    assert "n must not be 99" in headers[DLQ_REASON] and "[n]" in headers[DLQ_REASON]


async def test_records_the_decoder_rejects_are_dead_lettered_in_order_between_apply_batches(
    kafka_bootstrap: str,
    topic: str,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    engine: AsyncEngine,
    group_id: str,
) -> None:
    good = [await publish(producer, topic, n) for n in range(2)]
    await producer.send(topic, key="patient-a", value=b'{"n": 1,', event_id="bad-json", event_type="t")
    good.append(await publish(producer, topic, 3))
    await producer.send_record(topic, key=b"patient-b", value=b'{"n": 4}', headers=[("event-type", b"t")])
    good.append(await publish(producer, topic, 5))

    runner = make_runner(kafka_bootstrap, group_id, topic, ledger, producer)
    async with runner:
        await wait_for(lambda: runner.stats.settled == 6, what="6 settled records")

    assert (runner.stats.applied, runner.stats.dead_lettered) == (4, 2)
    assert runner.stats.apply_batch_fallbacks == 0
    assert await effect_counts(engine) == {event_id: 1 for event_id in good}
    assert await committed_offsets(kafka_bootstrap, group_id, topic) == [6]
    first, second = (
        decode_headers(r.headers) for r in await read_records(kafka_bootstrap, dlq_topic(topic), 2)
    )
    assert (first[DLQ_SOURCE_OFFSET], first[DLQ_ERROR_CODE], first[DLQ_ATTEMPTS]) == (
        "2",
        "VALIDATION_ERROR",
        "1",
    )
    assert "not valid JSON" in first[DLQ_REASON]
    assert (second[DLQ_SOURCE_OFFSET], second[DLQ_ERROR_CODE]) == ("4", "VALIDATION_ERROR")
    assert "event-id" in second[DLQ_REASON]


async def test_a_transient_failure_in_an_apply_batch_is_retried_and_applied_once(
    kafka_bootstrap: str,
    topic: str,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    engine: AsyncEngine,
    group_id: str,
) -> None:
    attempts = 0

    async def flaky_on_n_3(event: DecodedEvent, session: AsyncSession) -> None:
        nonlocal attempts
        await record_effect(event, session)
        if event.payload["n"] == 3:
            attempts += 1
            if attempts < 3:  # the batch's attempt, then the first one on its own
                raise ServiceUnavailableError("downstream briefly unavailable", service="test")

    event_ids = [await publish(producer, topic, n) for n in range(6)]
    runner = make_runner(kafka_bootstrap, group_id, topic, ledger, producer, handler=flaky_on_n_3)
    async with runner:
        await wait_for(lambda: runner.stats.applied == 6, what="every event applied")

    assert attempts == 3 and runner.stats.retries == 1
    assert (runner.stats.apply_batch_fallbacks, runner.stats.dead_lettered) == (1, 0)
    assert await effect_counts(engine) == {event_id: 1 for event_id in event_ids}
    assert all([await ledger.is_processed(group_id, event_id) for event_id in event_ids])
    assert await committed_offsets(kafka_bootstrap, group_id, topic) == [6]


async def test_stop_mid_apply_batch_commits_what_is_durable_and_a_restart_applies_the_rest_once(
    kafka_bootstrap: str,
    topic: str,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    engine: AsyncEngine,
    group_id: str,
) -> None:
    event_ids = [await publish(producer, topic, n) for n in range(30)]
    in_fifteenth, release = asyncio.Event(), asyncio.Event()

    async def slow_fifteenth(event: DecodedEvent, session: AsyncSession) -> None:
        if event.event_id == event_ids[14]:
            in_fifteenth.set()
            await release.wait()
        await record_effect(event, session)

    first = make_runner(
        kafka_bootstrap, group_id, topic, ledger, producer, handler=slow_fifteenth, apply_batch_size=10
    )
    async with first:
        await asyncio.wait_for(in_fifteenth.wait(), 15)
        first.request_stop()  # SIGTERM arrives while the fifteenth event is in flight
        release.set()
    assert first.stats.applied == 15
    assert await committed_offsets(kafka_bootstrap, group_id, topic) == [15]
    assert await effect_counts(engine) == {event_id: 1 for event_id in event_ids[:15]}

    second = make_runner(kafka_bootstrap, group_id, topic, ledger, producer, apply_batch_size=10)
    async with second:
        await wait_for(lambda: second.stats.applied == 15, what="the remaining fifteen applied")
    assert second.stats.duplicate == 0
    assert await effect_counts(engine) == {event_id: 1 for event_id in event_ids}
    assert await committed_offsets(kafka_bootstrap, group_id, topic) == [30]


async def test_a_crash_mid_apply_batch_leaves_none_of_it_and_the_successor_applies_it_once(
    kafka_bootstrap: str,
    topic: str,
    producer: EventProducer,
    ledger: SqlIdempotencyLedger,
    engine: AsyncEngine,
    group_id: str,
) -> None:
    event_ids = [await publish(producer, topic, n) for n in range(20)]
    reached, counter = asyncio.Event(), CommitCounter(engine)

    async def hangs_on_thirteenth(event: DecodedEvent, session: AsyncSession) -> None:
        await record_effect(event, session)
        if event.event_id == event_ids[12]:
            reached.set()
            await asyncio.Event().wait()  # the process "dies" here

    crashing = make_runner(
        kafka_bootstrap, group_id, topic, ledger, producer, handler=hangs_on_thirteenth, apply_batch_size=5
    )
    await crashing.start()
    run = asyncio.create_task(crashing.run())
    await asyncio.wait_for(reached.wait(), 15)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await crashing.stop()
    # Only whole apply batches before the thirteenth event can have committed.
    assert crashing.stats.applied <= 12 and counter.commits == crashing.stats.apply_batches
    (committed_before,) = await committed_offsets(kafka_bootstrap, group_id, topic)
    assert (committed_before or 0) <= crashing.stats.applied

    successor = make_runner(kafka_bootstrap, group_id, topic, ledger, producer, apply_batch_size=5)
    async with successor:
        await wait_for(
            lambda: successor.stats.settled == 20 - (committed_before or 0), what="the rest settled"
        )

    assert crashing.stats.applied + successor.stats.applied == 20
    assert successor.stats.duplicate == crashing.stats.applied - (committed_before or 0)
    assert await effect_counts(engine) == {event_id: 1 for event_id in event_ids}
    assert await committed_offsets(kafka_bootstrap, group_id, topic) == [20]


async def test_each_event_of_an_apply_batch_is_handled_in_its_own_trace(
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
    origins = []
    for n in range(3):
        with tracer.start_as_current_span(f"request {n}") as origin:
            await publish(producer, topic, n)
        origins.append(origin.get_span_context().trace_id)

    runner = make_runner(kafka_bootstrap, group_id, topic, ledger, producer, handler=remember_trace)
    async with runner:
        await wait_for(lambda: runner.stats.applied == 3, what="the handler to run three times")

    assert seen == origins
    assert runner.stats.committed == {TopicPartition(topic, 0): 3}
