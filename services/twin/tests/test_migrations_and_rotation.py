"""Migration 0002 encrypts existing readings; ``rotate-keys`` re-wraps every blob to the active key."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from novamind.api.actigraphy.v1 import actigraphy_pb2
from novamind.api.common.v1 import common_pb2
from novamind.api.events.v1 import events_pb2
from novamind.core.crypto import UnknownKeyError
from novamind.core.db import make_engine
from novamind.twin.__main__ import main
from novamind.twin.adapters import store, tables
from novamind.twin.adapters.ingestion import (
    AnalysisCompletedHandler,
    add_symptom_report,
    decode_analysis_completed,
)
from novamind.twin.adapters.migrate import downgrade_to, upgrade_to_head
from novamind.twin.adapters.rotation import rotate_keys
from novamind.twin.config import TwinSettings
from novamind.twin.domain.readings import Reading

from .conftest import build_stores, consumer_record, key_line, new_patient, proto_json
from .test_store import phq9


async def test_upgrading_encrypts_existing_readings_and_downgrading_restores_them(database_url: str) -> None:
    settings = TwinSettings(database_url=database_url)
    await upgrade_to_head(settings, "0001")
    engine = make_engine(database_url)
    patient = new_patient()
    old = sa.table(
        "readings",
        sa.column("event_id", sa.String),
        sa.column("patient", sa.String),
        sa.column("schema", sa.String),
        sa.column("start_at", sa.DateTime(timezone=True)),
        sa.column("value", sa.Float),
        sa.column("unit", sa.String),
        sa.column("ingested_at", sa.DateTime(timezone=True)),
    )
    at = datetime(2026, 6, 1, 8, tzinfo=UTC)
    rows = [
        {
            "event_id": str(uuid.uuid4()),
            "patient": patient,
            "schema": "step-count",
            "start_at": at,
            "value": 1234.5 + i,
            "unit": "steps",
            "ingested_at": at,
        }
        for i in range(3)
    ]
    try:
        async with engine.begin() as conn:
            await conn.execute(old.insert(), rows)
        await upgrade_to_head(settings)
        async with engine.connect() as conn:
            columns = {
                c["name"] for c in await conn.run_sync(lambda c: sa.inspect(c).get_columns("readings"))
            }
        assert {"payload", "key_id"} <= columns and not {"value", "unit"} & columns
        stores = build_stores(settings, engine)
        async with AsyncSession(engine) as session:
            samples = await stores.readings.samples(session, patient, "step-count", at, at.replace(hour=9))
        assert sorted(v for _, v in samples) == [1234.5, 1235.5, 1236.5]
        assert (await store.ingestion_stats(engine, patient)).readings == 3

        await downgrade_to(settings, "0001")
        async with engine.connect() as conn:
            restored = (await conn.execute(sa.select(old.c.value, old.c.unit).order_by(old.c.value))).all()
        assert [tuple(r) for r in restored] == [(1234.5, "steps"), (1235.5, "steps"), (1236.5, "steps")]
        await upgrade_to_head(settings)
    finally:
        await engine.dispose()


async def test_rotation_rewraps_everything_so_the_old_key_can_go(database_url: str) -> None:
    k1, k2 = key_line("k1"), key_line("k2")
    before = TwinSettings(database_url=database_url, encryption_keys=k1, encryption_active_key="k1")
    await upgrade_to_head(before)
    engine = make_engine(database_url)
    patient = new_patient()
    try:
        old = build_stores(before, engine)
        async with AsyncSession(engine) as session, session.begin():
            await old.twins.apply(
                session, patient, add_symptom_report(phq9("r1", [2] * 9)), cause_event_id="c1"
            )
            await old.readings.add(
                session,
                Reading(
                    str(uuid.uuid4()),
                    patient,
                    "step-count",
                    datetime(2026, 6, 1, tzinfo=UTC),
                    None,
                    4321.0,
                    "steps",
                ),
            )
        completed = events_pb2.ActigraphyAnalysisCompleted(
            event_id=str(uuid.uuid4()),
            patient=common_pb2.PatientRef(pseudonym=patient),
            request_event_id="req",
            analysis_id="a1",
            week=common_pb2.TimeInterval(start={"seconds": 1_772_409_600}, end={"seconds": 1_773_014_400}),
            sleep=actigraphy_pb2.SleepMetrics(),
        )
        event = decode_analysis_completed(
            consumer_record(proto_json(completed), patient.encode(), topic="actigraphy.analysis.completed.v1")
        )
        async with AsyncSession(engine) as session, session.begin():
            await AnalysisCompletedHandler(old.twins, old.cipher)(event, session)

        only_new_key = TwinSettings(database_url=database_url, encryption_keys=k2, encryption_active_key="k2")
        with pytest.raises(UnknownKeyError):
            async with AsyncSession(engine) as session:
                await build_stores(only_new_key, engine).twins.get(session, patient)

        rotating = TwinSettings(
            database_url=database_url, encryption_keys=f"{k1},{k2}", encryption_active_key="k2"
        )
        counts = await rotate_keys(engine, build_stores(rotating, engine).cipher, batch_size=2)
        assert counts == {"twins": 1, "twin_versions": 2, "readings": 1, "analyses": 1, "outbox": 2}
        assert sum((await rotate_keys(engine, build_stores(rotating, engine).cipher)).values()) == 0

        after = build_stores(only_new_key, engine)
        async with engine.connect() as conn:
            for table, column, _ in tables.ENCRYPTED_COLUMNS:
                key_ids = set((await conn.execute(sa.select(table.c.key_id))).scalars())
                assert key_ids <= {"k2"}, table.name
                patient_column = table.c.key if table is tables.outbox else table.c.patient
                for blob in (
                    await conn.execute(sa.select(table.c[column]).where(patient_column == patient))
                ).scalars():
                    after.cipher.decrypt(blob, context=patient.encode())
        async with AsyncSession(engine) as session:
            twin = await after.twins.get(session, patient)
            samples = await after.readings.samples(
                session,
                patient,
                "step-count",
                datetime(2026, 6, 1, tzinfo=UTC),
                datetime(2026, 6, 2, tzinfo=UTC),
            )
        assert twin is not None and twin.state.latest_actigraphy is not None
        assert twin.state.latest_actigraphy.analysis_id == "a1"
        assert [r.report_id for r in twin.state.symptom_reports] == ["r1"]
        assert [v for _, v in samples] == [4321.0]

    finally:
        await engine.dispose()


def test_the_rotate_keys_command_prints_counts(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    k1, k2 = key_line("old"), key_line("new")
    monkeypatch.setenv("NOVAMIND_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("NOVAMIND_ENCRYPTION_KEYS", k1)
    monkeypatch.setenv("NOVAMIND_ENCRYPTION_ACTIVE_KEY", "old")
    assert main(["migrate"]) == 0

    async def write() -> None:
        engine = make_engine(sqlite_url)
        stores = build_stores(TwinSettings(), engine)
        async with AsyncSession(engine) as session, session.begin():
            await stores.twins.apply(
                session, new_patient(), add_symptom_report(phq9("r", [1] * 9)), cause_event_id="c"
            )
        await engine.dispose()

    asyncio.run(write())
    monkeypatch.setenv("NOVAMIND_ENCRYPTION_KEYS", f"{k1},{k2}")
    monkeypatch.setenv("NOVAMIND_ENCRYPTION_ACTIVE_KEY", "new")
    assert main(["rotate-keys"]) == 0
    printed = capsys.readouterr().out
    assert "twins: 1 re-wrapped" in printed and "total: 3 re-wrapped under key 'new'" in printed
    assert main(["rotate-keys"]) == 0
    assert "total: 0 re-wrapped" in capsys.readouterr().out
    monkeypatch.setenv("NOVAMIND_ENCRYPTION_KEYS", k2)
    assert main(["rotate-keys"]) == 0
