"""Alembic environment: migrations run on the connection handed over by ``migrate.py``.

``migrate.py`` also hands over the envelope cipher (``config.attributes["cipher"]``) for
migrations that encrypt existing rows.
"""

from __future__ import annotations

from alembic import context

from novamind.core.kafka import LEDGER_METADATA
from novamind.twin.adapters.tables import metadata

target_metadata = [metadata, LEDGER_METADATA]

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `novamind-twin migrate`, which provides the connection")
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
