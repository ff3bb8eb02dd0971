"""The hash-chained audit log on SQLite and PostgreSQL: gap-free appends under concurrency and
detection of modified, deleted and reordered records (also through ``novamind-audit verify``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from novamind.core.audit import (
    AuditEvent,
    AuditLog,
    ChainReport,
    _row,
    audit_head,
    audit_log,
    create_audit_tables,
    verify_chain,
)
from novamind.core.db import make_engine
from novamind.core.errors import DataProcessingError, ServiceUnavailableError, ValidationError
from novamind.core.rpc import Principal

pytestmark = pytest.mark.timeout(120)

PATIENT = "pt_0123456789abcdef0123"
AUDIT_CLI = str(Path(sys.executable).parent / "novamind-audit")


def event(i: int, *, outcome: str = "allowed") -> AuditEvent:
    return AuditEvent(
        actor=f"dr-{i % 7}",
        roles=("clinician",),
        action="twin.read",
        patient=PATIENT if i % 3 else None,
        outcome=outcome,
        request_id=f"req-{i}",
        detail=f"fields=twin.symptoms,n={i}",
    )


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest_asyncio.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    await create_audit_tables(engine)
    yield engine
    await engine.dispose()


async def record_many(engine: AsyncEngine, count: int, **kwargs: Any) -> list[int]:
    log = AuditLog(engine, **kwargs)
    await log.start()
    try:
        return list(await asyncio.gather(*(log.record(event(i)) for i in range(count))))
    finally:
        await log.close()


async def execute(engine: AsyncEngine, statement: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(statement)


def assert_broken_at(report: ChainReport, seq: int, words: str) -> None:
    assert not report.ok
    assert report.first_bad_seq == seq, report
    assert any(f"seq {seq}" in problem and words in problem for problem in report.problems), report.problems


async def test_concurrent_records_get_gap_free_seqs_and_a_valid_chain(engine: AsyncEngine) -> None:
    seqs = await record_many(engine, 200)

    assert sorted(seqs) == list(range(1, 201))
    report = await verify_chain(engine)
    assert report == ChainReport(ok=True, records=200, first_bad_seq=None, problems=[])
    async with engine.connect() as conn:
        head = (await conn.execute(sa.select(audit_head))).one()
        last = (await conn.execute(sa.select(audit_log).where(audit_log.c.seq == 200))).one()
    assert (head.seq, head.hash) == (200, last.hash)


async def test_a_record_is_durable_and_complete_when_record_returns(
    engine: AsyncEngine, database_url: str
) -> None:
    log = AuditLog(engine)
    seq = await log.record(event(5, outcome="denied"))

    other = make_engine(database_url)
    try:
        async with other.connect() as conn:
            row = (await conn.execute(sa.select(audit_log).where(audit_log.c.seq == seq))).one()
    finally:
        await other.dispose()
        await log.close()
    assert (row.actor, row.action, row.patient, row.outcome, row.request_id) == (
        "dr-5",
        "twin.read",
        PATIENT,
        "denied",
        "req-5",
    )
    assert row.roles == '["clinician"]'
    assert row.prev_hash == "0" * 64 and len(row.hash) == 64


async def test_concurrent_records_are_batched_into_few_transactions(engine: AsyncEngine) -> None:
    commits = 0

    def count_commit(conn: Any) -> None:
        nonlocal commits
        commits += 1

    sa.event.listen(engine.sync_engine, "commit", count_commit)
    await record_many(engine, 200, max_batch=256)
    batched = commits
    commits = 0
    await record_many(engine, 70, max_batch=7)

    assert batched <= 20
    assert commits >= 10
    assert (await verify_chain(engine)).ok


async def test_two_logs_on_one_database_keep_one_chain(database_url: str, engine: AsyncEngine) -> None:
    second_engine = make_engine(database_url)
    first, second = AuditLog(engine, max_batch=16), AuditLog(second_engine, max_batch=16)
    try:
        seqs = await asyncio.gather(
            *(first.record(event(i)) for i in range(100)),
            *(second.record(event(i)) for i in range(100, 200)),
        )
    finally:
        await first.close()
        await second.close()
        await second_engine.dispose()

    assert sorted(seqs) == list(range(1, 201))
    report = await verify_chain(engine)
    assert report.ok and report.records == 200, report.problems


async def test_a_modified_field_is_reported_at_its_seq(engine: AsyncEngine) -> None:
    await record_many(engine, 120)

    await execute(engine, sa.update(audit_log).where(audit_log.c.seq == 57).values(outcome="denied"))

    report = await verify_chain(engine)
    assert_broken_at(report, 57, "hash mismatch")
    assert report.records == 120


@pytest.mark.parametrize(
    ("column", "value"),
    [("actor", "dr-mallory"), ("patient", "pt_ffffffffffffffffffff"), ("detail", ""), ("roles", '["ops"]')],
)
async def test_every_field_is_covered_by_the_hash(engine: AsyncEngine, column: str, value: str) -> None:
    await record_many(engine, 10)

    await execute(engine, sa.update(audit_log).where(audit_log.c.seq == 4).values({column: value}))

    assert_broken_at(await verify_chain(engine), 4, "hash mismatch")


async def test_a_modified_timestamp_is_detected(engine: AsyncEngine) -> None:
    await record_many(engine, 10)
    async with engine.connect() as conn:
        occurred = (
            await conn.execute(sa.select(audit_log.c.occurred_at).where(audit_log.c.seq == 6))
        ).scalar_one()

    await execute(
        engine,
        sa.update(audit_log).where(audit_log.c.seq == 6).values(occurred_at=occurred.replace(year=2001)),
    )

    assert_broken_at(await verify_chain(engine), 6, "hash mismatch")


async def test_a_modified_record_with_a_recomputed_hash_breaks_the_next_link(engine: AsyncEngine) -> None:
    await record_many(engine, 10)
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(audit_log).where(audit_log.c.seq == 3))).one()
    # A forger who knows the hashing scheme recomputes the record's own hash.
    forged_event = AuditEvent(
        row.actor, ("clinician",), row.action, None, "allowed", row.request_id, row.detail
    )
    forged = _row(3, row.occurred_at, forged_event, row.prev_hash)

    await execute(
        engine,
        sa.update(audit_log).where(audit_log.c.seq == 3).values(patient=None, hash=forged["hash"]),
    )

    assert_broken_at(await verify_chain(engine), 4, "prev_hash does not match")


async def test_a_deleted_middle_record_is_detected(engine: AsyncEngine) -> None:
    await record_many(engine, 200)

    await execute(engine, sa.delete(audit_log).where(audit_log.c.seq == 100))

    report = await verify_chain(engine)
    assert_broken_at(report, 100, "missing")
    assert report.records == 199


async def test_a_deleted_first_record_is_detected(engine: AsyncEngine) -> None:
    await record_many(engine, 5)

    await execute(engine, sa.delete(audit_log).where(audit_log.c.seq == 1))

    assert_broken_at(await verify_chain(engine), 1, "missing")


async def test_deleted_newest_records_are_detected_through_the_head(engine: AsyncEngine) -> None:
    await record_many(engine, 200)

    await execute(engine, sa.delete(audit_log).where(audit_log.c.seq == 200))

    report = await verify_chain(engine)
    assert_broken_at(report, 200, "missing at the end")
    assert report.records == 199


async def test_a_rewritten_head_hash_is_detected(engine: AsyncEngine) -> None:
    await record_many(engine, 20)

    await execute(engine, sa.update(audit_head).values(hash="f" * 64))

    assert_broken_at(await verify_chain(engine), 20, "audit_head hash")


async def test_swapped_records_are_detected(engine: AsyncEngine) -> None:
    await record_many(engine, 30)

    await execute(engine, sa.update(audit_log).where(audit_log.c.seq == 10).values(seq=-1))
    await execute(engine, sa.update(audit_log).where(audit_log.c.seq == 11).values(seq=10))
    await execute(engine, sa.update(audit_log).where(audit_log.c.seq == -1).values(seq=11))

    report = await verify_chain(engine)
    assert_broken_at(report, 10, "")
    assert report.records == 30


async def test_a_missing_head_is_reported_and_blocks_appends(engine: AsyncEngine) -> None:
    await record_many(engine, 5)
    await execute(engine, sa.delete(audit_head))

    report = await verify_chain(engine)
    assert not report.ok
    assert report.problems == ["audit_head row is missing"]

    log = AuditLog(engine)
    try:
        with pytest.raises(DataProcessingError, match="audit_head row is missing"):
            await log.record(event(1))
    finally:
        await log.close()


async def test_a_failed_write_is_reported_and_the_writer_keeps_going(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    log = AuditLog(engine)
    try:
        with pytest.raises(ServiceUnavailableError, match="not recorded"):
            await log.record(event(1))  # the tables do not exist yet

        await create_audit_tables(engine)

        assert await log.record(event(2)) == 1
        assert (await verify_chain(engine)).ok
    finally:
        await log.close()
        await engine.dispose()


async def test_an_empty_log_is_intact(engine: AsyncEngine) -> None:
    assert await verify_chain(engine) == ChainReport(ok=True, records=0, first_bad_seq=None, problems=[])


async def test_verification_pages_through_long_logs(engine: AsyncEngine) -> None:
    await record_many(engine, 250)
    await execute(engine, sa.update(audit_log).where(audit_log.c.seq == 233).values(action="twin.write"))

    report = await verify_chain(engine, page_size=16)

    assert report.records == 250
    assert_broken_at(report, 233, "hash mismatch")


async def test_close_writes_what_is_queued_and_refuses_later_records(engine: AsyncEngine) -> None:
    log = AuditLog(engine)
    pending = [asyncio.ensure_future(log.record(event(i))) for i in range(40)]
    await asyncio.sleep(0)  # let every record() enqueue before close

    await log.close()

    assert sorted([await p for p in pending]) == list(range(1, 41))
    with pytest.raises(ServiceUnavailableError, match="closed"):
        await log.record(event(41))


async def test_events_are_validated_without_echoing_values(engine: AsyncEngine) -> None:
    log = AuditLog(engine)
    try:
        with pytest.raises(ValidationError, match="patient must be a pseudonym") as raised:
            await log.record(AuditEvent("dr-1", ("clinician",), "twin.read", "MRN-0042", "allowed"))
        assert "MRN-0042" not in str(raised.value)
        with pytest.raises(ValidationError, match="outcome must be one of"):
            await log.record(AuditEvent("dr-1", ("clinician",), "twin.read", None, "maybe"))
        with pytest.raises(ValidationError, match="action"):
            await log.record(AuditEvent("dr-1", ("clinician",), "", None, "allowed"))
    finally:
        await log.close()
    assert (await verify_chain(engine)).records == 0


def test_an_event_for_a_principal_carries_its_subject_and_sorted_roles() -> None:
    principal = Principal("dr-1", frozenset({"ops", "clinician"}), frozenset({PATIENT}), token="t")

    recorded = AuditEvent.for_principal(principal, action="twin.read", patient=PATIENT, outcome="allowed")

    assert recorded == AuditEvent("dr-1", ("clinician", "ops"), "twin.read", PATIENT, "allowed")


# --- novamind-audit verify, run as operators run it -------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AUDIT_CLI, *args], capture_output=True, text=True, timeout=60, check=False)


def populate(url: str, count: int, tamper: Any = None) -> None:
    async def main() -> None:
        engine = make_engine(url)
        try:
            await create_audit_tables(engine)
            await record_many(engine, count)
            if tamper is not None:
                await execute(engine, tamper)
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_cli_reports_an_intact_log_with_exit_0(sqlite_url: str) -> None:
    populate(sqlite_url, 25)

    result = run_cli("verify", "--database-url", sqlite_url)

    assert result.returncode == 0, result.stderr
    assert "intact: 25 records" in result.stdout


def test_cli_names_the_first_bad_seq_of_a_tampered_log_with_exit_1(sqlite_url: str) -> None:
    populate(sqlite_url, 25, sa.update(audit_log).where(audit_log.c.seq == 17).values(actor="dr-mallory"))

    result = run_cli("verify", "--database-url", sqlite_url)

    assert result.returncode == 1, result.stderr
    assert "TAMPERED: first bad seq 17" in result.stdout
    assert "seq 17: hash mismatch" in result.stdout


def test_cli_detects_a_deleted_record_with_exit_1(sqlite_url: str) -> None:
    populate(sqlite_url, 25, sa.delete(audit_log).where(audit_log.c.seq == 25))

    result = run_cli("verify", "--database-url", sqlite_url)

    assert result.returncode == 1
    assert "first bad seq 25" in result.stdout


def test_cli_exits_2_when_the_log_cannot_be_read(tmp_path: Path) -> None:
    missing = run_cli("verify", "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'absent.db'}")
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    assert not (tmp_path / "absent.db").exists()

    empty = tmp_path / "empty.db"
    empty.touch()
    no_tables = run_cli("verify", "--database-url", f"sqlite+aiosqlite:///{empty}")
    assert no_tables.returncode == 2
    assert "no such table" in no_tables.stderr


def test_cli_reads_the_default_database_from_the_settings(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    populate(url, 3)

    result = subprocess.run(
        [AUDIT_CLI, "verify"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "NOVAMIND_DATA_DIR": str(tmp_path)},
    )

    assert result.returncode == 0, result.stderr
    assert "intact: 3 records" in result.stdout
