"""The idempotency ledger on SQLite and PostgreSQL: the effect and the "applied" row commit or
roll back together, and a second claim of the same event is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from novamind.core.db import make_engine
from novamind.core.kafka import DuplicateEvent, SqlIdempotencyLedger, create_ledger_tables, processed_events

pytestmark = pytest.mark.timeout(30)

EFFECTS_METADATA = MetaData()
effects = Table(
    "ledger_effects",
    EFFECTS_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(255), nullable=False),
)

TOPIC = "device.readings.v1"


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


async def count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar_one())


async def test_claim_commits_the_effect_and_the_ledger_row_together(engine: AsyncEngine) -> None:
    ledger = SqlIdempotencyLedger(engine)

    async with ledger.claim("twin", "evt-1", topic=TOPIC, partition=0, offset=41) as session:
        await session.execute(insert(effects).values(event_id="evt-1"))

    assert await ledger.is_processed("twin", "evt-1")
    assert await count(engine, effects) == 1
    async with engine.connect() as connection:
        row = (await connection.execute(select(processed_events))).one()
    assert (row.consumer_group, row.event_id, row.topic, row.partition, row.offset) == (
        "twin",
        "evt-1",
        "device.readings.v1",
        0,
        41,
    )
    assert row.processed_at is not None


async def test_second_claim_of_an_event_raises_duplicate_and_runs_nothing(engine: AsyncEngine) -> None:
    ledger = SqlIdempotencyLedger(engine)
    async with ledger.claim("twin", "evt-1", topic=TOPIC, partition=0, offset=41) as session:
        await session.execute(insert(effects).values(event_id="evt-1"))

    with pytest.raises(DuplicateEvent) as raised:
        async with ledger.claim("twin", "evt-1", topic=TOPIC, partition=0, offset=41) as session:
            await session.execute(insert(effects).values(event_id="evt-1"))

    assert (raised.value.consumer_group, raised.value.event_id) == ("twin", "evt-1")
    assert await count(engine, effects) == 1


async def test_handler_exception_rolls_back_the_ledger_row_so_a_retry_applies(engine: AsyncEngine) -> None:
    ledger = SqlIdempotencyLedger(engine)

    with pytest.raises(RuntimeError):
        async with ledger.claim("twin", "evt-1", topic=TOPIC, partition=0, offset=41) as session:
            await session.execute(insert(effects).values(event_id="evt-1"))
            raise RuntimeError("handler failed after partial work")

    assert not await ledger.is_processed("twin", "evt-1")
    assert await count(engine, effects) == 0

    async with ledger.claim("twin", "evt-1", topic=TOPIC, partition=0, offset=41) as session:
        await session.execute(insert(effects).values(event_id="evt-1"))
    assert await ledger.is_processed("twin", "evt-1")
    assert await count(engine, effects) == 1


async def test_consumer_groups_deduplicate_independently(engine: AsyncEngine) -> None:
    ledger = SqlIdempotencyLedger(engine)
    async with ledger.claim("twin", "evt-1", topic=TOPIC, partition=0, offset=41):
        pass
    async with ledger.claim("gateway", "evt-1", topic=TOPIC, partition=0, offset=41):
        pass

    assert await count(engine, processed_events) == 2


async def test_sqlite_engine_uses_wal_busy_timeout_and_foreign_keys(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        async with engine.connect() as connection:
            journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
            busy = (await connection.execute(text("PRAGMA busy_timeout"))).scalar_one()
            foreign_keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one()
    finally:
        await engine.dispose()

    assert (journal, busy, foreign_keys) == ("wal", 5000, 1)


async def test_postgres_engine_works_in_the_schema_named_by_search_path(postgres_url: str) -> None:
    schema = postgres_url.rsplit("search_path=", 1)[1]
    engine = make_engine(postgres_url)
    try:
        await create_ledger_tables(engine)
        async with engine.connect() as connection:
            current = (await connection.execute(text("SELECT current_schema()"))).scalar_one()
            tables = (
                (
                    await connection.execute(
                        text(
                            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'processed_events'"
                            " AND table_schema = :schema"
                        ),
                        {"schema": schema},
                    )
                )
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()

    assert current == schema
    assert tables == [schema]
