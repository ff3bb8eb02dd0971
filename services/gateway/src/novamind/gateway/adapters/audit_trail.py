"""The gateway's audit trail: one hash-chained audit record per patient-data access.

Records go to :class:`novamind.core.audit.AuditLog` on the gateway's own database (SQLite
``var/gateway.db`` by default, PostgreSQL when configured; ``novamind-gateway migrate`` creates
the tables). ``record`` returns once the record is durable, so no answer leaves the gateway
before its access is on the log.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from novamind.core.audit import AuditEvent, AuditLog
from novamind.core.rpc import Principal
from novamind.gateway.domain.policy import Operation, policy_roles

#: Actor of records about callers without a verified token.
ANONYMOUS_ACTOR = "anonymous"


class AuditTrail:
    """Writes the audit records of the gateway's operations."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 256) -> None:
        self.engine = engine
        self._log = AuditLog(engine, max_batch=max_batch)

    async def start(self) -> None:
        await self._log.start()

    async def close(self) -> None:
        """Flush pending records and release the database."""
        try:
            await self._log.close()
        finally:
            await self.engine.dispose()

    async def ping(self) -> None:
        """Raises when the audit database is unreachable (readiness)."""
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def record(
        self,
        caller: Principal | None,
        operation: Operation,
        patient: str | None,
        outcome: str,
        *,
        request_id: str | None,
        detail: str = "",
    ) -> int:
        """Append one record; ``outcome`` is ``allowed``, ``denied`` or ``error``. Returns its seq."""
        event = AuditEvent(
            actor=caller.subject if caller is not None else ANONYMOUS_ACTOR,
            roles=tuple(role.value for role in policy_roles(caller)),
            action=operation.value,
            patient=patient,
            outcome=outcome,
            request_id=request_id,
            detail=detail,
        )
        return await self._log.record(event)
