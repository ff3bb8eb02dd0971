"""Versioned twins: every change is a new version, written with optimistic concurrency.

:meth:`TwinStore.apply` reads the twin, lets a *mutation* change a decrypted copy of its state,
and writes it back with ``UPDATE twins SET version = v + 1 ... WHERE patient = :p AND version = :v``.
When another writer got there first the update matches no row: the twin is re-read and the
mutation re-applied, up to ``max_attempts`` times with full-jitter backoff. A caller that named an
``expected_version`` gets :class:`ConflictError` instead of a retry once the twin is not (or no
longer) at that version.

The first change of a patient creates the twin at version 1 (there is no separate "created"
version): ``INSERT ... ON CONFLICT DO NOTHING``, and a lost insert race is retried as an update.
So N changes give version N and N history rows.

Each version writes, in the caller's transaction, the twin row, a ``twin_versions`` row (sections,
cause, the encrypted change) and a ``twin.updated.v1`` event in the outbox.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from novamind.api.common.v1 import common_pb2
from novamind.api.events.v1 import events_pb2
from novamind.core.crypto import EnvelopeCipher
from novamind.core.errors import ConflictError
from novamind.core.kafka import TWIN_UPDATED
from novamind.twin.adapters.outbox import Outbox
from novamind.twin.adapters.state import TwinState, decode_state, encode_state, utc
from novamind.twin.adapters.tables import twin_versions, twins

#: Namespace of ``twin.updated.v1`` event ids: uuid5(namespace, "<patient>:<version>").
TWIN_UPDATED_NAMESPACE = uuid.UUID("0b6f8a57-2f4e-4c8e-9a43-5d3f1e7c2a90")


@dataclass(frozen=True)
class Change:
    """What a mutation changed: the sections and a JSON-able description (stored encrypted)."""

    sections: tuple[str, ...]
    detail: dict[str, Any] = field(default_factory=dict)


#: Changes the state in place and says what changed, or returns None when there is nothing to do.
Mutation = Callable[[TwinState], Change | None]


@dataclass(frozen=True)
class TwinRecord:
    """A twin as stored: version, times, time zone and the decrypted state."""

    patient: str
    version: int
    created_at: datetime
    updated_at: datetime
    time_zone: str
    state: TwinState


@dataclass(frozen=True)
class Applied:
    """The result of :meth:`TwinStore.apply`: the twin after it, and whether a version was written."""

    twin: TwinRecord | None
    previous_version: int
    changed: bool
    change: Change | None = None


class TwinStore:
    """Reads and versions twins through a caller's :class:`AsyncSession`."""

    def __init__(
        self,
        cipher: EnvelopeCipher,
        outbox_writer: Outbox,
        *,
        default_time_zone: str = "UTC",
        max_attempts: int = 60,
        backoff_seconds: float = 0.005,
        max_backoff_seconds: float = 0.2,
        topic: str = TWIN_UPDATED,
    ) -> None:
        self.cipher = cipher
        self.outbox = outbox_writer
        self.default_time_zone = default_time_zone
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._topic = topic
        #: Optimistic-concurrency races lost since start (for tests and metrics).
        self.lost_races = 0

    # -- reads -------------------------------------------------------------------------------

    async def get(self, session: AsyncSession, patient: str) -> TwinRecord | None:
        """The twin of ``patient``, or None."""
        rows = await self.get_many(session, [patient])
        return rows.get(patient)

    async def get_many(self, session: AsyncSession, patients: Sequence[str]) -> dict[str, TwinRecord]:
        """The twins of ``patients`` that exist, by pseudonym."""
        if not patients:
            return {}
        result = await session.execute(sa.select(twins).where(twins.c.patient.in_(list(patients))))
        return {row.patient: self.record_of(row) for row in result}

    async def versions(
        self, session: AsyncSession, patient: str, *, before: int | None, limit: int
    ) -> list[tuple[int, datetime, list[str], str]]:
        """``(version, committed_at, sections, cause_event_id)`` newest first, below ``before``."""
        query = sa.select(
            twin_versions.c.version,
            twin_versions.c.committed_at,
            twin_versions.c.changed_sections,
            twin_versions.c.cause_event_id,
        ).where(twin_versions.c.patient == patient)
        if before is not None:
            query = query.where(twin_versions.c.version < before)
        rows = await session.execute(query.order_by(twin_versions.c.version.desc()).limit(limit))
        return [
            (int(r.version), utc(r.committed_at), list(json.loads(r.changed_sections)), r.cause_event_id)
            for r in rows
        ]

    async def version_caused_by(self, session: AsyncSession, patient: str, cause_event_id: str) -> int | None:
        """The version written for the input ``cause_event_id``, if any (the first one)."""
        version = await session.scalar(
            sa.select(sa.func.min(twin_versions.c.version)).where(
                twin_versions.c.patient == patient, twin_versions.c.cause_event_id == cause_event_id
            )
        )
        return None if version is None else int(version)

    def record_of(self, row: Any) -> TwinRecord:
        """The twin of a ``twins`` row (decrypts its state)."""
        plaintext = self.cipher.decrypt(row.state, context=row.patient.encode())
        return TwinRecord(
            patient=row.patient,
            version=int(row.version),
            created_at=utc(row.created_at),
            updated_at=utc(row.updated_at),
            time_zone=row.time_zone,
            state=decode_state(plaintext),
        )

    # -- writes ------------------------------------------------------------------------------

    async def apply(
        self,
        session: AsyncSession,
        patient: str,
        mutation: Mutation,
        *,
        cause_event_id: str,
        expected_version: int | None = None,
        only_if_absent: bool = False,
    ) -> Applied:
        """Apply ``mutation`` as a new version of ``patient``'s twin, in ``session``'s transaction.

        ``expected_version`` (0 for "the twin must not exist yet") makes a stale caller fail with
        :class:`ConflictError` instead of being retried; ``only_if_absent`` applies the mutation
        only when it creates the twin (an existing twin is returned unchanged). Raises
        :class:`ConflictError` (retryable) when ``max_attempts`` races are lost. The mutation may
        run more than once, each time on a freshly read state, and must not have other effects.
        """
        for attempt in range(1, self._max_attempts + 1):
            row = (await session.execute(sa.select(twins).where(twins.c.patient == patient))).first()
            if row is None:
                if expected_version not in (None, 0):
                    raise ConflictError(
                        "the twin does not exist; expected_version must be 0 or absent",
                        field="expected_version",
                    )
                applied = await self._create(session, patient, mutation, cause_event_id)
            else:
                if expected_version is not None and int(row.version) != expected_version:
                    raise ConflictError(
                        "the twin is not at the expected version; read it again", field="expected_version"
                    )
                if only_if_absent:
                    current = self.record_of(row)
                    return Applied(twin=current, previous_version=current.version, changed=False)
                applied = await self._update(session, self.record_of(row), mutation, cause_event_id)
            if applied is not None:
                return applied
            self.lost_races += 1
            if expected_version is not None:
                raise ConflictError("the twin changed concurrently; read it again", field="expected_version")
            if row is not None:
                await asyncio.sleep(
                    random.uniform(0, min(self._max_backoff, self._backoff * 2 ** (attempt - 1)))
                )
        raise ConflictError(
            f"the twin changed concurrently {self._max_attempts} times; retry the request",
            field="patient",
        )

    async def _create(
        self, session: AsyncSession, patient: str, mutation: Mutation, cause_event_id: str
    ) -> Applied | None:
        state = TwinState()
        change = mutation(state)
        if change is None:
            return Applied(twin=None, previous_version=0, changed=False)
        now = datetime.now(UTC)
        blob = self._encrypt_state(patient, state)
        statement = _insert(session)(twins).values(
            patient=patient,
            version=1,
            created_at=now,
            updated_at=now,
            time_zone=self.default_time_zone,
            state=blob,
            key_id=EnvelopeCipher.key_id_of(blob),
        )
        result = await session.execute(statement.on_conflict_do_nothing(index_elements=["patient"]))
        if _rowcount(result) != 1:
            return None
        record = TwinRecord(patient, 1, now, now, self.default_time_zone, state)
        await self._record_version(session, record, 0, change, cause_event_id)
        return Applied(twin=record, previous_version=0, changed=True, change=change)

    async def _update(
        self, session: AsyncSession, current: TwinRecord, mutation: Mutation, cause_event_id: str
    ) -> Applied | None:
        state = current.state
        change = mutation(state)
        if change is None:
            return Applied(twin=current, previous_version=current.version, changed=False)
        now = datetime.now(UTC)
        blob = self._encrypt_state(current.patient, state)
        result = await session.execute(
            twins.update()
            .where(twins.c.patient == current.patient, twins.c.version == current.version)
            .values(
                version=current.version + 1,
                updated_at=now,
                state=blob,
                key_id=EnvelopeCipher.key_id_of(blob),
            )
        )
        if _rowcount(result) != 1:
            return None
        record = TwinRecord(
            current.patient, current.version + 1, current.created_at, now, current.time_zone, state
        )
        await self._record_version(session, record, current.version, change, cause_event_id)
        return Applied(twin=record, previous_version=current.version, changed=True, change=change)

    def _encrypt_state(self, patient: str, state: TwinState) -> bytes:
        return self.cipher.encrypt(encode_state(state), context=patient.encode())

    async def _record_version(
        self, session: AsyncSession, twin: TwinRecord, previous: int, change: Change, cause_event_id: str
    ) -> None:
        blob = self.cipher.encrypt_json(
            {"sections": list(change.sections), "detail": change.detail}, context=twin.patient.encode()
        )
        await session.execute(
            twin_versions.insert().values(
                patient=twin.patient,
                version=twin.version,
                committed_at=twin.updated_at,
                changed_sections=json.dumps(list(change.sections)),
                cause_event_id=cause_event_id,
                change=blob,
                key_id=EnvelopeCipher.key_id_of(blob),
            )
        )
        event = events_pb2.TwinUpdated(
            event_id=str(uuid.uuid5(TWIN_UPDATED_NAMESPACE, f"{twin.patient}:{twin.version}")),
            patient=common_pb2.PatientRef(pseudonym=twin.patient),
            version=twin.version,
            previous_version=previous,
            changed_sections=list(change.sections),
            cause_event_id=cause_event_id,
        )
        event.occurred_at.FromDatetime(twin.updated_at)
        await self.outbox.enqueue(session, self._topic, twin.patient, event)


def _insert(session: AsyncSession) -> Callable[[sa.Table], Any]:
    """The dialect's INSERT (PostgreSQL and SQLite both support ``ON CONFLICT DO NOTHING``)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"the twin store supports PostgreSQL and SQLite, not {name}")


def insert_ignoring_duplicates(session: AsyncSession, table: sa.Table, **values: Any) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` of one row (rowcount 0 when it already existed)."""
    return _insert(session)(table).values(**values).on_conflict_do_nothing()


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
