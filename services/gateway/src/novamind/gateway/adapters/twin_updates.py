"""Fan-out of ``twin.updated.v1`` to the gateway's ``twinUpdated`` subscribers.

One hub per gateway process reads the topic without a consumer group (``group_id=None``), so every
replica sees every event, starting from the end of the topic as it was when the hub started
(subscriptions are live: a subscriber sees changes made after it subscribed). Each subscriber has a
bounded queue; when a subscriber falls that far behind it is dropped with an error, and the hub and
every other subscriber carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from google.protobuf import json_format
from prometheus_client import Counter, Gauge

from novamind.api.events.v1 import events_pb2
from novamind.core.errors import ResourceExhaustedError, ServiceUnavailableError
from novamind.core.kafka.headers import CONTENT_TYPE, decode_headers
from novamind.core.logging import safe

log = logging.getLogger(__name__)

SUBSCRIBERS = Gauge("novamind_gateway_subscribers", "Open twinUpdated subscriptions")
SUBSCRIBERS_DROPPED = Counter(
    "novamind_gateway_subscribers_dropped_total", "Subscriptions dropped because they fell behind"
)
EVENTS_RECEIVED = Counter(
    "novamind_gateway_twin_updates_total", "twin.updated.v1 events read by the hub", ["outcome"]
)

_CLOSED = object()


def decode_twin_updated(value: bytes | None, headers: Any) -> events_pb2.TwinUpdated:
    """A TwinUpdated from a record: proto3 JSON (the fleet's format) or binary protobuf.

    Raises :class:`ValueError` for an undecodable record.
    """
    if not value:
        raise ValueError("empty record")
    content_type = decode_headers(headers).get(CONTENT_TYPE, "application/json").split(";")[0].strip()
    event = events_pb2.TwinUpdated()
    try:
        if content_type in ("application/x-protobuf", "application/protobuf"):
            event.ParseFromString(value)
        else:
            json_format.Parse(value, event, ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        raise ValueError("not a TwinUpdated record") from exc
    except Exception as exc:  # protobuf's DecodeError
        raise ValueError("not a TwinUpdated record") from exc
    if not event.patient.pseudonym:
        raise ValueError("TwinUpdated without a patient")
    return event


class TwinSubscription:
    """One subscriber's stream of TwinUpdated events for one patient.

    Use as ``async with hub.subscribe(patient) as events: async for event in events: ...``;
    leaving the block unsubscribes.
    """

    def __init__(self, hub: TwinUpdatesHub, patient: str, queue_size: int) -> None:
        self.patient = patient
        self._hub = hub
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size + 1)
        self._capacity = queue_size
        self.error: ResourceExhaustedError | None = None

    def offer(self, event: events_pb2.TwinUpdated) -> bool:
        """Queue ``event``; False (and the subscription closed with an error) when it is full."""
        if self.error is not None:
            return False
        if self._queue.qsize() >= self._capacity:
            self.error = ResourceExhaustedError(
                f"subscriber fell more than {self._capacity} events behind; subscribe again"
            )
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(_CLOSED)
            return False
        self._queue.put_nowait(event)
        return True

    def close(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_CLOSED)

    def __aiter__(self) -> TwinSubscription:
        return self

    async def __anext__(self) -> events_pb2.TwinUpdated:
        """The next event; raises the drop error once the subscription fell behind."""
        item = await self._queue.get()
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # every later read ends the same way
            if self.error is not None:
                raise self.error
            raise StopAsyncIteration
        event: events_pb2.TwinUpdated = item
        return event

    async def __aenter__(self) -> TwinSubscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._hub.unsubscribe(self)


class TwinUpdatesHub:
    """Reads ``topic`` from its end and fans events out per patient (a runtime consumer)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        queue_size: int,
        client_id: str = "novamind-gateway-subscriptions",
        assignment_timeout: float = 15.0,
    ) -> None:
        self._bootstrap = bootstrap
        self.topic = topic
        self._queue_size = queue_size
        self._client_id = client_id
        self._assignment_timeout = assignment_timeout
        self._consumer: AIOKafkaConsumer | None = None
        self._subscribers: dict[str, set[TwinSubscription]] = defaultdict(set)
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.ready = asyncio.Event()

    # ---- subscribers ---------------------------------------------------------------------

    def subscribe(self, patient: str) -> TwinSubscription:
        """A new subscription to ``patient``'s updates. Raises SERVICE_UNAVAILABLE when stopped."""
        if self._stopping.is_set():
            raise ServiceUnavailableError("twin updates are not being received", service="gateway")
        subscription = TwinSubscription(self, patient, self._queue_size)
        self._subscribers[patient].add(subscription)
        SUBSCRIBERS.inc()
        return subscription

    def unsubscribe(self, subscription: TwinSubscription) -> None:
        subscribers = self._subscribers.get(subscription.patient)
        if subscribers is not None and subscription in subscribers:
            subscribers.discard(subscription)
            SUBSCRIBERS.dec()
            if not subscribers:
                del self._subscribers[subscription.patient]

    def subscriber_count(self, patient: str | None = None) -> int:
        if patient is not None:
            return len(self._subscribers.get(patient, ()))
        return sum(len(s) for s in self._subscribers.values())

    def publish(self, event: events_pb2.TwinUpdated) -> int:
        """Hand ``event`` to its patient's subscribers; the number that received it."""
        delivered = 0
        for subscription in list(self._subscribers.get(event.patient.pseudonym, ())):
            if subscription.offer(event):
                delivered += 1
            else:
                SUBSCRIBERS_DROPPED.inc()
                log.warning(
                    "dropped a subscriber that fell behind", extra={"patient": event.patient.pseudonym}
                )
                self.unsubscribe(subscription)
        return delivered

    # ---- consumer lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Connect, take every partition of the topic, and fix the start at its current end.

        Raises :class:`ServiceUnavailableError` when the brokers cannot be reached.
        """
        if self._consumer is not None:
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            client_id=self._client_id,
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        try:
            await consumer.start()
            consumer.subscribe([self.topic])
            deadline = time.monotonic() + self._assignment_timeout
            while not consumer.assignment() and time.monotonic() < deadline:
                await consumer.getmany(timeout_ms=100)
            for partition in consumer.assignment():
                await consumer.seek_to_end(partition)
                await consumer.position(partition)
        except KafkaError as exc:
            await consumer.stop()
            raise ServiceUnavailableError(
                f"cannot reach Kafka ({type(exc).__name__})", service="kafka"
            ) from exc
        if not consumer.assignment():
            log.warning("topic %s has no partitions yet; subscriptions start when it has", safe(self.topic))
        self._consumer = consumer
        self.ready.set()

    async def run(self) -> None:
        """Read and fan out until :meth:`stop`; undecodable records are counted and skipped."""
        await self.start()
        consumer = self._consumer
        if consumer is None or self._stopping.is_set():
            return
        self._idle.clear()
        try:
            while not self._stopping.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=500)
                for records in batch.values():
                    for record in records:
                        try:
                            event = decode_twin_updated(record.value, record.headers)
                        except ValueError:
                            EVENTS_RECEIVED.labels("undecodable").inc()
                            continue
                        EVENTS_RECEIVED.labels("received").inc()
                        self.publish(event)
        finally:
            self._idle.set()

    async def stop(self) -> None:
        """Stop reading and end every subscription. Idempotent."""
        self._stopping.set()
        for subscriptions in list(self._subscribers.values()):
            for subscription in list(subscriptions):
                subscription.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), 5.0)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def ping(self) -> None:
        """Raises when the hub is not receiving (readiness)."""
        if not self.ready.is_set() or self._stopping.is_set():
            raise ConnectionError("twin updates hub not started")
