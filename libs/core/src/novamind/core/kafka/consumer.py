"""The one Kafka consumer runner every Novamind service uses.

For each record, in partition order:

1. **decode** — ``decoder(record)`` turns bytes into a :class:`DecodedEvent`; a
   :class:`~novamind.core.errors.ValidationError` (or any decoder failure) sends the record straight
   to ``<topic>.dlq`` with ``dlq-attempts: 1``.
2. **apply** — ``handler(event, session)`` runs inside the idempotency ledger's transaction, so the
   effect and the "applied" row commit together. An event the group already applied raises
   :class:`~novamind.core.kafka.ledger.DuplicateEvent` and is skipped. Transient failures (see
   :func:`~novamind.core.resilience.is_transient`, plus lost database connections) are retried with
   jittered backoff; when retries run out, or at once for any other error, the record is
   dead-lettered with the error code, a reason (exception type and message, never payload values)
   and the attempt count.
3. **commit** — after each batch, offsets are committed up to the last record that was applied,
   deduplicated, or acknowledged by the DLQ. A DLQ that cannot be reached is retried with backoff
   until it accepts the record or the runner stops; nothing after it is committed meanwhile.

So every record is applied, deduplicated, or parked in a DLQ, and
``novamind_kafka_events_total{outcome}`` counts each. Delivery is at least once; exactly-once is
not claimed (and the development broker, Tansu, has no transactions).

:meth:`ConsumerRunner.stop` is the graceful drain for SIGTERM: it lets the in-flight record finish,
commits, and leaves the consumer group. Cancelling :meth:`ConsumerRunner.run` instead is treated as
a crash: nothing more is committed, and the ledger absorbs the redelivery.

**Batch mode** (``apply_batch_size`` above 1, for high-volume topics with cheap handlers): the
records of a poll are decoded in partition order, and runs of decoded records are applied in
*apply batches* of up to ``apply_batch_size`` records of one partition, all in ONE ledger
transaction (:meth:`~novamind.core.kafka.ledger.SqlIdempotencyLedger.claim_batch`): for each
event in turn the ledger claims it (an event applied before, or earlier in the batch, is a
duplicate) and the handler runs; then the batch commits once. ``handler_timeout`` bounds each
event's handler and the commit. A record the decoder rejects closes the run before it and is
dead-lettered on its own, as above. If anything in an apply batch fails (a handler error, a
timeout, the commit), its transaction rolls back and its records are applied again one at a time
as above, so a poison event is retried and dead-lettered alone while the others still apply.
Offsets move only past records whose transaction committed, and each record is counted once,
when it is settled. On :meth:`ConsumerRunner.stop` the batch in flight finishes the event it is
applying and commits it with the events before it; the rest are left to the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession

from novamind.core.errors import ErrorCode, NovamindError, ServiceUnavailableError, ValidationError
from novamind.core.kafka.headers import (
    CONTENT_TYPE,
    DLQ_ATTEMPTS,
    DLQ_CONSUMER_GROUP,
    DLQ_ERROR_CODE,
    DLQ_FAILED_AT,
    DLQ_HEADERS,
    DLQ_REASON,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    EVENT_ID,
    EVENT_TYPE,
    decode_headers,
    encode_headers,
    extract_trace_context,
)
from novamind.core.kafka.ledger import BatchIdempotencyLedger, DuplicateEvent, IdempotencyLedger
from novamind.core.kafka.producer import EventProducer
from novamind.core.kafka.topics import dlq_topic
from novamind.core.resilience import RetryPolicy, is_transient, retry_async
from novamind.core.telemetry import LATENCY_BUCKETS_SECONDS

log = logging.getLogger(__name__)

EVENTS_TOTAL = Counter(
    "novamind_kafka_events",
    "Kafka records settled by a consumer group, by outcome (applied, duplicate, dead_lettered)",
    ["topic", "group", "outcome"],
)
EVENT_RETRIES = Counter(
    "novamind_kafka_event_retries",
    "Handler attempts repeated after a transient failure",
    ["topic", "group"],
)
HANDLER_SECONDS = Histogram(
    "novamind_kafka_handler_seconds",
    "Time for one handler attempt including its ledger transaction (seconds)",
    ["topic", "group"],
    buckets=LATENCY_BUCKETS_SECONDS,
)
CONSUMER_LAG = Gauge(
    "novamind_kafka_consumer_lag",
    "Records in a partition not yet settled by the consumer group (high-water mark minus position)",
    ["topic", "partition", "group"],
)
DLQ_PUBLISH_FAILURES = Counter(
    "novamind_kafka_dlq_publish_failures",
    "Failed attempts to publish a dead letter (the record is retried, never skipped)",
    ["topic", "group"],
)
APPLY_BATCH_RECORDS = Histogram(
    "novamind_kafka_apply_batch_records",
    "Records settled by one committed apply-batch transaction (batch mode; records)",
    ["topic", "group"],
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
APPLY_BATCH_FALLBACKS = Counter(
    "novamind_kafka_apply_batch_fallbacks",
    "Apply batches whose transaction failed and whose records were applied one at a time",
    ["topic", "group"],
)

#: Longest reason written to a ``dlq-reason`` header (characters).
MAX_REASON_LENGTH = 1000


class Outcome(enum.StrEnum):
    """How a record was settled."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    """A record the decoder accepted: the envelope, where it came from, and the decoded payload."""

    event_id: str
    event_type: str
    key: str | None
    payload: Any
    headers: dict[str, str]
    topic: str
    partition: int
    offset: int
    #: Producer timestamp, milliseconds since the Unix epoch.
    timestamp_ms: int | None = None

    @classmethod
    def from_record(
        cls,
        record: ConsumerRecord,
        payload: Any,
        *,
        event_id: str | None = None,
        event_type: str | None = None,
    ) -> DecodedEvent:
        """The event for ``record`` with an already decoded ``payload``.

        ``event_id`` and ``event_type`` default to the ``event-id`` / ``event-type`` headers; a
        payload that carries its own id (an Open mHealth header's uuid) passes it here.
        Raises :class:`ValidationError` when the event id is missing or longer than 255
        characters, or the key is not UTF-8.
        """
        headers = decode_headers(record.headers)
        event_id = (event_id if event_id is not None else headers.get(EVENT_ID, "")).strip()
        if not event_id:
            raise ValidationError("the record has no event-id header", field=f"headers.{EVENT_ID}")
        if len(event_id) > 255:
            raise ValidationError("the event id is longer than 255 characters", field=f"headers.{EVENT_ID}")
        try:
            key = record.key.decode("utf-8") if record.key is not None else None
        except UnicodeDecodeError as exc:
            raise ValidationError("the record key is not UTF-8", field="key") from exc
        return cls(
            event_id=event_id,
            event_type=event_type if event_type is not None else headers.get(EVENT_TYPE, ""),
            key=key,
            payload=payload,
            headers=headers,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
        )


#: Turns a raw record into an event; raises :class:`ValidationError` for malformed input.
Decoder = Callable[[ConsumerRecord], DecodedEvent]
#: Applies an event; its database writes go through the session of the ledger's transaction.
Handler = Callable[[DecodedEvent, AsyncSession], Awaitable[None]]


def decode_json_event(record: ConsumerRecord) -> DecodedEvent:
    """Decode a record whose value is a JSON document (the payload becomes plain Python values).

    Raises :class:`ValidationError` when the value is missing, not JSON, or declared as another
    content type. Services validate the payload's schema in their own decoder on top of this.
    """
    content_type = decode_headers(record.headers).get(CONTENT_TYPE)
    if content_type is not None and content_type.split(";")[0].strip() != "application/json":
        raise ValidationError(f"unsupported content-type {content_type!r}", field=f"headers.{CONTENT_TYPE}")
    if record.value is None:
        raise ValidationError("the record has no value", field="value")
    try:
        payload = json.loads(record.value)
    except UnicodeDecodeError as exc:
        raise ValidationError("the payload is not UTF-8 text", field="value") from exc
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"the payload is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            field="value",
        ) from exc
    return DecodedEvent.from_record(record, payload)


M = TypeVar("M", bound=Message)


def parse_proto_event(record: ConsumerRecord, cls: type[M]) -> M:
    """The record's value as an event message of ``cls`` (protobuf's canonical JSON mapping).

    Raises :class:`ValidationError` when the value is missing, not a JSON object, not a ``cls``
    or without an ``event_id``. The error names the field but never quotes the value (the
    parser's own message does, and a value may be PHI).
    """
    if record.value is None:
        raise ValidationError("record has no value", field="value")
    try:
        document = json.loads(record.value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"payload is not valid JSON ({type(exc).__name__})", field="value") from exc
    if not isinstance(document, dict):
        raise ValidationError("payload must be a JSON object", field="value")
    message = cls()
    try:
        json_format.ParseDict(document, message)
    except json_format.ParseError as exc:
        problem, field = _parse_error_field(str(exc))
        raise ValidationError(f"not a {cls.DESCRIPTOR.name}: {problem}", field=field) from None
    if not getattr(message, "event_id", ""):
        raise ValidationError("event_id is required", field="event_id")
    return message


def _parse_error_field(text: str) -> tuple[str, str]:
    """What a json_format.ParseError says is wrong and the field, without the offending value."""
    if "Failed to parse " in text:
        name = text.split("Failed to parse ", 1)[1].split(" ", 1)[0]
        return "invalid value", name
    if "has no field named " in text:
        name = text.split("has no field named ", 1)[1].split(" ", 1)[0].strip('"')
        return "unknown field", name
    return "malformed message", "value"


@dataclass(slots=True)
class ConsumerStats:
    """Counts since the runner was created (the Prometheus counters hold the same numbers)."""

    applied: int = 0
    duplicate: int = 0
    dead_lettered: int = 0
    retries: int = 0
    #: Batch mode: transactions that committed an apply batch, and apply batches rolled back and
    #: applied one record at a time instead.
    apply_batches: int = 0
    apply_batch_fallbacks: int = 0
    #: Offsets committed per partition by this runner (next offset to read).
    committed: dict[TopicPartition, int] = field(default_factory=dict)

    @property
    def settled(self) -> int:
        return self.applied + self.duplicate + self.dead_lettered


@dataclass(frozen=True, slots=True)
class _Failure:
    code: str
    reason: str
    attempts: int


class _HandlerFailed(Exception):
    def __init__(self, error: Exception, attempts: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts


def is_transient_failure(exc: BaseException) -> bool:
    """Whether retrying a handler may help: :func:`is_transient`, or a lost or locked database."""
    if isinstance(exc, DuplicateEvent):
        return False
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return is_transient(exc)


class ConsumerRunner:
    """Consumes ``topics`` as consumer group ``group_id``, applying each event exactly once in effect.

    ``producer`` (started and stopped by the caller) publishes dead letters. ``retry_policy``
    bounds handler retries; ``handler_timeout`` (seconds) bounds one handler attempt, and a
    timeout counts as transient. ``session_timeout_ms`` / ``heartbeat_interval_ms`` are the
    group-membership timings (milliseconds); on the development broker a consumer's first join
    takes about half the session timeout. ``max_batch`` is the most records one poll returns
    (default: 100, or ``apply_batch_size`` if larger).

    ``apply_batch_size`` above 1 turns on batch mode (see the module doc): up to that many
    records of a partition are applied in one ledger transaction, which ``ledger`` must support
    (:class:`~novamind.core.kafka.ledger.BatchIdempotencyLedger`). The handler then shares its
    session, and its transaction, with the other events of the batch, and may run a second time
    for an event whose batch rolled back; it must not commit, roll back or close the session.

    Use ``async with runner:`` (start, run in a background task, stop on exit), or call
    :meth:`start`, await :meth:`run` from the service's task group, and call :meth:`stop` on
    SIGTERM.
    """

    def __init__(
        self,
        *,
        bootstrap: str,
        group_id: str,
        topics: Sequence[str],
        decoder: Decoder,
        handler: Handler,
        ledger: IdempotencyLedger,
        producer: EventProducer,
        retry_policy: RetryPolicy = RetryPolicy(),
        name: str | None = None,
        retry_if: Callable[[BaseException], bool] = is_transient_failure,
        handler_timeout: float = 30.0,
        max_batch: int | None = None,
        poll_timeout: float = 0.5,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        dlq_max_backoff: float = 30.0,
        apply_batch_size: int = 1,
    ) -> None:
        if not topics:
            raise ValueError("a consumer runner needs at least one topic")
        if apply_batch_size < 1:
            raise ValueError("apply_batch_size must be at least 1")
        if apply_batch_size > 1 and not isinstance(ledger, BatchIdempotencyLedger):
            raise TypeError("batch mode (apply_batch_size > 1) needs a ledger with claim_batch")
        self.name = name or group_id
        self.group_id = group_id
        self.topics = tuple(topics)
        self.stats = ConsumerStats()
        self._bootstrap = bootstrap
        self._decoder = decoder
        self._handler = handler
        self._ledger = ledger
        self._producer = producer
        self._retry_policy = retry_policy
        self._retry_if = retry_if
        self._handler_timeout = handler_timeout
        self._max_batch = max_batch if max_batch is not None else max(100, apply_batch_size)
        self._apply_batch_size = apply_batch_size
        self._poll_timeout_ms = int(poll_timeout * 1000)
        self._session_timeout_ms = session_timeout_ms
        self._heartbeat_interval_ms = heartbeat_interval_ms
        self._dlq_max_backoff = dlq_max_backoff
        self._consumer: Any = None
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._run_task: asyncio.Task[None] | None = None
        # Next offset to commit per partition: every record before it is settled.
        self._uncommitted: dict[TopicPartition, int] = {}
        self._settled_position: dict[TopicPartition, int] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and subscribe (the group join completes during the first poll).

        Raises :class:`ServiceUnavailableError` when the brokers cannot be reached.
        """
        if self._consumer is not None:
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self.group_id,
            client_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._session_timeout_ms,
            heartbeat_interval_ms=self._heartbeat_interval_ms,
            max_poll_records=self._max_batch,
        )
        try:
            await consumer.start()
        except KafkaError as exc:
            await consumer.stop()
            raise ServiceUnavailableError(
                f"cannot connect to Kafka: {type(exc).__name__}", service="kafka"
            ) from exc
        consumer.subscribe(list(self.topics), listener=_CommitOnRevoke(self))
        self._consumer = consumer
        self._stopping.clear()
        log.info("consumer started", extra={"group": self.group_id, "topics": list(self.topics)})

    async def run(self) -> None:
        """Consume until :meth:`stop` is called. Starts the runner first if needed.

        Raises what the consumer raises for unrecoverable Kafka errors (authorization, ...).
        """
        await self.start()
        if self._stopping.is_set():
            return
        self._idle.clear()
        try:
            while not self._stopping.is_set():
                batch = await self._consumer.getmany(
                    timeout_ms=self._poll_timeout_ms, max_records=self._max_batch
                )
                if batch:
                    await self._process_batch(batch)
                    await self._commit()
                await self._update_lag()
        except asyncio.CancelledError:
            # A crash, not a drain: settled records are durable and will be deduplicated.
            self._uncommitted.clear()
            raise
        finally:
            self._idle.set()

    def request_stop(self) -> None:
        """Ask :meth:`run` to finish the in-flight record and return (safe from a signal handler)."""
        self._stopping.set()

    async def stop(self) -> None:
        """Drain and leave: finish the in-flight record, commit, leave the group. Idempotent."""
        self._stopping.set()
        task, self._run_task = self._run_task, None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except Exception:
                    log.exception("consumer loop failed", extra={"group": self.group_id})
        await self._idle.wait()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await self._close(consumer)
            log.info("consumer stopped", extra={"group": self.group_id, "topics": list(self.topics)})

    async def __aenter__(self) -> ConsumerRunner:
        await self.start()
        self._run_task = asyncio.create_task(self.run(), name=f"kafka-consumer-{self.name}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- one batch ---------------------------------------------------------------------------

    async def _process_batch(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp, records in batch.items():
            if self._apply_batch_size > 1:
                if not await self._process_in_apply_batches(tp, records):
                    return
                continue
            for record in records:
                if self._stopping.is_set():
                    return
                if tp not in self._consumer.assignment():
                    break  # revoked mid-batch: the new owner gets these from the committed offset
                if not await self._process(record):
                    return
                self._mark_settled(tp, record)

    def _mark_settled(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        """Every record of ``tp`` up to and including ``record`` is settled."""
        self._uncommitted[tp] = record.offset + 1
        self._settled_position[tp] = record.offset + 1

    async def _process(self, record: ConsumerRecord, event: DecodedEvent | None = None) -> bool:
        """Settle one record (``event``: its decoding, if already done); ``False`` when the runner
        stopped before its dead letter was taken."""
        tracer = trace.get_tracer(__name__)
        with tracer.start_as_current_span(
            f"{record.topic} process",
            context=extract_trace_context(record.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                "messaging.consumer.group.name": self.group_id,
            },
        ) as span:
            event_id = decode_headers(record.headers).get(EVENT_ID)
            if event_id:
                span.set_attribute("messaging.message.id", event_id)
            outcome, failure = await self._decode_and_apply(record, event)
            if failure is not None:
                span.set_status(Status(StatusCode.ERROR, failure.code))
                if not await self._dead_letter(record, failure, event_id):
                    return False
            span.set_attribute("novamind.outcome", outcome.value)
        self._count(record, outcome, event_id)
        return True

    async def _decode_and_apply(
        self, record: ConsumerRecord, event: DecodedEvent | None = None
    ) -> tuple[Outcome, _Failure | None]:
        if event is None:
            try:
                event = self._decoder(record)
            except Exception as exc:
                return Outcome.DEAD_LETTERED, _failure(exc, attempts=1, transient=False)
        try:
            await self._apply(event)
        except DuplicateEvent:
            return Outcome.DUPLICATE, None
        except _HandlerFailed as failed:
            transient = self._retry_if(failed.error)
            return Outcome.DEAD_LETTERED, _failure(
                failed.error, attempts=failed.attempts, transient=transient
            )
        return Outcome.APPLIED, None

    async def _apply(self, event: DecodedEvent) -> None:
        attempts = 0
        labels = {"topic": event.topic, "group": self.group_id}

        async def attempt() -> None:
            nonlocal attempts
            attempts += 1
            started = time.perf_counter()
            try:
                async with (
                    asyncio.timeout(self._handler_timeout),
                    self._ledger.claim(
                        self.group_id,
                        event.event_id,
                        topic=event.topic,
                        partition=event.partition,
                        offset=event.offset,
                    ) as session,
                ):
                    await self._handler(event, session)
            finally:
                HANDLER_SECONDS.labels(**labels).observe(time.perf_counter() - started)

        def on_retry(attempt_number: int, exc: BaseException) -> None:
            self.stats.retries += 1
            EVENT_RETRIES.labels(**labels).inc()
            log.warning(
                "transient handler failure; retrying",
                extra={
                    **_where(event),
                    "group": self.group_id,
                    "attempt": attempt_number,
                    "error_type": type(exc).__name__,
                },
            )

        try:
            await retry_async(
                attempt,
                self._retry_policy,
                retry_if=lambda exc: not isinstance(exc, DuplicateEvent) and self._retry_if(exc),
                on_retry=on_retry,
            )
        except DuplicateEvent:
            raise
        except Exception as exc:
            raise _HandlerFailed(exc, attempts) from exc

    # -- batch mode --------------------------------------------------------------------------

    async def _process_in_apply_batches(self, tp: TopicPartition, records: list[ConsumerRecord]) -> bool:
        """Settle one partition's records of a poll batch; ``False`` when the runner is stopping."""
        pending: list[tuple[ConsumerRecord, DecodedEvent]] = []
        for record in records:
            if self._stopping.is_set():
                return False
            try:
                event: DecodedEvent | None = self._decoder(record)
            except Exception:
                event = None
            if event is not None:
                pending.append((record, event))
                if len(pending) < self._apply_batch_size:
                    continue
            if pending:
                if not await self._settle_apply_batch(tp, pending):
                    return not self._stopping.is_set()
                pending = []
            if event is None:
                # Rejected by the decoder: settled on its own, exactly as in per-record mode.
                if self._stopping.is_set():
                    return False
                if tp not in self._consumer.assignment():
                    return True  # revoked: the new owner gets the rest from the committed offset
                if not await self._process(record):
                    return False
                self._mark_settled(tp, record)
        if pending and not await self._settle_apply_batch(tp, pending):
            return not self._stopping.is_set()
        return True

    async def _settle_apply_batch(
        self, tp: TopicPartition, batch: list[tuple[ConsumerRecord, DecodedEvent]]
    ) -> bool:
        """Apply ``batch`` in one transaction, or record by record if that fails; ``False`` when
        it was cut short (the runner is stopping or lost the partition)."""
        try:
            outcomes = await self._apply_in_one_transaction(tp, batch)
        except Exception as exc:
            self.stats.apply_batch_fallbacks += 1
            APPLY_BATCH_FALLBACKS.labels(topic=tp.topic, group=self.group_id).inc()
            log.warning(
                "apply batch rolled back; applying its records one at a time",
                extra={
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "first_offset": batch[0][0].offset,
                    "last_offset": batch[-1][0].offset,
                    "records": len(batch),
                    "group": self.group_id,
                    "error_type": type(exc).__name__,
                },
            )
            for record, event in batch:
                if self._stopping.is_set() or tp not in self._consumer.assignment():
                    return False
                if not await self._process(record, event):
                    return False
                self._mark_settled(tp, record)
            return True
        for (record, event), outcome in zip(batch, outcomes, strict=False):
            self._count(record, outcome, event.event_id)
        if outcomes:
            self.stats.apply_batches += 1
            APPLY_BATCH_RECORDS.labels(topic=tp.topic, group=self.group_id).observe(len(outcomes))
            self._mark_settled(tp, batch[len(outcomes) - 1][0])
        return len(outcomes) == len(batch)

    async def _apply_in_one_transaction(
        self, tp: TopicPartition, batch: list[tuple[ConsumerRecord, DecodedEvent]]
    ) -> list[Outcome]:
        """Claim and apply the events of ``batch`` in order in one ledger transaction and commit.

        Returns the outcomes (applied or duplicate) of the events it got to: all of them, or
        fewer when the runner started stopping or lost the partition meanwhile. Raises whatever
        failed; nothing of the batch is then durable.
        """
        ledger = cast(BatchIdempotencyLedger, self._ledger)
        tracer = trace.get_tracer(__name__)
        loop = asyncio.get_running_loop()
        outcomes: list[Outcome] = []
        spans: list[Span] = []
        seconds: list[float] = []
        started = time.perf_counter()
        committed = False
        try:
            async with (
                asyncio.timeout(self._handler_timeout) as deadline,
                ledger.claim_batch(self.group_id, [event.event_id for _, event in batch]) as claims,
            ):
                for record, event in batch:
                    if self._stopping.is_set() or tp not in self._consumer.assignment():
                        break
                    deadline.reschedule(loop.time() + self._handler_timeout)
                    span = tracer.start_span(
                        f"{record.topic} process",
                        context=extract_trace_context(record.headers),
                        kind=SpanKind.CONSUMER,
                        attributes={
                            "messaging.system": "kafka",
                            "messaging.operation.type": "process",
                            "messaging.destination.name": record.topic,
                            "messaging.destination.partition.id": str(record.partition),
                            "messaging.kafka.offset": record.offset,
                            "messaging.consumer.group.name": self.group_id,
                            "messaging.message.id": event.event_id,
                        },
                    )
                    spans.append(span)
                    began = time.perf_counter()
                    try:
                        with trace.use_span(span):
                            claimed = await claims.claim(
                                event.event_id,
                                topic=event.topic,
                                partition=event.partition,
                                offset=event.offset,
                            )
                            if claimed:
                                await self._handler(event, claims.session)
                    finally:
                        seconds.append(time.perf_counter() - began)
                    outcomes.append(Outcome.APPLIED if claimed else Outcome.DUPLICATE)
                deadline.reschedule(loop.time() + self._handler_timeout)  # for the commit
            committed = True
        finally:
            # One observation per attempt at an event, as in per-record mode; a committed batch's
            # begin, lookup and commit are shared out among its events.
            overhead = time.perf_counter() - started - sum(seconds)
            share = overhead / len(seconds) if committed and seconds else 0.0
            histogram = HANDLER_SECONDS.labels(topic=tp.topic, group=self.group_id)
            for value in seconds:
                histogram.observe(value + share)
            for index, span in enumerate(spans):
                if committed:
                    span.set_attribute("novamind.outcome", outcomes[index].value)
                else:
                    span.set_attribute("novamind.apply_batch_rolled_back", True)
                span.end()
        return outcomes

    async def _dead_letter(self, record: ConsumerRecord, failure: _Failure, event_id: str | None) -> bool:
        """Publish ``record`` to its DLQ, retrying until acknowledged; ``False`` if stopped first."""
        headers = [(name, value) for name, value in (record.headers or ()) if name not in DLQ_HEADERS]
        headers += encode_headers(
            {
                DLQ_REASON: failure.reason,
                DLQ_ERROR_CODE: failure.code,
                DLQ_ATTEMPTS: str(failure.attempts),
                DLQ_SOURCE_TOPIC: record.topic,
                DLQ_SOURCE_PARTITION: str(record.partition),
                DLQ_SOURCE_OFFSET: str(record.offset),
                DLQ_CONSUMER_GROUP: self.group_id,
                DLQ_FAILED_AT: datetime.now(UTC).isoformat(),
            }
        )
        where = {
            "event_id": event_id,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "group": self.group_id,
        }
        backoff = 0.1
        failures = 0
        while True:
            try:
                await self._producer.send_record(
                    dlq_topic(record.topic), key=record.key, value=record.value, headers=headers
                )
            except Exception as exc:
                failures += 1
                DLQ_PUBLISH_FAILURES.labels(topic=record.topic, group=self.group_id).inc()
                log.error(
                    "dead letter not accepted; retrying and holding the offset",
                    extra={**where, "error_type": type(exc).__name__, "attempt": failures},
                )
                if failures == 1:
                    # The DLQ may stay down for long: do not hold back what is already settled.
                    await self._commit()
                if await self._stop_requested_within(random.uniform(backoff / 2, backoff)):
                    return False
                backoff = min(backoff * 2, self._dlq_max_backoff)
                continue
            log.warning(
                "event dead-lettered",
                extra={
                    **where,
                    "error_code": failure.code,
                    "attempts": failure.attempts,
                    "reason": failure.reason,
                },
            )
            return True

    def _count(self, record: ConsumerRecord, outcome: Outcome, event_id: str | None) -> None:
        if outcome is Outcome.APPLIED:
            self.stats.applied += 1
        elif outcome is Outcome.DUPLICATE:
            self.stats.duplicate += 1
            log.info(
                "duplicate event skipped",
                extra={
                    "event_id": event_id,
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "group": self.group_id,
                },
            )
        else:
            self.stats.dead_lettered += 1
        EVENTS_TOTAL.labels(topic=record.topic, group=self.group_id, outcome=outcome.value).inc()

    # -- offsets -----------------------------------------------------------------------------

    async def _commit(self, partitions: Sequence[TopicPartition] | None = None) -> None:
        """Commit settled offsets (of ``partitions``, or all); a failure leaves them for later."""
        if self._consumer is None:
            return
        assigned = self._consumer.assignment()
        wanted = (
            self._uncommitted
            if partitions is None
            else {tp: self._uncommitted[tp] for tp in partitions if tp in self._uncommitted}
        )
        offsets = {tp: offset for tp, offset in wanted.items() if tp in assigned}
        for tp in set(wanted) - set(offsets):
            del self._uncommitted[tp]  # no longer ours; the new owner deduplicates
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            log.warning(
                "offset commit failed; the records will be redelivered and deduplicated",
                extra={"group": self.group_id, "error_type": type(exc).__name__},
            )
            return
        for tp, offset in offsets.items():
            self.stats.committed[tp] = offset
            if self._uncommitted.get(tp) == offset:
                del self._uncommitted[tp]

    async def _update_lag(self) -> None:
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            position = self._settled_position.get(tp)
            if position is None:
                try:
                    position = await asyncio.wait_for(self._consumer.position(tp), 1.0)
                except (KafkaError, TimeoutError):
                    continue
            CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition), group=self.group_id).set(
                max(0, highwater - position)
            )

    async def _on_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self._commit(revoked)
        for tp in revoked:
            self._uncommitted.pop(tp, None)
            self._settled_position.pop(tp, None)
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(tp.topic, str(tp.partition), self.group_id)

    # -- shutdown ----------------------------------------------------------------------------

    async def _stop_requested_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _close(self, consumer: Any) -> None:
        coordinator = getattr(consumer, "_coordinator", None)
        generation = getattr(coordinator, "generation", -1)
        member_id = getattr(coordinator, "member_id", "")
        coordinator_id = getattr(coordinator, "coordinator_id", None)
        await consumer.stop()
        # aiokafka only sends LeaveGroup for generations above 0, but Tansu numbers the first
        # generation 0: without this, the next member waits out the session timeout.
        if generation == 0 and member_id and coordinator_id is not None:
            await self._leave_group(member_id, coordinator_id)

    async def _leave_group(self, member_id: str, coordinator_id: int) -> None:
        from aiokafka.client import AIOKafkaClient
        from aiokafka.protocol.group import LeaveGroupRequest

        client = AIOKafkaClient(bootstrap_servers=self._bootstrap, client_id=self.name)
        try:
            async with asyncio.timeout(5.0):
                await client.bootstrap()
                await client.send(coordinator_id, LeaveGroupRequest(self.group_id, member_id))
        except (KafkaError, TimeoutError, OSError) as exc:
            log.debug(
                "leaving the consumer group failed",
                extra={"group": self.group_id, "error_type": type(exc).__name__},
            )
        finally:
            await client.close()


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what was settled on partitions this member is about to lose."""

    def __init__(self, runner: ConsumerRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self._runner._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        return None


def _where(event: DecodedEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "topic": event.topic,
        "partition": event.partition,
        "offset": event.offset,
    }


def _failure(exc: Exception, *, attempts: int, transient: bool) -> _Failure:
    """The DLQ code and reason for ``exc``: type and message, never the statement or its values."""
    if isinstance(exc, NovamindError):
        where = f" [{exc.field}]" if exc.field else ""
        code = exc.code.value
        reason = f"{type(exc).__name__}: {exc.message}{where}"
    else:
        if isinstance(exc, TimeoutError):
            code = ErrorCode.DEADLINE_EXCEEDED.value
        elif transient:
            code = ErrorCode.SERVICE_UNAVAILABLE.value
        else:
            code = ErrorCode.INTERNAL_ERROR.value
        if isinstance(exc, StatementError):
            # SQLAlchemy's message embeds the SQL parameters, i.e. payload values: keep the driver's.
            original = str(exc.orig).splitlines()[0] if exc.orig is not None else ""
            reason = f"{type(exc).__name__}: {type(exc.orig).__name__}: {original}"
        else:
            message = str(exc) or "(no message)"
            reason = f"{type(exc).__name__}: {message}"
    if transient:
        reason = f"{reason} (gave up after {attempts} attempts)"
    return _Failure(code=code, reason=reason[:MAX_REASON_LENGTH], attempts=attempts)
