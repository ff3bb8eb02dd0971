"""Versioned twins with history, encrypted reading values, analyses, analysis requests, outbox.

Existing readings are encrypted in place (value and unit become the encrypted ``payload``; the
plaintext columns are dropped), in batches, with the cipher ``novamind-twin migrate`` provides.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BATCH = 1000

_readings = sa.table(
    "readings",
    sa.column("id", sa.Integer),
    sa.column("patient", sa.String),
    sa.column("value", sa.Float),
    sa.column("unit", sa.String),
    sa.column("payload", sa.LargeBinary),
    sa.column("key_id", sa.String),
)


def _cipher() -> Any:
    cipher = context.config.attributes.get("cipher")
    if cipher is None:
        raise RuntimeError("existing readings need the cipher: run `novamind-twin migrate`")
    return cipher


def upgrade() -> None:
    op.create_table(
        "twins",
        sa.Column("patient", sa.String(64), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String(255), nullable=False),
    )
    op.create_table(
        "twin_versions",
        sa.Column("patient", sa.String(64), primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_sections", sa.Text, nullable=False),
        sa.Column("cause_event_id", sa.String(255), nullable=False),
        sa.Column("change", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String(255), nullable=False),
    )
    op.create_index("ix_twin_versions_patient_cause", "twin_versions", ["patient", "cause_event_id"])
    op.create_table(
        "reading_progress",
        sa.Column("patient", sa.String(64), primary_key=True),
        sa.Column("newest_complete_day", sa.Date, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "analyses",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("request_event_id", sa.String(255), nullable=False),
        sa.Column("analysis_id", sa.String(255), nullable=False),
        sa.Column("week_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("week_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String(255), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_analyses_patient_week_end", "analyses", ["patient", "week_end"])
    op.create_table(
        "analysis_requests",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("week_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("week_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("minutes_present", sa.Integer, nullable=False),
        sa.Column("origin", sa.String(32), nullable=False),
        sa.Column("cause_event_id", sa.String(255), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_analysis_requests_patient_week", "analysis_requests", ["patient", "week_start"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(255), nullable=False, unique=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String(255), nullable=False),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_outbox_published_id", "outbox", ["published_at", "id"])

    with op.batch_alter_table("readings") as batch:
        batch.add_column(sa.Column("payload", sa.LargeBinary, nullable=True))
        batch.add_column(sa.Column("key_id", sa.String(255), nullable=True))
    _encrypt_existing_readings()
    with op.batch_alter_table("readings") as batch:
        batch.alter_column("payload", existing_type=sa.LargeBinary, nullable=False)
        batch.alter_column("key_id", existing_type=sa.String(255), nullable=False)
        batch.drop_column("value")
        batch.drop_column("unit")


def _encrypt_existing_readings() -> None:
    bind = op.get_bind()
    update = (
        _readings.update()
        .where(_readings.c.id == sa.bindparam("row_id"))
        .values(payload=sa.bindparam("new_payload"), key_id=sa.bindparam("new_key_id"))
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(_readings.c.id, _readings.c.patient, _readings.c.value, _readings.c.unit)
            .where(_readings.c.payload.is_(None), _readings.c.id > last)
            .order_by(_readings.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        cipher = _cipher()
        changes = []
        for row in rows:
            blob = cipher.encrypt_json([row.value, row.unit], context=row.patient.encode())
            changes.append({"row_id": row.id, "new_payload": blob, "new_key_id": cipher.key_id_of(blob)})
        bind.execute(update, changes)
        last = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table("readings") as batch:
        batch.add_column(sa.Column("value", sa.Float, nullable=True))
        batch.add_column(sa.Column("unit", sa.String(32), nullable=True))
    bind = op.get_bind()
    update = (
        _readings.update()
        .where(_readings.c.id == sa.bindparam("row_id"))
        .values(value=sa.bindparam("new_value"), unit=sa.bindparam("new_unit"))
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(_readings.c.id, _readings.c.patient, _readings.c.payload)
            .where(_readings.c.id > last)
            .order_by(_readings.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        cipher = _cipher()
        changes = []
        for row in rows:
            value, unit = cipher.decrypt_json(row.payload, context=row.patient.encode())[:2]
            changes.append({"row_id": row.id, "new_value": value, "new_unit": unit})
        bind.execute(update, changes)
        last = rows[-1].id
    with op.batch_alter_table("readings") as batch:
        batch.drop_column("payload")
        batch.drop_column("key_id")
    op.drop_index("ix_outbox_published_id", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_analysis_requests_patient_week", table_name="analysis_requests")
    op.drop_table("analysis_requests")
    op.drop_index("ix_analyses_patient_week_end", table_name="analyses")
    op.drop_table("analyses")
    op.drop_table("reading_progress")
    op.drop_index("ix_twin_versions_patient_cause", table_name="twin_versions")
    op.drop_table("twin_versions")
    op.drop_table("twins")
