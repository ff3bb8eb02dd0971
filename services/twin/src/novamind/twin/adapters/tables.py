"""The twin's SQL schema (SQLAlchemy Core). Changes are Alembic migrations, never made at start.

PHI is never stored in plaintext: the twin state, version changes, reading values, analyses and
outbox payloads are envelope-encrypted blobs (``novamind.core.crypto``) bound to the patient
pseudonym, each next to the id of the key that wraps its data key (``key_id``), so
``novamind-twin rotate-keys`` finds what still needs re-wrapping. Pseudonyms, versions, times,
schema names and section names stay in plaintext for lookups and range queries.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_PATIENT = sa.String(64)
_KEY_ID = sa.String(255)
_EVENT_ID = sa.String(255)

#: One row per patient: the current version and the encrypted state.
twins = sa.Table(
    "twins",
    metadata,
    sa.Column("patient", _PATIENT, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("time_zone", sa.String(64), nullable=False),
    sa.Column("state", sa.LargeBinary, nullable=False),
    sa.Column("key_id", _KEY_ID, nullable=False),
)

#: One row per committed version: what changed, why, and the encrypted change itself.
twin_versions = sa.Table(
    "twin_versions",
    metadata,
    sa.Column("patient", _PATIENT, primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
    #: JSON list of section names.
    sa.Column("changed_sections", sa.Text, nullable=False),
    sa.Column("cause_event_id", _EVENT_ID, nullable=False),
    sa.Column("change", sa.LargeBinary, nullable=False),
    sa.Column("key_id", _KEY_ID, nullable=False),
    sa.Index("ix_twin_versions_patient_cause", "patient", "cause_event_id"),
)

#: Device readings; the value (and unit) is encrypted, the times stay plaintext for range queries.
readings = sa.Table(
    "readings",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("event_id", _EVENT_ID, nullable=False, unique=True),
    sa.Column("patient", _PATIENT, nullable=False),
    sa.Column("schema", sa.String(64), nullable=False),
    sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("key_id", _KEY_ID, nullable=False),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_readings_patient_start", "patient", "start_at"),
)

#: Per patient, the newest local day the minute-level series has completed.
reading_progress = sa.Table(
    "reading_progress",
    metadata,
    sa.Column("patient", _PATIENT, primary_key=True),
    sa.Column("newest_complete_day", sa.Date, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

#: Every completed (or failed) actigraphy analysis received; the result is encrypted.
analyses = sa.Table(
    "analyses",
    metadata,
    sa.Column("event_id", _EVENT_ID, primary_key=True),
    sa.Column("patient", _PATIENT, nullable=False),
    sa.Column("request_event_id", _EVENT_ID, nullable=False),
    sa.Column("analysis_id", sa.String(255), nullable=False),
    sa.Column("week_start", sa.DateTime(timezone=True), nullable=True),
    sa.Column("week_end", sa.DateTime(timezone=True), nullable=True),
    #: "completed" or "failed".
    sa.Column("status", sa.String(16), nullable=False),
    #: ErrorDetail.code of a failed analysis (no PHI).
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("key_id", _KEY_ID, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_analyses_patient_week_end", "patient", "week_end"),
)

#: Every analysis request the twin made; the primary key makes a repeated request a no-op.
analysis_requests = sa.Table(
    "analysis_requests",
    metadata,
    sa.Column("event_id", _EVENT_ID, primary_key=True),
    sa.Column("patient", _PATIENT, nullable=False),
    sa.Column("week_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("week_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("minutes_present", sa.Integer, nullable=False),
    #: "day_completed" or "api".
    sa.Column("origin", sa.String(32), nullable=False),
    sa.Column("cause_event_id", _EVENT_ID, nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_analysis_requests_patient_week", "patient", "week_start"),
)

#: Events written in the same transaction as the change they announce, relayed to Kafka.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("event_id", _EVENT_ID, nullable=False, unique=True),
    sa.Column("topic", sa.String(255), nullable=False),
    #: The record key: the patient pseudonym.
    sa.Column("key", _PATIENT, nullable=False),
    sa.Column("event_type", sa.String(255), nullable=False),
    #: The encrypted protobuf JSON value.
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("key_id", _KEY_ID, nullable=False),
    #: JSON object of extra text headers (the trace context of the change).
    sa.Column("headers", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_outbox_published_id", "published_at", "id"),
)

#: Tables holding encrypted blobs: (table, blob column, primary-key columns).
ENCRYPTED_COLUMNS: tuple[tuple[sa.Table, str, tuple[str, ...]], ...] = (
    (twins, "state", ("patient",)),
    (twin_versions, "change", ("patient", "version")),
    (readings, "payload", ("id",)),
    (analyses, "payload", ("event_id",)),
    (outbox, "payload", ("id",)),
)
