"""Every patient-data access is on the hash-chained audit log, and tampering with it shows."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from novamind.core.audit import AUDIT_METADATA, audit_log, verify_chain
from novamind.core.db import make_engine
from novamind.gateway.adapters.migrate import downgrade_to, upgrade_to_head
from novamind.gateway.config import GatewaySettings

from .conftest import (
    GatewayClient,
    GatewayFactory,
    Tokens,
    create_twin,
    in_session_loop,
    new_identifier,
    pseudonym,
)

TWIN = "query($id: ID!) { patient(id: $id) { twin { version } } }"
FORECAST = "query($id: ID!) { patient(id: $id) { forecast { forecasts { target } } } }"


@in_session_loop
async def test_a_sequence_of_requests_leaves_one_chained_record_per_access(
    gateway: GatewayClient, tokens: Tokens
) -> None:
    assigned, unassigned = new_identifier(), new_identifier()
    service = tokens.service()
    await create_twin(gateway, service, assigned)
    await create_twin(gateway, service, unassigned)
    clinician = tokens.clinician([assigned], subject="dr-audit")

    request_ids = []
    for token, query, patient in [
        (clinician, TWIN, assigned),
        (clinician, TWIN, unassigned),
        (clinician, FORECAST, assigned),
        (None, TWIN, pseudonym(assigned)),
        (tokens.ops(), "{ serviceHealth { service } }", None),
    ]:
        response = await gateway.post(query, token=token, variables={"id": patient} if patient else {})
        request_ids.append(response.headers["x-request-id"])

    engine = gateway.gateway.services.audit.engine
    async with engine.connect() as connection:
        rows = (await connection.execute(sa.select(audit_log).order_by(audit_log.c.seq))).all()
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert [(r.actor, r.roles, r.action, r.patient, r.outcome, r.detail) for r in rows] == [
        ("service-1", '["service"]', "submit_symptom_report", pseudonym(assigned), "allowed", ""),
        ("service-1", '["service"]', "submit_symptom_report", pseudonym(unassigned), "allowed", ""),
        ("dr-audit", '["clinician"]', "read_twin", pseudonym(assigned), "allowed", ""),
        (
            "dr-audit",
            '["clinician"]',
            "read_twin",
            pseudonym(unassigned),
            "denied",
            "role clinician may read_twin only for assigned patients",
        ),
        # One report is too little history: the forecast section fails, and the record says how.
        ("dr-audit", '["clinician"]', "read_forecast", pseudonym(assigned), "error", "VALIDATION_ERROR"),
        (
            "anonymous",
            '["anonymous"]',
            "read_twin",
            pseudonym(assigned),
            "denied",
            "role anonymous may not read_twin",
        ),
    ]
    assert [r.request_id for r in rows[2:]] == request_ids[:4]  # service health is not patient data
    assert all(r.prev_hash == p.hash for p, r in itertools.pairwise(rows))

    report = await verify_chain(engine)
    assert report.ok and report.records == 6

    # Rewrite a denial as allowed: the record's hash no longer matches.
    async with engine.begin() as connection:
        await connection.execute(sa.update(audit_log).where(audit_log.c.seq == 4).values(outcome="allowed"))
    report = await verify_chain(engine)
    assert not report.ok and report.first_bad_seq == 4
    assert "seq 4: hash mismatch" in report.problems[0]

    # The operator's command sees it too.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "novamind.core.audit_cli",
        "verify",
        "--database-url",
        gateway.settings.sqlalchemy_url("gateway"),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await process.communicate()
    assert process.returncode == 1, output
    assert b"first bad seq 4" in output


@in_session_loop
async def test_deleting_the_newest_records_is_detected(gateway: GatewayClient, tokens: Tokens) -> None:
    patient = new_identifier()
    await create_twin(gateway, tokens.service(), patient)
    for _ in range(3):
        await gateway.query(TWIN, token=tokens.service(), variables={"id": patient})
    engine = gateway.gateway.services.audit.engine
    assert (await verify_chain(engine)).ok
    async with engine.begin() as connection:
        await connection.execute(sa.delete(audit_log).where(audit_log.c.seq >= 3))
    report = await verify_chain(engine)
    assert not report.ok and report.first_bad_seq == 3


def _schema_differences(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), AUDIT_METADATA))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url"))


async def test_migrations_create_exactly_the_audit_tables(database_url: str) -> None:
    url = database_url
    settings = GatewaySettings(database_url=url)
    await upgrade_to_head(settings)
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_schema_differences) == []
        await downgrade_to(settings, "base")
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: sa.inspect(c).get_table_names())
        assert "audit_log" not in tables and "audit_head" not in tables
    finally:
        await engine.dispose()


async def test_the_migrate_command_prepares_the_configured_database(sqlite_url: str) -> None:
    env = {**os.environ, "NOVAMIND_DATABASE_URL": sqlite_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "novamind.gateway", "migrate", env=env
    )
    assert await process.wait() == 0
    engine = make_engine(sqlite_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: sa.inspect(c).get_table_names())
        assert {"audit_log", "audit_head", "alembic_version"} <= set(tables)
    finally:
        await engine.dispose()


async def test_the_audit_log_lives_in_postgresql_when_configured(
    gateway_factory: GatewayFactory, tokens: Tokens, postgres_url: str
) -> None:
    async with gateway_factory(database_url=postgres_url) as gateway:
        patient = pseudonym(new_identifier())
        clinician = tokens.clinician([patient], subject="dr-pg")
        await asyncio.gather(
            *(
                gateway.query(TWIN, token=token, variables={"id": patient})
                for token in (clinician, None, clinician)
            )
        )
        engine = gateway.gateway.services.audit.engine
        assert engine.dialect.name == "postgresql"
        async with engine.connect() as connection:
            rows = (await connection.execute(sa.select(audit_log.c.actor, audit_log.c.outcome))).all()
        # The twin is not running: the clinician's reads are errors, the anonymous one a denial.
        assert sorted(tuple(r) for r in rows) == [
            ("anonymous", "denied"),
            ("dr-pg", "error"),
            ("dr-pg", "error"),
        ]
        assert (await verify_chain(engine)).ok
        async with engine.begin() as connection:
            await connection.execute(
                sa.update(audit_log).where(audit_log.c.seq == 2).values(actor="someone-else")
            )
        report = await verify_chain(engine)
        assert not report.ok and report.first_bad_seq == 2
