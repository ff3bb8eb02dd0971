"""The idempotency ledger: an event's effect and the record that it was applied commit together.

Kafka delivers at least once, so a consumer sees some events twice (a crash between applying an
event and committing its offset, a rebalance, a producer retry). Each consumer group records every
event it applies in ``processed_events`` *inside the same database transaction as the effect*:

* the first statement of the transaction inserts the ``(consumer_group, event_id)`` row; if it is
  already there, :class:`DuplicateEvent` is raised and nothing runs;
* the handler's writes go through the yielded session in that transaction;
* normal exit commits both; any exception rolls both back, so a retry can apply the event.

Service migrations include :data:`LEDGER_METADATA` (or the :data:`processed_events` table) so the
ledger lives in the service's own database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

LEDGER_METADATA = MetaData()

processed_events = Table(
    "processed_events",
    LEDGER_METADATA,
    Column("consumer_group", String(255), primary_key=True),
    Column("event_id", String(255), primary_key=True),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False),
)


class DuplicateEvent(Exception):
    """The consumer group already applied this event; it must be skipped."""

    def __init__(self, consumer_group: str, event_id: str) -> None:
        super().__init__(f"event {event_id} was already applied by consumer group {consumer_group}")
        self.consumer_group = consumer_group
        self.event_id = event_id


class IdempotencyLedger(Protocol):
    """What the consumer runner needs from a ledger."""

    def claim(
        self, group: str, event_id: str, *, topic: str, partition: int, offset: int
    ) -> AbstractAsyncContextManager[AsyncSession]: ...


class SqlIdempotencyLedger:
    """The ledger in a SQL database (SQLite or PostgreSQL) reached through ``engine``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def claim(
        self, group: str, event_id: str, *, topic: str, partition: int, offset: int
    ) -> AsyncIterator[AsyncSession]:
        """Open one transaction that records ``event_id`` as applied by ``group``.

        Yields the session for the event's effect; commits on normal exit, rolls back on any
        exception. Raises :class:`DuplicateEvent` (before yielding) if ``group`` already applied
        ``event_id``. Database failures propagate as SQLAlchemy errors.
        """
        async with AsyncSession(self._engine, expire_on_commit=False) as session, session.begin():
            try:
                await session.execute(
                    insert(processed_events).values(
                        consumer_group=group,
                        event_id=event_id,
                        topic=topic,
                        partition=partition,
                        offset=offset,
                        processed_at=datetime.now(UTC),
                    )
                )
            except IntegrityError as exc:
                raise DuplicateEvent(group, event_id) from exc
            yield session

    async def is_processed(self, group: str, event_id: str) -> bool:
        """Whether ``group`` has applied ``event_id`` (committed)."""
        async with self._engine.connect() as connection:
            row = await connection.execute(
                select(processed_events.c.event_id).where(
                    processed_events.c.consumer_group == group, processed_events.c.event_id == event_id
                )
            )
            return row.first() is not None


async def create_ledger_tables(engine: AsyncEngine) -> None:
    """Create ``processed_events`` if missing (tests and ``make dev``; services use migrations)."""
    async with engine.begin() as connection:
        await connection.run_sync(LEDGER_METADATA.create_all)
