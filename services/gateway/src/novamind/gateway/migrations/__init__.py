"""Alembic migrations of the gateway's database (the audit log)."""
