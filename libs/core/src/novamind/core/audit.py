"""The append-only, hash-chained audit log of patient-data access.

Every record has a gap-free sequence number and ``hash = SHA-256(canonical(fields) + prev_hash)``,
where ``prev_hash`` is the previous record's hash (64 zeros before the first). The single row of
``audit_head`` holds the last seq and hash and is updated in the same transaction as the append,
so :func:`verify_chain` detects a modified field (hash mismatch), a deleted or reordered record
(seq gap or prev_hash mismatch) and deleted newest records (head ahead of the log).

:class:`AuditLog` batches concurrent :meth:`AuditLog.record` calls through one writer task (one
transaction per batch); a call returns once its record is committed. Several processes may
append to one database: each append locks the head row first (``SELECT ... FOR UPDATE`` on
PostgreSQL; on SQLite a write to the head takes the database's write lock), so the chain stays
one chain.

The tables are declared in :data:`AUDIT_METADATA`; services create them in their Alembic
migrations. Records hold no PHI: patients appear only as pseudonyms and ``detail`` carries codes
and field names.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from novamind.core.errors import DataProcessingError, NovamindError, ServiceUnavailableError, ValidationError
from novamind.core.privacy import is_pseudonym
from novamind.core.rpc import Principal

log = logging.getLogger(__name__)

#: ``prev_hash`` of the first record.
GENESIS_HASH = "0" * 64
#: The outcomes a record may have.
OUTCOMES = frozenset({"allowed", "denied", "error"})
_HASH_DOMAIN = "novamind.audit.v1"
_HEAD_ID = 1
_WRITE_ATTEMPTS = 5
_MAX_PROBLEMS = 100

AUDIT_METADATA = sa.MetaData()

audit_log = sa.Table(
    "audit_log",
    AUDIT_METADATA,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("roles", sa.Text, nullable=False),  # canonical JSON array
    sa.Column("action", sa.String(128), nullable=False),
    sa.Column("patient", sa.String(32), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("request_id", sa.String(128), nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_log_patient", "patient"),
)

audit_head = sa.Table(
    "audit_head",
    AUDIT_METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),
)


@dataclass(frozen=True)
class AuditEvent:
    """One access to record: who (``actor``, ``roles``) did what (``action``) to whom (``patient``)."""

    actor: str
    roles: tuple[str, ...]
    action: str
    patient: str | None
    outcome: str
    request_id: str | None = None
    detail: str = ""

    @classmethod
    def for_principal(
        cls,
        principal: Principal,
        *,
        action: str,
        patient: str | None,
        outcome: str,
        request_id: str | None = None,
        detail: str = "",
    ) -> AuditEvent:
        """The event of ``principal`` doing ``action`` (roles sorted for a stable record)."""
        return cls(
            actor=principal.subject,
            roles=tuple(sorted(str(role) for role in principal.roles)),
            action=action,
            patient=patient,
            outcome=outcome,
            request_id=request_id,
            detail=detail,
        )


@dataclass
class ChainReport:
    """What :func:`verify_chain` found.

    ``first_bad_seq`` is the lowest seq at which the chain is broken (``None`` when intact, or
    when the only problem is a missing head row); ``problems`` describes each break.
    """

    ok: bool
    records: int
    first_bad_seq: int | None
    problems: list[str] = field(default_factory=list)


@dataclass
class _Pending:
    event: AuditEvent
    occurred_at: datetime
    future: asyncio.Future[int]


class AuditLog:
    """Appends :class:`AuditEvent` records to the hash chain, batching concurrent calls.

    ``max_batch`` bounds the records written in one transaction. :meth:`record` starts the writer
    on first use if :meth:`start` was not called; :meth:`close` writes what is queued and stops.
    """

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 256) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._engine = engine
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        """Start the writer task (idempotent)."""
        if self._closed:
            raise ServiceUnavailableError("audit log is closed")
        if self._writer is None:
            self._queue = asyncio.Queue()
            self._writer = asyncio.create_task(self._run(), name="novamind-audit-writer")

    async def close(self) -> None:
        """Write every queued record, then stop the writer. Later :meth:`record` calls fail."""
        self._closed = True
        if self._writer is None or self._queue is None:
            return
        self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None

    async def record(self, event: AuditEvent) -> int:
        """Append ``event``; returns its seq once the record is committed.

        Raises :class:`ValidationError` for a malformed event (e.g. a patient that is not a
        pseudonym) and :class:`ServiceUnavailableError` when the log is closed or the write fails.
        """
        _validate(event)
        if self._closed:
            raise ServiceUnavailableError("audit log is closed")
        await self.start()
        assert self._queue is not None and self._writer is not None
        if self._writer.done():
            raise ServiceUnavailableError("audit log writer stopped; the access was not recorded")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(event, datetime.now(UTC), future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._write(batch)

    async def _write(self, batch: list[_Pending]) -> None:
        error: BaseException | None = None
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                seqs = await self._append(batch)
            except (IntegrityError, DBAPIError, OSError) as exc:
                # A concurrent first append, a lock timeout or a dropped connection: try again.
                error = exc
                await asyncio.sleep(0.05 * 2**attempt)
                continue
            except Exception as exc:
                # Not transient (a damaged head row, a bug): fail this batch, keep the writer alive.
                error = exc
                break
            for pending, seq in zip(batch, seqs, strict=True):
                if not pending.future.done():
                    pending.future.set_result(seq)
            return
        log.error("audit log write failed (%s)", type(error).__name__)
        failure = (
            error
            if isinstance(error, NovamindError)
            else ServiceUnavailableError("audit log write failed; the access was not recorded")
        )
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(failure)

    async def _append(self, batch: list[_Pending]) -> list[int]:
        async with self._engine.begin() as conn:
            seq, prev_hash = await _lock_head(conn)
            rows: list[dict[str, Any]] = []
            for pending in batch:
                seq += 1
                row = _row(seq, pending.occurred_at, pending.event, prev_hash)
                rows.append(row)
                prev_hash = row["hash"]
            await conn.execute(sa.insert(audit_log), rows)
            await conn.execute(
                sa.update(audit_head).where(audit_head.c.id == _HEAD_ID).values(seq=seq, hash=prev_hash)
            )
        return [row["seq"] for row in rows]


async def create_audit_tables(engine: AsyncEngine) -> None:
    """Create ``audit_log`` and ``audit_head`` if missing (tests and local tools; services use Alembic)."""
    async with engine.begin() as conn:
        await conn.run_sync(AUDIT_METADATA.create_all)


async def verify_chain(engine: AsyncEngine, *, page_size: int = 1000) -> ChainReport:
    """Check every record's hash, seq continuity, prev_hash links and the head row.

    Reads the log in pages of ``page_size`` records. Raises SQLAlchemy errors when the tables
    cannot be read.
    """
    problems: list[str] = []
    bad_seqs: list[int] = []

    def flag(seq: int | None, problem: str) -> None:
        if seq is not None:
            bad_seqs.append(seq)
        problems.append(problem)

    records = 0
    expected_seq = 1
    prev_hash = GENESIS_HASH
    async with engine.connect() as conn:
        head = (
            await conn.execute(
                sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == _HEAD_ID)
            )
        ).first()
        after = 0
        while True:
            page = (
                await conn.execute(
                    sa.select(audit_log)
                    .where(audit_log.c.seq > after)
                    .order_by(audit_log.c.seq)
                    .limit(page_size)
                )
            ).all()
            if not page:
                break
            for row in page:
                records += 1
                seq = int(row.seq)
                if seq != expected_seq:
                    missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
                    flag(
                        expected_seq,
                        f"seq {missing}: record(s) missing (seq {seq} follows {expected_seq - 1})",
                    )
                elif row.prev_hash != prev_hash:
                    flag(seq, f"seq {seq}: prev_hash does not match the hash of seq {seq - 1}")
                recomputed = _hash(
                    seq,
                    row.occurred_at,
                    row.actor,
                    row.roles,
                    row.action,
                    row.patient,
                    row.outcome,
                    row.request_id,
                    row.detail,
                    row.prev_hash,
                )
                if recomputed != row.hash:
                    flag(seq, f"seq {seq}: hash mismatch (the record was modified)")
                prev_hash = row.hash
                expected_seq = seq + 1
                after = seq
        last_seq = expected_seq - 1
    if head is None:
        if records:
            flag(None, "audit_head row is missing")
    elif int(head.seq) > last_seq:
        flag(
            last_seq + 1,
            f"seq {last_seq + 1}..{head.seq}: record(s) missing at the end (audit_head is at seq {head.seq})",
        )
    elif int(head.seq) < last_seq:
        flag(
            int(head.seq) + 1, f"seq {head.seq + 1}..{last_seq}: record(s) after audit_head's seq {head.seq}"
        )
    elif head.hash != prev_hash:
        flag(last_seq or None, f"seq {last_seq}: audit_head hash does not match the last record")
    if len(problems) > _MAX_PROBLEMS:
        problems = [*problems[:_MAX_PROBLEMS], f"... and {len(problems) - _MAX_PROBLEMS} more problems"]
    return ChainReport(
        ok=not problems,
        records=records,
        first_bad_seq=min(bad_seqs) if bad_seqs else None,
        problems=problems,
    )


async def _lock_head(conn: AsyncConnection) -> tuple[int, str]:
    """Lock the head row for this transaction; returns (last seq, last hash), creating the head."""
    if conn.dialect.name == "sqlite":
        # A write as the transaction's first statement takes SQLite's write lock (waiting on the
        # busy timeout), so no other writer can append between our read and our insert.
        await conn.execute(
            sa.update(audit_head).where(audit_head.c.id == _HEAD_ID).values(seq=audit_head.c.seq)
        )
    select_head = (
        sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == _HEAD_ID).with_for_update()
    )
    head = (await conn.execute(select_head)).first()
    if head is None and conn.dialect.name == "postgresql":
        # No head row to lock yet: another writer may be creating it with its first records,
        # uncommitted. This lock conflicts with that writer's insert, so it waits for its commit
        # (or makes it wait for ours), and the head is read again with the race settled.
        await conn.execute(sa.text("LOCK TABLE audit_head IN SHARE ROW EXCLUSIVE MODE"))
        head = (await conn.execute(select_head)).first()
    if head is not None:
        return int(head.seq), str(head.hash)
    existing = (await conn.execute(sa.select(sa.func.count()).select_from(audit_log))).scalar_one()
    if existing:
        raise DataProcessingError(
            "audit_head row is missing while audit_log has records; run novamind-audit verify"
        )
    # First append ever; a concurrent first append makes this insert fail and the batch is retried.
    await conn.execute(sa.insert(audit_head).values(id=_HEAD_ID, seq=0, hash=GENESIS_HASH))
    return 0, GENESIS_HASH


def _row(seq: int, occurred_at: datetime, event: AuditEvent, prev_hash: str) -> dict[str, Any]:
    roles = _roles_json(event.roles)
    return {
        "seq": seq,
        "occurred_at": occurred_at,
        "actor": event.actor,
        "roles": roles,
        "action": event.action,
        "patient": event.patient,
        "outcome": event.outcome,
        "request_id": event.request_id,
        "detail": event.detail,
        "prev_hash": prev_hash,
        "hash": _hash(
            seq,
            occurred_at,
            event.actor,
            roles,
            event.action,
            event.patient,
            event.outcome,
            event.request_id,
            event.detail,
            prev_hash,
        ),
    }


def _hash(
    seq: int,
    occurred_at: datetime,
    actor: str,
    roles: str,
    action: str,
    patient: str | None,
    outcome: str,
    request_id: str | None,
    detail: str,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) over the canonical JSON array of every field and ``prev_hash``."""
    canonical = json.dumps(
        [
            _HASH_DOMAIN,
            seq,
            _timestamp(occurred_at),
            actor,
            roles,
            action,
            patient,
            outcome,
            request_id,
            detail,
            prev_hash,
        ],
        ensure_ascii=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _timestamp(value: datetime) -> str:
    # SQLite returns naive datetimes; the log writes UTC only.
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.isoformat(timespec="microseconds")


def _roles_json(roles: Iterable[str]) -> str:
    return json.dumps([str(role) for role in roles], ensure_ascii=True, separators=(",", ":"))


def _validate(event: AuditEvent) -> None:
    if not event.actor or len(event.actor) > 255:
        raise ValidationError("actor must be 1 to 255 characters", field="actor")
    if not event.action or len(event.action) > 128:
        raise ValidationError("action must be 1 to 128 characters", field="action")
    if event.outcome not in OUTCOMES:
        raise ValidationError(f"outcome must be one of {', '.join(sorted(OUTCOMES))}", field="outcome")
    if event.patient is not None and not is_pseudonym(event.patient):
        raise ValidationError("patient must be a pseudonym (pt_ + 20 hex digits)", field="patient")
    if event.request_id is not None and len(event.request_id) > 128:
        raise ValidationError("request_id must be at most 128 characters", field="request_id")
    if not all(isinstance(role, str) for role in event.roles):
        raise ValidationError("roles must be strings", field="roles")


__all__ = [
    "AUDIT_METADATA",
    "GENESIS_HASH",
    "OUTCOMES",
    "AuditEvent",
    "AuditLog",
    "ChainReport",
    "audit_head",
    "audit_log",
    "create_audit_tables",
    "verify_chain",
]
