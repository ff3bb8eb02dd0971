"""The idempotency ledger: an event's effect and the record that it was applied commit together.

Kafka delivers at least once, so a consumer sees some events twice (a crash between applying an
event and committing its offset, a rebalance, a producer retry). Each consumer group records every
event it applies in ``processed_events`` *inside the same database transaction as the effect*:

* the first statement of the transaction inserts the ``(consumer_group, event_id)`` row; if it is
  already there, :class:`DuplicateEvent` is raised and nothing runs;
* the handler's writes go through the yielded session in that transaction;
* normal exit commits both; any exception rolls both back, so a retry can apply the event.

:meth:`SqlIdempotencyLedger.claim_batch` does the same for several events in one transaction (the
consumer runner's batch mode): each event is claimed just before its effect, an event already
applied (before the batch, or earlier in it) is reported instead of raising, and the rows of all
claimed events are inserted in one statement just before the commit, so the whole batch commits
or rolls back together.

Service migrations include :data:`LEDGER_METADATA` (or the :data:`processed_events` table) so the
ledger lives in the service's own database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

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


#: Event ids looked up per query when a batch starts (well below SQLite's bound-parameter limit).
_LOOKUP_CHUNK = 500


class IdempotencyLedger(Protocol):
    """What the consumer runner needs from a ledger."""

    def claim(
        self, group: str, event_id: str, *, topic: str, partition: int, offset: int
    ) -> AbstractAsyncContextManager[AsyncSession]: ...


class ClaimBatch(Protocol):
    """One ledger transaction shared by several events (:meth:`BatchIdempotencyLedger.claim_batch`)."""

    @property
    def session(self) -> AsyncSession:
        """The transaction's session: every event's effect is written through it."""
        ...

    async def claim(self, event_id: str, *, topic: str, partition: int, offset: int) -> bool:
        """Record ``event_id`` as applied in this transaction; ``False`` if it already was."""
        ...


@runtime_checkable
class BatchIdempotencyLedger(IdempotencyLedger, Protocol):
    """A ledger that can also apply several events in one transaction (the runner's batch mode)."""

    def claim_batch(
        self, group: str, event_ids: Collection[str]
    ) -> AbstractAsyncContextManager[ClaimBatch]: ...


class SqlIdempotencyLedger:
    """The ledger in a SQL database (SQLite or PostgreSQL) reached through ``engine``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def claim_batch(self, group: str, event_ids: Collection[str]) -> AsyncIterator[ClaimBatch]:
        """Open one transaction in which ``group`` claims some of ``event_ids``, one at a time.

        ``event_ids`` are the events the batch may claim; those ``group`` already applied are
        looked up once, here. Yields a :class:`ClaimBatch`: its ``claim`` returns ``True`` for an
        event to apply now through its ``session``, or ``False`` for an event applied before the
        batch or claimed earlier in it. On normal exit the claimed events' rows are inserted (one
        statement) and everything commits; any exception rolls everything back. If another
        transaction applied one of the events after the lookup, the insert fails with
        :class:`~sqlalchemy.exc.IntegrityError` and the batch rolls back. Database failures
        propagate as SQLAlchemy errors.
        """
        async with AsyncSession(self._engine, expire_on_commit=False) as session, session.begin():
            wanted = list(dict.fromkeys(event_ids))
            applied: set[str] = set()
            for start in range(0, len(wanted), _LOOKUP_CHUNK):
                rows = await session.execute(
                    select(processed_events.c.event_id).where(
                        processed_events.c.consumer_group == group,
                        processed_events.c.event_id.in_(wanted[start : start + _LOOKUP_CHUNK]),
                    )
                )
                applied.update(rows.scalars())
            batch = _SqlClaimBatch(session, group, applied)
            yield batch
            await batch.insert_claimed()

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


#: One constant statement executed with a list of rows, so SQLAlchemy compiles it once.
_INSERT_PROCESSED = insert(processed_events)


class _SqlClaimBatch:
    """The :class:`ClaimBatch` of :meth:`SqlIdempotencyLedger.claim_batch`."""

    def __init__(self, session: AsyncSession, group: str, applied: set[str]) -> None:
        self._session = session
        self._group = group
        self._applied = applied
        self._claimed: list[dict[str, object]] = []

    @property
    def session(self) -> AsyncSession:
        return self._session

    async def claim(self, event_id: str, *, topic: str, partition: int, offset: int) -> bool:
        if event_id in self._applied:
            return False
        self._applied.add(event_id)
        self._claimed.append(
            {
                "consumer_group": self._group,
                "event_id": event_id,
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "processed_at": datetime.now(UTC),
            }
        )
        return True

    async def insert_claimed(self) -> None:
        """Insert the rows of the events claimed so far (inside the batch's transaction)."""
        if self._claimed:
            await self._session.execute(_INSERT_PROCESSED, self._claimed)
            self._claimed = []


async def create_ledger_tables(engine: AsyncEngine) -> None:
    """Create ``processed_events`` if missing (tests and ``make dev``; services use migrations)."""
    async with engine.begin() as connection:
        await connection.run_sync(LEDGER_METADATA.create_all)
