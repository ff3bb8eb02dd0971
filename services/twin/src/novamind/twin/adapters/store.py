"""The twin's SQL store (SQLAlchemy 2, async): SQLite by default, PostgreSQL in a cluster.

Schema changes are Alembic migrations (``novamind-twin migrate``), never made at import or start.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from novamind.twin.domain.readings import IngestionStats, Reading

metadata = sa.MetaData()

readings = sa.Table(
    "readings",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(255), nullable=False, unique=True),
    sa.Column("patient", sa.String(64), nullable=False),
    sa.Column("schema", sa.String(64), nullable=False),
    sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("unit", sa.String(32), nullable=True),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_readings_patient_start", "patient", "start_at"),
)


async def add_reading(session: AsyncSession, reading: Reading) -> None:
    """Insert one reading inside the caller's transaction."""
    await session.execute(
        readings.insert().values(
            event_id=reading.event_id,
            patient=reading.patient,
            schema=reading.schema,
            start_at=reading.start,
            end_at=reading.end,
            value=reading.value,
            unit=reading.unit,
            ingested_at=datetime.now(UTC),
        )
    )


async def ingestion_stats(engine: AsyncEngine, patient: str | None = None) -> IngestionStats:
    """Counts of stored readings and distinct patients (for one patient if given)."""
    query = sa.select(sa.func.count(), sa.func.count(sa.distinct(readings.c.patient)))
    if patient is not None:
        query = query.where(readings.c.patient == patient)
    async with engine.connect() as conn:
        row = (await conn.execute(query)).one()
    return IngestionStats(readings=int(row[0]), patients=int(row[1]))


async def ping(engine: AsyncEngine) -> None:
    """Raise if the database does not answer (readiness)."""
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))
