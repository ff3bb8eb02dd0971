"""The readings part of the twin's SQL store (SQLAlchemy 2, async): SQLite by default, PostgreSQL
in a cluster. Schema in :mod:`novamind.twin.adapters.tables`; changes are Alembic migrations
(``novamind-twin migrate``), never made at import or start.

A reading's value and unit are stored as an encrypted JSON list ``[value, unit]`` (plus ``1`` for a
heart rate measured at rest), bound to the patient pseudonym; its times stay in plaintext.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from novamind.core.crypto import EnvelopeCipher
from novamind.twin.adapters.state import utc
from novamind.twin.adapters.tables import metadata, reading_progress, readings
from novamind.twin.adapters.twin_store import insert_ignoring_duplicates
from novamind.twin.domain.readings import ACTIVITY_COUNT, IngestionStats, Reading, is_minute_epoch

__all__ = ["ReadingStore", "ingestion_stats", "metadata", "ping"]


@dataclass(frozen=True, slots=True)
class SchemaCounts:
    """Readings held for one patient and schema, and the effective time of the newest."""

    schema: str
    count: int
    last_reading_at: datetime


_INSERT_READING = readings.insert()


class ReadingStore:
    """Encrypts, stores and reads device readings through a caller's session."""

    def __init__(self, cipher: EnvelopeCipher, *, week_cache_size: int = 256) -> None:
        self.cipher = cipher
        # Decrypted minute series by (patient, range, row count, newest row id): every insight
        # query reads the trailing week, and decrypting 10,080 readings each time would dominate
        # it. The key changes with any reading added to the range, so a hit is always current.
        self._samples: OrderedDict[tuple[Any, ...], list[tuple[datetime, float]]] = OrderedDict()
        self._cache_size = week_cache_size

    async def add(self, session: AsyncSession, reading: Reading) -> None:
        """Insert one reading inside the caller's transaction."""
        payload: list[float | str | int | None] = [reading.value, reading.unit]
        if reading.at_rest:
            payload.append(1)
        blob = self.cipher.encrypt_json(payload, context=reading.patient.encode())
        # One constant statement with parameters: compiled once, so a reading costs only the insert.
        await session.execute(
            _INSERT_READING,
            {
                "event_id": reading.event_id,
                "patient": reading.patient,
                "schema": reading.schema,
                "start_at": utc(reading.start),
                "end_at": None if reading.end is None else utc(reading.end),
                "payload": blob,
                "key_id": EnvelopeCipher.key_id_of(blob),
                "ingested_at": datetime.now(UTC),
            },
        )

    async def minute_epoch_starts(
        self, session: AsyncSession, patient: str, start: datetime, end: datetime
    ) -> list[datetime]:
        """Starts of the patient's minute-series epochs in ``[start, end)`` (no decryption)."""
        rows = await session.execute(self._minute_query(patient, start, end, with_payload=False))
        return [utc(r.start_at) for r in rows if is_minute_epoch(ACTIVITY_COUNT, utc(r.start_at), _end(r))]

    async def minute_samples(
        self, session: AsyncSession, patient: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        """``(epoch start, counts)`` of the patient's minute-series epochs in ``[start, end)``."""
        version = (
            await session.execute(
                sa.select(sa.func.count(), sa.func.max(readings.c.id)).where(
                    readings.c.patient == patient,
                    readings.c.schema == ACTIVITY_COUNT,
                    readings.c.start_at >= utc(start),
                    readings.c.start_at < utc(end),
                )
            )
        ).one()
        key = (patient, utc(start), utc(end), int(version[0]), version[1])
        cached = self._samples.get(key)
        if cached is not None:
            self._samples.move_to_end(key)
            return list(cached)
        samples = await self._read_minute_samples(session, patient, start, end)
        self._samples[key] = samples
        while len(self._samples) > self._cache_size:
            self._samples.popitem(last=False)
        return list(samples)

    async def _read_minute_samples(
        self, session: AsyncSession, patient: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        rows = await session.execute(self._minute_query(patient, start, end, with_payload=True))
        context = patient.encode()
        samples = []
        for row in rows:
            at = utc(row.start_at)
            if not is_minute_epoch(ACTIVITY_COUNT, at, _end(row)):
                continue
            value = self.cipher.decrypt_json(row.payload, context=context)[0]
            if value is not None:
                samples.append((at, float(value)))
        return samples

    def _minute_query(
        self, patient: str, start: datetime, end: datetime, *, with_payload: bool
    ) -> sa.Select[Any]:
        columns = [readings.c.start_at, readings.c.end_at] + ([readings.c.payload] if with_payload else [])
        return (
            sa.select(*columns)
            .where(
                readings.c.patient == patient,
                readings.c.schema == ACTIVITY_COUNT,
                readings.c.start_at >= utc(start),
                readings.c.start_at < utc(end),
            )
            .order_by(readings.c.start_at, readings.c.id)
        )

    async def samples(
        self,
        session: AsyncSession,
        patient: str,
        schema: str,
        start: datetime,
        end: datetime,
        *,
        at_rest_only: bool = False,
    ) -> list[tuple[datetime, float]]:
        """``(start, value)`` of the patient's ``schema`` readings starting in ``[start, end)``."""
        rows = await session.execute(
            sa.select(readings.c.start_at, readings.c.payload)
            .where(
                readings.c.patient == patient,
                readings.c.schema == schema,
                readings.c.start_at >= utc(start),
                readings.c.start_at < utc(end),
            )
            .order_by(readings.c.start_at, readings.c.id)
        )
        context = patient.encode()
        samples = []
        for row in rows:
            payload = self.cipher.decrypt_json(row.payload, context=context)
            if payload[0] is None or (at_rest_only and len(payload) < 3):
                continue
            samples.append((utc(row.start_at), float(payload[0])))
        return samples

    async def counts(self, session: AsyncSession, patients: Sequence[str]) -> dict[str, list[SchemaCounts]]:
        """Readings held per patient and schema (patients without readings are absent)."""
        if not patients:
            return {}
        rows = await session.execute(
            sa.select(
                readings.c.patient, readings.c.schema, sa.func.count(), sa.func.max(readings.c.start_at)
            )
            .where(readings.c.patient.in_(list(patients)))
            .group_by(readings.c.patient, readings.c.schema)
        )
        counts: dict[str, list[SchemaCounts]] = {}
        for patient, schema, count, last in rows:
            counts.setdefault(patient, []).append(SchemaCounts(schema, int(count), utc(last)))
        return counts

    # -- day completion ----------------------------------------------------------------------

    async def newest_complete_day(self, session: AsyncSession, patient: str) -> date | None:
        """The newest local day the patient's minute series has completed, if any."""
        value = await session.scalar(
            sa.select(reading_progress.c.newest_complete_day).where(reading_progress.c.patient == patient)
        )
        return value if isinstance(value, date) else None

    async def advance_complete_day(self, session: AsyncSession, patient: str, day: date) -> bool:
        """Record ``day`` as the newest complete day unless it is not newer; whether it advanced.

        A conditional update, so two writers racing for the same day cannot both advance it.
        """
        now = datetime.now(UTC)
        await session.execute(
            insert_ignoring_duplicates(
                session, reading_progress, patient=patient, newest_complete_day=None, updated_at=now
            )
        )
        result = await session.execute(
            reading_progress.update()
            .where(
                reading_progress.c.patient == patient,
                sa.or_(
                    reading_progress.c.newest_complete_day.is_(None),
                    reading_progress.c.newest_complete_day < day,
                ),
            )
            .values(newest_complete_day=day, updated_at=now)
        )
        return bool(getattr(result, "rowcount", 0))


def _end(row: Any) -> datetime | None:
    return None if row.end_at is None else utc(row.end_at)


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
