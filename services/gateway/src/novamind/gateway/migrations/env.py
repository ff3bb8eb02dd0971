"""Alembic environment: migrations run on the connection handed over by ``migrate.py``."""

from __future__ import annotations

from alembic import context

from novamind.core.audit import AUDIT_METADATA

target_metadata = AUDIT_METADATA

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `novamind-gateway migrate`, which provides the connection")
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
