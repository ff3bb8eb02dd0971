"""Versioned twins on SQLite and PostgreSQL: history, optimistic concurrency, encryption at rest."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession

from novamind.api.common.v1 import common_pb2
from novamind.api.events.v1 import events_pb2
from novamind.api.twin.v1 import twin_pb2
from novamind.core.crypto import DecryptionError
from novamind.core.db import make_engine
from novamind.core.errors import ConflictError
from novamind.twin.adapters import tables
from novamind.twin.adapters.ingestion import add_symptom_report
from novamind.twin.adapters.state import TwinState
from novamind.twin.adapters.twin_store import Applied, Change, Mutation, TwinRecord, TwinStore
from novamind.twin.domain.readings import Reading

from .conftest import Stores, build_stores, new_patient


def phq9(report_id: str, items: list[int], at: datetime | None = None) -> twin_pb2.SymptomReport:
    stamp = Timestamp()
    stamp.FromDatetime(at or datetime(2026, 5, 1, 9, tzinfo=UTC))
    return twin_pb2.SymptomReport(
        report_id=report_id,
        instrument=common_pb2.SYMPTOM_INSTRUMENT_PHQ9,
        item_responses=items,
        total=float(sum(items)),
        reported_at=stamp,
        source="test",
    )


def set_medication(name: str) -> Mutation:
    def mutate(state: TwinState) -> Change:
        state.medications = [common_pb2.Medication(name=name)]
        return Change(("medications",), {"name": name})

    return mutate


async def apply(stores: Stores, patient: str, mutation: Mutation, **kwargs: Any) -> Applied:
    async with AsyncSession(stores.engine) as session, session.begin():
        return await stores.twins.apply(session, patient, mutation, **kwargs)


async def twin_updated_events(stores: Stores, patient: str) -> list[events_pb2.TwinUpdated]:
    async with stores.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(tables.outbox.c.payload)
                .where(
                    tables.outbox.c.key == patient,
                    tables.outbox.c.event_type == "novamind.api.events.v1.TwinUpdated",
                )
                .order_by(tables.outbox.c.id)
            )
        ).all()
    events = []
    for row in rows:
        event = events_pb2.TwinUpdated()
        json_format.Parse(stores.cipher.decrypt(row.payload, context=patient.encode()), event)
        events.append(event)
    return events


async def test_every_change_is_a_version_with_history_and_an_outbox_event(stores: Stores) -> None:
    patient = new_patient()
    first = await apply(stores, patient, add_symptom_report(phq9("r1", [1] * 9)), cause_event_id="e1")
    assert first.twin is not None and (first.twin.version, first.previous_version) == (1, 0)
    await apply(stores, patient, set_medication("sertraline"), cause_event_id="e2")
    third = await apply(stores, patient, add_symptom_report(phq9("r2", [2] * 9)), cause_event_id="e3")
    assert third.twin is not None and third.twin.version == 3

    async with AsyncSession(stores.engine) as session:
        twin = await stores.twins.get(session, patient)
        history = await stores.twins.versions(session, patient, before=None, limit=10)
    assert twin is not None and twin.version == 3
    assert [r.report_id for r in twin.state.symptom_reports] == ["r1", "r2"]
    assert [m.name for m in twin.state.medications] == ["sertraline"]
    assert [(v, sections, cause) for v, _, sections, cause in history] == [
        (3, ["symptoms"], "e3"),
        (2, ["medications"], "e2"),
        (1, ["symptoms"], "e1"),
    ]
    events = await twin_updated_events(stores, patient)
    assert [(e.version, e.previous_version, list(e.changed_sections), e.cause_event_id) for e in events] == [
        (1, 0, ["symptoms"], "e1"),
        (2, 1, ["medications"], "e2"),
        (3, 2, ["symptoms"], "e3"),
    ]
    assert len({e.event_id for e in events}) == 3


async def test_a_mutation_that_changes_nothing_writes_no_version(stores: Stores) -> None:
    patient = new_patient()
    await apply(stores, patient, add_symptom_report(phq9("same", [0] * 9)), cause_event_id="a")
    again = await apply(stores, patient, add_symptom_report(phq9("same", [0] * 9)), cause_event_id="b")
    assert not again.changed and again.twin is not None and again.twin.version == 1
    assert len(await twin_updated_events(stores, patient)) == 1


async def test_a_stale_expected_version_is_a_conflict(stores: Stores) -> None:
    patient = new_patient()
    with pytest.raises(ConflictError) as missing:
        await apply(stores, patient, set_medication("a"), cause_event_id="x", expected_version=3)
    assert missing.value.field == "expected_version"
    created = await apply(stores, patient, set_medication("a"), cause_event_id="x", expected_version=0)
    assert created.twin is not None and created.twin.version == 1
    await apply(stores, patient, set_medication("b"), cause_event_id="y", expected_version=1)
    with pytest.raises(ConflictError) as stale:
        await apply(stores, patient, set_medication("c"), cause_event_id="z", expected_version=1)
    assert stale.value.field == "expected_version" and stale.value.retryable
    async with AsyncSession(stores.engine) as session:
        twin = await stores.twins.get(session, patient)
    assert twin is not None and twin.version == 2 and twin.state.medications[0].name == "b"


class RacingTwinStore(TwinStore):
    """A store that lets another writer commit between its read and its write, once."""

    def __init__(self, stores: Stores, rival: Mutation) -> None:
        super().__init__(stores.cipher, stores.outbox)
        self._stores = stores
        self._rival = rival
        self.raced = False

    async def _rival_commits(self, patient: str) -> None:
        if not self.raced:
            self.raced = True
            await apply(self._stores, patient, self._rival, cause_event_id="rival")

    async def _update(
        self, session: AsyncSession, current: TwinRecord, mutation: Mutation, cause: str
    ) -> Applied | None:
        await self._rival_commits(current.patient)
        return await super()._update(session, current, mutation, cause)

    async def _create(
        self, session: AsyncSession, patient: str, mutation: Mutation, cause: str
    ) -> Applied | None:
        await self._rival_commits(patient)
        return await super()._create(session, patient, mutation, cause)


@pytest.mark.parametrize("exists", [True, False], ids=["update-race", "create-race"])
async def test_a_lost_race_is_retried_on_the_fresh_state(stores: Stores, exists: bool) -> None:
    patient = new_patient()
    if exists:
        await apply(stores, patient, add_symptom_report(phq9("first", [0] * 9)), cause_event_id="first")
    racing = RacingTwinStore(stores, add_symptom_report(phq9("rival", [1] * 9)))
    async with AsyncSession(stores.engine) as session, session.begin():
        applied = await racing.apply(
            session, patient, add_symptom_report(phq9("mine", [3] * 9)), cause_event_id="mine"
        )
    assert racing.raced and racing.lost_races == 1
    expected_version = 3 if exists else 2
    assert applied.twin is not None and applied.twin.version == expected_version
    async with AsyncSession(stores.engine) as session:
        twin = await stores.twins.get(session, patient)
        history = await stores.twins.versions(session, patient, before=None, limit=10)
    assert twin is not None and twin.version == expected_version
    assert {r.report_id for r in twin.state.symptom_reports} == ({"first"} if exists else set()) | {
        "rival",
        "mine",
    }
    assert [v for v, *_ in history] == list(range(expected_version, 0, -1))


async def test_a_client_that_expected_the_version_it_lost_a_race_for_gets_a_conflict(stores: Stores) -> None:
    patient = new_patient()
    await apply(stores, patient, set_medication("a"), cause_event_id="a")
    racing = RacingTwinStore(stores, set_medication("b"))
    with pytest.raises(ConflictError):
        async with AsyncSession(stores.engine) as session, session.begin():
            await racing.apply(session, patient, set_medication("c"), cause_event_id="c", expected_version=1)


async def test_fifty_concurrent_writers_on_one_twin_give_fifty_versions(
    postgres_url: str, stores: Stores
) -> None:
    if stores.engine.dialect.name != "postgresql":
        pytest.skip("the acceptance run is on PostgreSQL")
    patient = new_patient()
    writers = 50
    engines = [make_engine(postgres_url) for _ in range(writers)]
    writer_stores = [build_stores(stores.settings, engine) for engine in engines]
    start = asyncio.Event()

    async def write(index: int) -> int:
        own = writer_stores[index]
        report = phq9(
            f"report-{index}", [index % 4] * 9, datetime(2026, 5, 1, tzinfo=UTC) + timedelta(hours=index)
        )
        async with own.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))  # connected (and pooled) before the race starts
        await start.wait()
        async with AsyncSession(own.engine) as session, session.begin():
            applied = await own.twins.apply(
                session, patient, add_symptom_report(report), cause_event_id=f"cause-{index}"
            )
        assert applied.twin is not None
        return applied.twin.version

    try:
        tasks = [asyncio.create_task(write(i)) for i in range(writers)]
        await asyncio.sleep(0)
        start.set()
        versions = await asyncio.gather(*tasks)
    finally:
        await asyncio.gather(*(engine.dispose() for engine in engines))

    # Creation is not a separate version: the first report creates the twin at version 1.
    assert sorted(versions) == list(range(1, writers + 1))
    async with AsyncSession(stores.engine) as session:
        twin = await stores.twins.get(session, patient)
        history = await stores.twins.versions(session, patient, before=None, limit=100)
    assert twin is not None and twin.version == writers
    assert len(history) == writers and {v for v, *_ in history} == set(range(1, writers + 1))
    assert {cause for *_, cause in history} == {f"cause-{i}" for i in range(writers)}
    assert {r.report_id for r in twin.state.symptom_reports} == {f"report-{i}" for i in range(writers)}
    reported = [r.reported_at.ToDatetime() for r in twin.state.symptom_reports]
    assert reported == sorted(reported)
    events = await twin_updated_events(stores, patient)
    assert sorted(e.version for e in events) == list(range(1, writers + 1))
    assert sum(s.twins.lost_races for s in writer_stores) > 0


async def all_cells(stores: Stores) -> list[bytes]:
    cells: list[bytes] = []
    async with stores.engine.connect() as conn:
        for table in tables.metadata.sorted_tables:
            for row in await conn.execute(sa.select(table)):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        cells.append(bytes(value))
                    elif value is not None:
                        cells.append(str(value).encode())
    return cells


async def test_phi_is_encrypted_at_rest_and_bound_to_the_patient(stores: Stores) -> None:
    patient = new_patient()
    await apply(stores, patient, set_medication("fluvoxamine"), cause_event_id="m")
    await apply(
        stores, patient, add_symptom_report(phq9("q", [3, 3, 3, 3, 3, 3, 3, 3, 2])), cause_event_id="s"
    )
    async with AsyncSession(stores.engine) as session, session.begin():
        await stores.readings.add(
            session,
            Reading(
                event_id=str(uuid.uuid4()),
                patient=patient,
                schema="heart-rate",
                start=datetime(2026, 5, 1, 8, tzinfo=UTC),
                end=None,
                value=187.4321,
                unit="beats/min",
            ),
        )
    cells = await all_cells(stores)
    assert cells, "the tables are empty"
    for needle in (b"fluvoxamine", b"187.4321", b"beats/min", b"3,3,3,3,3,3,3,3,2"):
        assert not any(needle in cell for cell in cells), needle

    async with stores.engine.connect() as conn:
        blob = await conn.scalar(sa.select(tables.twins.c.state).where(tables.twins.c.patient == patient))
        key_id = await conn.scalar(sa.select(tables.twins.c.key_id).where(tables.twins.c.patient == patient))
    assert key_id == stores.cipher.keyring.active_key_id
    with pytest.raises(DecryptionError):
        stores.cipher.decrypt(blob, context=new_patient().encode())
    assert json.loads(stores.cipher.decrypt(blob, context=patient.encode()))["format"] == 1


async def test_minute_samples_are_reused_until_a_reading_joins_the_range(stores: Stores) -> None:
    patient = new_patient()
    start = datetime(2026, 11, 2, tzinfo=UTC)

    def reading(minute: int, counts: float) -> Reading:
        at = start + timedelta(minutes=minute)
        return Reading(
            str(uuid.uuid4()), patient, "activity-count", at, at + timedelta(minutes=1), counts, "counts"
        )

    async with stores.engine.begin() as conn:
        session = AsyncSession(bind=conn)
        for minute in range(3):
            await stores.readings.add(session, reading(minute, 10.0 * minute))
        first = await stores.readings.minute_samples(session, patient, start, start + timedelta(days=7))
        again = await stores.readings.minute_samples(session, patient, start, start + timedelta(days=7))
        assert again == first and [v for _, v in first] == [0.0, 10.0, 20.0]
        # a late reading inside the range is seen at once, not hidden by the reuse
        await stores.readings.add(session, reading(1440, 99.0))
        later = await stores.readings.minute_samples(session, patient, start, start + timedelta(days=7))
        assert [v for _, v in later] == [0.0, 10.0, 20.0, 99.0]
