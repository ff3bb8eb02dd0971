"""How long the twin takes to ingest one week of minute-level activity counts (10,080 readings).

Starts the real twin runtime (consumer runners, idempotency ledger, outbox relay) on a fresh
database and Kafka topics (the embedded broker unless ``NOVAMIND_KAFKA_BOOTSTRAP`` names one),
sends one patient's week the way device sync does (one Open mHealth ``activity-count`` data point
per minute, 7 local days from midnight UTC), and reports:

* end to end: from the first record sent until every reading is applied and the analysis requests
  of the completed days are published (readings/s);
* the parts of one reading's cost, measured outside Kafka on the same database: decoding (JSON
  Schema validation), and applying it in its own ledger transaction (encryption, insert, commit).

Usage: ``.venv/bin/python services/twin/bench/ingest_week.py [--database-url URL]``
(default: a SQLite file in a temporary directory).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from novamind.core.crypto import EnvelopeCipher, KeyRing
from novamind.core.db import make_engine
from novamind.core.kafka import SqlIdempotencyLedger, TopicSpec, dlq_topic, ensure_topics
from novamind.core.privacy import pseudonymise
from novamind.devtools.broker import resolve_bootstrap
from novamind.devtools.net import free_port
from novamind.devtools.pytest_plugin import running_service, wait_for
from novamind.devtools.readings import activity_count_point
from novamind.twin.adapters.analysis_requests import AnalysisRequester
from novamind.twin.adapters.ingestion import DeviceReadingHandler, decode_device_reading
from novamind.twin.adapters.migrate import upgrade_to_head
from novamind.twin.adapters.outbox import Outbox
from novamind.twin.adapters.store import ReadingStore
from novamind.twin.adapters.twin_store import TwinStore
from novamind.twin.app import TwinTopics, build_service
from novamind.twin.config import TwinSettings

MINUTES = 10_080
WEEK_START = datetime(2026, 3, 2, tzinfo=UTC)


def week_records(patient: str) -> list[bytes]:
    return [
        activity_count_point(str(uuid.uuid4()), patient, WEEK_START + timedelta(minutes=m), float(m % 400))
        for m in range(MINUTES)
    ]


async def end_to_end(database_url: str, bootstrap: str) -> float:
    run = uuid.uuid4().hex[:8]
    topics = TwinTopics(
        device_readings=f"bench.readings.{run}",
        symptom_reports=f"bench.symptoms.{run}",
        analysis_completed=f"bench.completed.{run}",
        analysis_requested=f"bench.requested.{run}",
        twin_updated=f"bench.updated.{run}",
    )
    names = [topics.device_readings, topics.symptom_reports, topics.analysis_completed]
    names += [topics.analysis_requested, topics.twin_updated]
    await ensure_topics(
        bootstrap, [TopicSpec(n, 1) for n in names] + [TopicSpec(dlq_topic(n), 1) for n in names]
    )
    settings = TwinSettings(
        database_url=database_url,
        kafka_bootstrap=bootstrap,
        grpc_host="127.0.0.1",
        grpc_port=free_port(),
        http_host="127.0.0.1",
        http_port=free_port(),
        consumer_group=f"bench-{run}",
        symptoms_consumer_group=f"bench-symptoms-{run}",
        analyses_consumer_group=f"bench-analyses-{run}",
        consumer_session_timeout_ms=2_000,
        consumer_heartbeat_interval_ms=300,
        log_level="WARNING",
    )
    await upgrade_to_head(settings)
    service = build_service(settings, topics=topics)
    patient = pseudonymise(f"bench-{run}", "bench")
    records = week_records(patient)
    readings = service.consumers[0]
    async with running_service(service.runtime, timeout=30):
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
        await producer.start()
        try:
            # Let the consumer join its group first, so the timing is ingestion, not the join.
            await producer.send_and_wait(topics.device_readings, records[0], key=patient.encode())
            await wait_for(lambda: readings.stats.applied == 1, timeout=60, what="the first reading")
            started = time.perf_counter()
            pending = [
                await producer.send(topics.device_readings, value, key=patient.encode())
                for value in records[1:]
            ]
            await asyncio.gather(*pending)
            await wait_for(
                lambda: readings.stats.applied == MINUTES,
                timeout=600,
                interval=0.05,
                what="all readings applied",
            )
            # Versions: 1 (created) + 7 completed days; requests: days 3-7 of the week.
            await wait_for(lambda: service.relay.published == 8 + 5, timeout=60, what="the outbox drained")
            elapsed = time.perf_counter() - started
        finally:
            await producer.stop()
    rate = (MINUTES - 1) / elapsed
    print(f"end to end   {MINUTES - 1:>6} readings in {elapsed:6.2f} s = {rate:7.0f} readings/s")
    print(
        f"             {service.readings_handler.requests_queued} analysis requests,"
        f" {service.relay.published} events relayed"
    )
    return elapsed


async def parts(database_url: str) -> None:
    settings = TwinSettings(database_url=database_url)
    await upgrade_to_head(settings)
    engine = make_engine(database_url)
    cipher = EnvelopeCipher(KeyRing.from_settings(settings))
    outbox = Outbox(cipher)
    twins = TwinStore(cipher, outbox)
    store = ReadingStore(cipher)
    handler = DeviceReadingHandler(twins, store, AnalysisRequester(store, outbox))
    ledger = SqlIdempotencyLedger(engine)
    patient = pseudonymise(f"bench-parts-{uuid.uuid4()}", "bench")
    raw = [
        ConsumerRecord("t", 0, i, 0, 0, patient.encode(), value, None, 0, 0, ())
        for i, value in enumerate(week_records(patient))
    ]
    started = time.perf_counter()
    events = [decode_device_reading(record) for record in raw]
    decode = (time.perf_counter() - started) / len(raw)
    timings = []
    started = time.perf_counter()
    for event in events:
        one = time.perf_counter()
        async with ledger.claim(
            "bench", event.event_id, topic="t", partition=0, offset=event.offset
        ) as session:
            await handler(event, session)
        timings.append(time.perf_counter() - one)
    apply_total = time.perf_counter() - started
    await engine.dispose()
    print(f"decode       {decode * 1e3:6.3f} ms per reading (JSON Schema validation)")
    print(
        f"apply        {apply_total / len(events) * 1e3:6.3f} ms per reading"
        " (one ledger transaction: encrypt, insert, commit)"
    )
    print(
        f"             p50 {statistics.median(timings) * 1e3:.3f} ms, max {max(timings) * 1e3:.1f} ms"
        " (a completed day: 7-day query, up to 10,080 decryptions, outbox)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="", help="SQLAlchemy URL (default: SQLite in a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'twin.db'}"
        parts_url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'parts.db'}"
        bootstrap, broker = resolve_bootstrap()
        try:
            elapsed = await end_to_end(url, bootstrap)
        finally:
            if broker is not None:
                broker.stop()
        await parts(parts_url)
    print(f"BENCH twin_ingest_week_seconds {elapsed:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
