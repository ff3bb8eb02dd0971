"""Twin ingestion of a week of minute readings: one ledger transaction per record vs apply batches.

Starts the real twin runtime (consumer runners, idempotency ledger, outbox relay; the embedded
broker unless ``NOVAMIND_KAFKA_BOOTSTRAP`` names one) on a freshly migrated database, and for each
mode ingests one fresh patient's week the way device sync sends it: one Open mHealth
``activity-count`` data point per minute (10,080 records), 7 local days from midnight UTC.

* per record: ``apply_batch_size=1``, the runner's original path (ledger insert, handler, commit
  for every record);
* batch: the twin's default (``READINGS_APPLY_BATCH_SIZE``): the records of a poll are applied up
  to that many per transaction, one commit each.

The week is produced before the twin starts, so the figure is the twin's catch-up throughput,
not the producer's: records/s counts the records applied after the first poll's were, over the
time from then until every reading is applied and the outbox has published the twin versions and
analysis requests of the completed days. Each run checks that every reading was stored once and
nothing was dead-lettered or counted twice. Runs on SQLite, and on PostgreSQL when it answers
(``--postgres-url``; default ``NOVAMIND_TEST_POSTGRES_URL`` or the local test database, in a
schema made for the run and dropped after). Also reported: what decoding one record costs (JSON
Schema validation of the data point), measured in-process.

Usage: ``.venv/bin/python bench/twin_ingest.py [--quick] [--days N] [--batch-size N]
[--postgres-url URL | --no-postgres]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from sqlalchemy.engine import make_url

from novamind.core.db import make_engine
from novamind.core.kafka import TopicSpec, dlq_topic, ensure_topics
from novamind.core.privacy import pseudonymise
from novamind.devtools.broker import resolve_bootstrap
from novamind.devtools.net import free_port
from novamind.devtools.pytest_plugin import DEFAULT_POSTGRES_URL, POSTGRES_URL_ENV, running_service, wait_for
from novamind.devtools.readings import activity_count_point
from novamind.twin.adapters.ingestion import decode_device_reading
from novamind.twin.adapters.migrate import upgrade_to_head
from novamind.twin.adapters.store import ingestion_stats
from novamind.twin.app import READINGS_APPLY_BATCH_SIZE, TwinTopics, build_service
from novamind.twin.config import TwinSettings

MINUTES_PER_DAY = 1_440
WEEK_START = datetime(2026, 3, 2, tzinfo=UTC)


@dataclass
class Run:
    """One ingestion of ``records`` readings in one mode on one database."""

    database: str
    mode: str
    records: int
    seconds: float = 0.0
    measured: int = 0
    transactions: int = 0
    fallbacks: int = 0

    @property
    def rate(self) -> float:
        return self.measured / self.seconds


def readings(patient: str, days: int) -> list[bytes]:
    """``days`` of minute activity counts for ``patient``, from midnight UTC (fresh event ids)."""
    return [
        activity_count_point(str(uuid.uuid4()), patient, WEEK_START + timedelta(minutes=m), float(m % 400))
        for m in range(days * MINUTES_PER_DAY)
    ]


def decode_ms_per_record(patient: str) -> float:
    records = [
        ConsumerRecord("t", 0, i, 0, 0, patient.encode(), value, None, 0, 0, ())
        for i, value in enumerate(readings(patient, 1)[:1000])
    ]
    decode_device_reading(records[0])
    started = time.perf_counter()
    for record in records:
        decode_device_reading(record)
    return (time.perf_counter() - started) / len(records) * 1000


async def produce(bootstrap: str, topic: str, patient: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        pending = [await producer.send(topic, value, key=patient.encode()) for value in values]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def ingest(database: str, url: str, bootstrap: str, mode: str, batch_size: int, days: int) -> Run:
    """Ingest ``days`` of one fresh patient's readings through a fresh twin in one mode."""
    run_id = uuid.uuid4().hex[:8]
    topics = TwinTopics(
        device_readings=f"bench.readings.{run_id}",
        symptom_reports=f"bench.symptoms.{run_id}",
        analysis_completed=f"bench.completed.{run_id}",
        analysis_requested=f"bench.requested.{run_id}",
        twin_updated=f"bench.updated.{run_id}",
    )
    names = [topics.device_readings, topics.symptom_reports, topics.analysis_completed]
    names += [topics.analysis_requested, topics.twin_updated]
    await ensure_topics(
        bootstrap, [TopicSpec(n, 1) for n in names] + [TopicSpec(dlq_topic(n), 1) for n in names]
    )
    settings = TwinSettings(
        database_url=url,
        kafka_bootstrap=bootstrap,
        grpc_host="127.0.0.1",
        grpc_port=free_port(),
        http_host="127.0.0.1",
        http_port=free_port(),
        consumer_group=f"bench-{run_id}",
        symptoms_consumer_group=f"bench-symptoms-{run_id}",
        analyses_consumer_group=f"bench-analyses-{run_id}",
        consumer_session_timeout_ms=2_000,
        consumer_heartbeat_interval_ms=300,
        log_level="WARNING",
    )
    patient = pseudonymise(f"bench-{run_id}", "bench")
    values = readings(patient, days)
    await produce(bootstrap, topics.device_readings, patient, values)

    service = build_service(settings, topics=topics, readings_apply_batch_size=batch_size)
    consumer = service.consumers[0]
    total = len(values)
    # Versions: the twin's creation and one per completed day; one analysis request per
    # completed day from the ``analysis_min_days``-th on.
    relayed = 1 + days + max(0, days - settings.analysis_min_days + 1)
    run = Run(database, mode, total)
    async with running_service(service.runtime, timeout=60):
        await wait_for(lambda: consumer.stats.applied > 0, timeout=60, interval=0.002, what="the first poll")
        started, applied_before = time.perf_counter(), consumer.stats.applied
        await wait_for(
            lambda: consumer.stats.settled == total and service.relay.published == relayed,
            timeout=900,
            interval=0.005,
            what="every reading applied and the outbox drained",
        )
        run.seconds = time.perf_counter() - started
        run.measured = total - applied_before
    run.transactions = consumer.stats.apply_batches or consumer.stats.applied
    run.fallbacks = consumer.stats.apply_batch_fallbacks
    engine = make_engine(url)
    try:
        stored = (await ingestion_stats(engine, patient)).readings
    finally:
        await engine.dispose()
    stats = consumer.stats
    if (stats.applied, stats.duplicate, stats.dead_lettered, stored) != (total, 0, 0, total):
        raise SystemExit(f"{database} {mode}: wrong result: {stats}, {stored} readings stored of {total}")
    return run


@contextlib.contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite+aiosqlite:///{Path(folder) / 'twin.db'}"


@contextlib.asynccontextmanager
async def postgres_database(url: str) -> AsyncIterator[str | None]:
    """A schema of its own in the PostgreSQL database at ``url`` (``None`` if unreachable)."""
    import asyncpg  # type: ignore[import-untyped]

    parsed = make_url(url)
    try:
        connection = await asyncpg.connect(
            host=parsed.host,
            port=parsed.port or 5432,
            user=parsed.username,
            password=parsed.password,
            database=parsed.database,
            timeout=5,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        where = f"{parsed.host}:{parsed.port or 5432}"
        print(f"PostgreSQL at {where} is unreachable ({type(exc).__name__}): skipped")
        yield None
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        yield parsed.update_query_dict({"search_path": schema}).render_as_string(hide_password=False)
    finally:
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()


async def bench_database(database: str, url: str, bootstrap: str, batch_size: int, days: int) -> list[Run]:
    await upgrade_to_head(TwinSettings(database_url=url))
    runs = []
    for mode, size in (("per_record", 1), ("batch", batch_size)):
        runs.append(await ingest(database, url, bootstrap, mode, size, days))
        run = runs[-1]
        print(
            f"  {database:10s} {mode:10s} {run.records:>6} records: {run.measured:>6} in {run.seconds:6.2f} s"
            f" = {run.rate:7.0f} records/s  ({run.transactions} transactions, {run.fallbacks} fallbacks)"
        )
    return runs


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two days instead of seven (under a minute)")
    parser.add_argument("--days", type=int, help="days of minute readings per run (default 7, quick 2)")
    parser.add_argument(
        "--batch-size", type=int, default=READINGS_APPLY_BATCH_SIZE, help="records per apply batch"
    )
    parser.add_argument("--postgres-url", default=os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL))
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    days = args.days or (2 if args.quick else 7)
    logging.basicConfig(level=logging.ERROR)

    print(
        f"Twin ingestion benchmark ({'quick' if args.quick else 'full'}): {days} days of minute readings"
        f" ({days * MINUTES_PER_DAY} records) per run, apply batches of {args.batch_size};"
        f" {os.cpu_count()} CPU cores"
    )
    decode_ms = decode_ms_per_record(pseudonymise("decode", "bench"))
    print(f"  decoding (JSON Schema validation): {decode_ms:.3f} ms/record")
    bootstrap, broker = resolve_bootstrap()
    runs: list[Run] = []
    try:
        with sqlite_database() as url:
            runs += await bench_database("sqlite", url, bootstrap, args.batch_size, days)
        if not args.no_postgres:
            async with postgres_database(args.postgres_url) as url:
                if url is not None:
                    runs += await bench_database("postgresql", url, bootstrap, args.batch_size, days)
    finally:
        if broker is not None:
            broker.stop()

    print()
    print(f"  {'database':10s} {'per record':>12s} {'batch':>12s} {'ratio':>7s}   (records/s)")
    by_database: dict[str, dict[str, Run]] = {}
    for run in runs:
        by_database.setdefault(run.database, {})[run.mode] = run
    for database, modes in by_database.items():
        single, batch = modes["per_record"], modes["batch"]
        print(f"  {database:10s} {single.rate:12.0f} {batch.rate:12.0f} {batch.rate / single.rate:6.1f}x")
    print()
    for database, modes in by_database.items():
        for mode, run in modes.items():
            print(f"BENCH twin_ingest_{database}_{mode} {run.rate:.0f} records/s")
        speedup = modes["batch"].rate / modes["per_record"].rate
        print(f"BENCH twin_ingest_{database}_batch_speedup {speedup:.1f} x")


if __name__ == "__main__":
    asyncio.run(main())
