"""The transactional outbox: events are written with the change they announce, then relayed to Kafka.

:meth:`Outbox.enqueue` inserts an event row through the caller's session, so the event commits
(or rolls back) with the change. :class:`OutboxRelay`, a background task of the runtime, publishes
unpublished rows in id order with :class:`~novamind.core.kafka.EventProducer` (key = patient
pseudonym, value = the message's protobuf JSON, envelope headers from the producer, the trace
context of the change as the parent of the publish span) and then marks them published.

Delivery is at least once: a crash between the broker's acknowledgement and the ``published_at``
update publishes the row again, with the same ``event-id`` header, which consumers deduplicate.
The relay wakes as soon as a transaction with outbox rows commits and also polls, so rows written
by another replica (or left by a crash) go out too. On PostgreSQL one replica relays at a time
(a transaction-scoped advisory lock), which keeps each patient's events in commit order.
Payloads are PHI (an analysis request carries a week of activity counts), so they are stored
encrypted like every other blob; published rows are deleted after a retention period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry import context as otel_context
from opentelemetry import propagate
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from novamind.core.crypto import EnvelopeCipher
from novamind.core.kafka import EventProducer
from novamind.twin.adapters.tables import outbox

log = logging.getLogger(__name__)

OUTBOX_PUBLISHED = Counter("novamind_twin_outbox_published", "Outbox events published to Kafka", ["topic"])
OUTBOX_FAILURES = Counter(
    "novamind_twin_outbox_publish_failures", "Outbox publish batches that failed and were retried"
)

#: Key of the PostgreSQL advisory lock held by the replica that relays (any fixed 64-bit number).
RELAY_LOCK_KEY = 0x7477696E5F6F7574  # "twin_out"


class EventMessage(Protocol):
    """An event message of ``events.v1``: every one carries its own ``event_id``."""

    event_id: str


def on_commit(session: AsyncSession, name: str, callback: Callable[[], None]) -> None:
    """Run ``callback`` once after ``session``'s transaction commits (registered once per ``name``)."""
    registered: set[str] = session.info.setdefault("novamind_twin_on_commit", set())
    if name in registered:
        return
    registered.add(name)

    def after_commit(_: Any) -> None:
        registered.discard(name)
        callback()

    sa.event.listen(session.sync_session, "after_commit", after_commit, once=True)


class Outbox:
    """Writes events into the outbox table and wakes the relay once they are committed."""

    def __init__(self, cipher: EnvelopeCipher) -> None:
        self.cipher = cipher
        self.wake = asyncio.Event()

    def notify(self) -> None:
        """Tell the relay that rows were committed."""
        self.wake.set()

    async def enqueue(self, session: AsyncSession, topic: str, key: str, message: Message) -> str:
        """Insert ``message`` for ``topic`` through ``session`` (its transaction); returns its event id.

        The row is committed with the caller's transaction; the relay is woken after the commit.
        """
        event_id = str(getattr(message, "event_id", ""))
        if not event_id:
            raise ValueError("an outbox event needs its event_id")
        value = json_format.MessageToJson(message, indent=None).encode()
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        await session.execute(
            outbox.insert().values(
                event_id=event_id,
                topic=topic,
                key=key,
                event_type=message.DESCRIPTOR.full_name,
                payload=(blob := self.cipher.encrypt(value, context=key.encode())),
                key_id=EnvelopeCipher.key_id_of(blob),
                headers=json.dumps(carrier, separators=(",", ":")),
                created_at=datetime.now(UTC),
            )
        )
        on_commit(session, "outbox", self.notify)
        return event_id


class OutboxRelay:
    """Publishes committed outbox rows to Kafka; runs as one of the runtime's background consumers.

    ``batch_size`` rows per round; ``poll_seconds`` between rounds when nothing wakes it;
    ``max_backoff_seconds`` is the longest wait after a failed round (full-jitter exponential
    backoff from 0.1 s); published rows older than ``retention_seconds`` are deleted.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        outbox_writer: Outbox,
        producer: EventProducer,
        *,
        batch_size: int = 200,
        poll_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        retention_seconds: float = 86_400.0,
    ) -> None:
        self._engine = engine
        self._outbox = outbox_writer
        self._producer = producer
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._max_backoff = max_backoff_seconds
        self._retention = timedelta(seconds=retention_seconds)
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running = False
        self._last_purge = 0.0
        #: Events published, rounds completed and rounds failed since start.
        self.published = 0
        self.rounds = 0
        self.failed_rounds = 0

    async def start(self) -> None:
        """Nothing to connect: the producer is started by the runtime."""
        self._stopping.clear()
        self._stopped.clear()

    async def stop(self) -> None:
        """Stop after the round in flight and one last round for rows already committed."""
        self._stopping.set()
        self._outbox.wake.set()
        if self._running:
            await self._stopped.wait()

    async def run(self) -> None:
        """Publish until :meth:`stop`, surviving database and broker failures with backoff."""
        backoff = 0.1
        self._running = True
        try:
            while not self._stopping.is_set():
                self._outbox.wake.clear()
                try:
                    published = await self.publish_pending()
                    await self._purge_published()
                    self.rounds += 1
                    backoff = 0.1
                except Exception as exc:
                    self.failed_rounds += 1
                    OUTBOX_FAILURES.inc()
                    log.warning(
                        "outbox relay round failed; retrying",
                        extra={"error_type": type(exc).__name__, "backoff_seconds": round(backoff, 3)},
                    )
                    await self._wait(random.uniform(backoff / 2, backoff))
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                if published < self._batch_size:
                    await self._wait(self._poll_seconds)
            with contextlib.suppress(Exception):
                while await self.publish_pending() == self._batch_size:
                    pass
        finally:
            self._running = False
            self._stopped.set()

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.wake.wait(), seconds)

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished rows in id order; the number published.

        Rows whose send failed stay unpublished and the first failure is raised after the rows
        that were acknowledged have been marked.
        """
        failures: list[BaseException] = []
        async with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                locked = await conn.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(RELAY_LOCK_KEY)))
                if not locked:
                    return 0
            rows = (
                await conn.execute(
                    sa.select(
                        outbox.c.id,
                        outbox.c.event_id,
                        outbox.c.topic,
                        outbox.c.key,
                        outbox.c.event_type,
                        outbox.c.payload,
                        outbox.c.headers,
                    )
                    .where(outbox.c.published_at.is_(None))
                    .order_by(outbox.c.id)
                    .limit(self._batch_size)
                )
            ).all()
            if not rows:
                return 0
            results = await asyncio.gather(*(self._send(row) for row in rows), return_exceptions=True)
            sent = [row.id for row, result in zip(rows, results, strict=True) if result is None]
            failures = [result for result in results if isinstance(result, BaseException)]
            if sent:
                await conn.execute(
                    outbox.update().where(outbox.c.id.in_(sent)).values(published_at=datetime.now(UTC))
                )
        self.published += len(sent)
        if failures:
            raise failures[0]
        return len(sent)

    async def _send(self, row: Any) -> None:
        value = self._outbox.cipher.decrypt(row.payload, context=row.key.encode())
        parent = propagate.extract(json.loads(row.headers or "{}"))
        token = otel_context.attach(parent)
        try:
            await self._producer.send(
                row.topic, key=row.key, value=value, event_id=row.event_id, event_type=row.event_type
            )
        finally:
            otel_context.detach(token)
        OUTBOX_PUBLISHED.labels(topic=row.topic).inc()

    async def _purge_published(self) -> None:
        now = time.monotonic()
        if now - self._last_purge < 60.0:
            return
        self._last_purge = now
        cutoff = datetime.now(UTC) - self._retention
        async with self._engine.begin() as conn:
            await conn.execute(
                outbox.delete().where(outbox.c.published_at.is_not(None), outbox.c.published_at < cutoff)
            )

    async def pending(self) -> int:
        """Rows not yet published (for readiness and tests)."""
        async with self._engine.connect() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            )
        return int(count or 0)
