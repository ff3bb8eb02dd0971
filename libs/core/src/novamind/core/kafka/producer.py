"""The one way Novamind publishes events: acknowledged sends with the envelope and trace context.

Every event carries ``event-id`` (consumers deduplicate on it), ``event-type`` and
``content-type`` headers plus the W3C trace context of the sending span. :meth:`EventProducer.send`
returns only after all in-sync replicas have the record (``acks="all"``), so a caller that commits
its own state after ``send`` never reports an event the bus has lost.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from novamind.core.errors import DataProcessingError, NovamindError, ServiceUnavailableError
from novamind.core.kafka.headers import (
    CONTENT_TYPE,
    EVENT_ID,
    EVENT_TYPE,
    JSON_CONTENT_TYPE,
    encode_headers,
    inject_trace_context,
)

log = logging.getLogger(__name__)

#: aiokafka's ``RecordMetadata`` (topic, partition, offset, timestamp); untyped upstream.
RecordMetadata = Any


class EventProducer:
    """An acknowledged Kafka producer for Novamind events.

    ``linger_ms`` (milliseconds) lets concurrent sends share a batch. ``enable_idempotence`` stays
    off by default because the embedded development broker (Tansu) rejects ``InitProducerId``;
    turn it on against Kafka. Transactions are never used.

    Use as ``async with EventProducer(...) as producer:`` or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        bootstrap: str,
        client_id: str,
        *,
        linger_ms: int = 5,
        request_timeout_ms: int = 30_000,
        enable_idempotence: bool = False,
    ) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._linger_ms = linger_ms
        self._request_timeout_ms = request_timeout_ms
        self._enable_idempotence = enable_idempotence
        self._producer: Any = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        """Connect to the brokers. Raises :class:`ServiceUnavailableError` when unreachable."""
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            acks="all",
            linger_ms=self._linger_ms,
            request_timeout_ms=self._request_timeout_ms,
            enable_idempotence=self._enable_idempotence,
        )
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise ServiceUnavailableError(
                f"cannot connect to Kafka: {type(exc).__name__}", service="kafka"
            ) from exc
        self._producer = producer

    async def stop(self) -> None:
        """Flush pending sends and disconnect. Idempotent."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __aenter__(self) -> EventProducer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def send(
        self,
        topic: str,
        *,
        key: str,
        value: bytes,
        event_id: str,
        event_type: str,
        headers: Mapping[str, str] | None = None,
        content_type: str = JSON_CONTENT_TYPE,
    ) -> RecordMetadata:
        """Publish one event and wait for its acknowledgement.

        ``key`` is the patient pseudonym (never a raw identifier): it picks the partition, so one
        patient's events stay in order. ``headers`` are extra text headers; the envelope headers
        and the trace context are added here. Raises :class:`ServiceUnavailableError` when the
        brokers cannot take the record (retryable) and :class:`DataProcessingError` when they
        reject it.
        """
        text_headers = dict(headers or {})
        text_headers[EVENT_ID] = event_id
        text_headers[EVENT_TYPE] = event_type
        text_headers.setdefault(CONTENT_TYPE, content_type)
        tracer = trace.get_tracer(__name__)
        with tracer.start_as_current_span(
            f"{topic} publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": topic,
                "messaging.message.id": event_id,
                "novamind.event_type": event_type,
            },
        ) as span:
            raw_headers = encode_headers(text_headers)
            inject_trace_context(raw_headers)
            metadata = await self.send_record(
                topic, key=key.encode("utf-8"), value=value, headers=raw_headers
            )
            span.set_attribute("messaging.destination.partition.id", str(metadata.partition))
            span.set_attribute("messaging.kafka.offset", int(metadata.offset))
        log.debug(
            "event published",
            extra={
                "event_id": event_id,
                "event_type": event_type,
                "topic": topic,
                "partition": metadata.partition,
                "offset": metadata.offset,
            },
        )
        return metadata

    async def send_record(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> RecordMetadata:
        """Publish a record verbatim (no envelope, no trace context) and wait for its ack.

        Used to dead-letter a record with its original bytes. Raises as :meth:`send` does.
        """
        if self._producer is None:
            raise ServiceUnavailableError("the event producer is not started", service="kafka")
        try:
            return await self._producer.send_and_wait(topic, value=value, key=key, headers=list(headers))
        except KafkaError as exc:
            raise _as_novamind_error(exc, topic) from exc


def _as_novamind_error(exc: KafkaError, topic: str) -> NovamindError:
    reason = f"Kafka did not take the record for {topic}: {type(exc).__name__}"
    if isinstance(exc, (KafkaTimeoutError, KafkaConnectionError)) or getattr(exc, "retriable", False):
        return ServiceUnavailableError(reason, service="kafka")
    return DataProcessingError(reason, service="kafka")
