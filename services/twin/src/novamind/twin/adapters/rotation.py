"""Key rotation: re-wrap every stored blob whose data key is wrapped by a key other than the active one.

Only the few bytes of each wrapped data key change (:meth:`EnvelopeCipher.rewrap`); the data
ciphertext stays as it is. Rows are processed in batches of ``batch_size`` per transaction, each
update guarded by the old key id (and, for twins, the version), so a concurrent writer is never
overwritten and running the rotation again only touches what is still left. Once it reports
nothing left, the old key can be removed from ``NOVAMIND_ENCRYPTION_KEYS``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from novamind.core.crypto import EnvelopeCipher
from novamind.twin.adapters.tables import ENCRYPTED_COLUMNS, twins


async def rotate_keys(
    engine: AsyncEngine, cipher: EnvelopeCipher, *, batch_size: int = 500
) -> dict[str, int]:
    """Re-wrap every blob not under the active key; blobs re-wrapped per table.

    Raises :class:`~novamind.core.crypto.UnknownKeyError` when a blob's key is no longer configured.
    """
    active = cipher.keyring.active_key_id
    counts: dict[str, int] = {}
    for table, column, primary_key in ENCRYPTED_COLUMNS:
        blob = table.c[column]
        keys = [table.c[name] for name in primary_key]
        guard = [table.c.version] if table is twins else []
        total = 0
        while True:
            async with engine.begin() as conn:
                rows = (
                    await conn.execute(
                        sa.select(*keys, *guard, blob, table.c.key_id)
                        .where(table.c.key_id != active)
                        .order_by(*keys)
                        .limit(batch_size)
                    )
                ).all()
                for row in rows:
                    rewrapped = cipher.rewrap(row._mapping[column])
                    condition = [key == row._mapping[key.name] for key in keys + guard]
                    await conn.execute(
                        table.update()
                        .where(*condition, table.c.key_id == row.key_id)
                        .values({column: rewrapped, "key_id": EnvelopeCipher.key_id_of(rewrapped)})
                    )
            total += len(rows)
            if len(rows) < batch_size:
                break
        counts[table.name] = total
    return counts
