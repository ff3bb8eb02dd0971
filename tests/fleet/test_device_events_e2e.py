"""Device readings from a plain Kafka client reach the twin exactly once, or its DLQ with a reason.

1,000 records: 940 distinct data points, 50 re-sent duplicates of them and 10 malformed records.
Checked three ways: the twin's counters (gRPC and Prometheus), its store, and the DLQ topic.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from novamind.api.twin.v1 import twin_pb2, twin_pb2_grpc
from novamind.core.kafka import FLEET_TOPICS
from novamind.core.privacy import pseudonymise
from novamind.devtools.fleet import Fleet
from novamind.devtools.pytest_plugin import committed_offsets

from .conftest import poll_until

pytestmark = pytest.mark.asyncio(loop_scope="session")

TOPIC = "device.readings.v1"
DISTINCT, DUPLICATES, MALFORMED = 940, 50, 10


def step_count_point(event_id: str, patient: str, start: datetime, steps: int) -> bytes:
    return json.dumps(
        {
            "header": {
                "uuid": event_id,
                "schema_id": {"namespace": "omh", "name": "step-count", "version": "3.0"},
                "creation_date_time": (start + timedelta(minutes=1)).isoformat(),
                "user_id": patient,
            },
            "body": {
                "step_count": {"value": steps, "unit": "steps"},
                "effective_time_frame": {
                    "time_interval": {
                        "start_date_time": start.isoformat(),
                        "end_date_time": (start + timedelta(minutes=1)).isoformat(),
                    }
                },
            },
        }
    ).encode()


def malformed_records(patient: str, start: datetime) -> list[tuple[bytes | None, bytes]]:
    good = json.loads(step_count_point(str(uuid.uuid4()), patient, start, 10))
    negative = json.loads(json.dumps(good))
    negative["body"]["step_count"]["value"] = -5
    no_uuid = json.loads(json.dumps(good))
    del no_uuid["header"]["uuid"]
    unknown_schema = json.loads(json.dumps(good))
    unknown_schema["header"]["schema_id"]["name"] = "blood-glucose-from-the-future"
    wrong_unit = json.loads(json.dumps(good))
    wrong_unit["body"]["step_count"]["unit"] = "furlongs"
    no_time = json.loads(json.dumps(good))
    del no_time["body"]["effective_time_frame"]
    key = patient.encode()
    return [
        (key, b"{not json"),
        (key, b"\x00\xff\xfe binary garbage"),
        (key, b"[1, 2, 3]"),
        (key, json.dumps(negative).encode()),
        (key, json.dumps(no_uuid).encode()),
        (key, json.dumps(unknown_schema).encode()),
        (key, json.dumps(wrong_unit).encode()),
        (key, json.dumps(no_time).encode()),
        (None, json.dumps(good).encode()),  # no patient key
        (b"not-a-pseudonym", json.dumps(good).encode()),
    ]


async def ingestion_counts(fleet: Fleet) -> dict[str, int]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fleet.services['twin'].grpc_port}") as channel:
        stats = await twin_pb2_grpc.TwinServiceStub(channel).GetIngestionStats(
            twin_pb2.GetIngestionStatsRequest(), timeout=5
        )
    for topic in stats.topics:
        if topic.topic == TOPIC:
            return {
                "applied": topic.applied,
                "duplicate": topic.duplicates,
                "dead_lettered": topic.dead_lettered,
            }
    return {"applied": 0, "duplicate": 0, "dead_lettered": 0}


async def prometheus_counts(fleet: Fleet) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{fleet.http_url('twin')}/metrics")).text
    counts = {"applied": 0.0, "duplicate": 0.0, "dead_lettered": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name == "novamind_kafka_events":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("topic") == TOPIC:
                    counts[sample.labels["outcome"]] += sample.value
    return counts


def stored(db: Path, patients: list[str]) -> tuple[int, int]:
    marks = ",".join("?" * len(patients))
    with sqlite3.connect(db) as conn:
        rows, events = conn.execute(
            f"SELECT count(*), count(DISTINCT event_id) FROM readings WHERE patient IN ({marks})", patients
        ).fetchone()
    return int(rows), int(events)


async def dead_letters(bootstrap: str, run_id: str, expected: int) -> list[dict[str, str]]:
    consumer = AIOKafkaConsumer(
        f"{TOPIC}.dlq", bootstrap_servers=bootstrap, group_id=f"e2e-{run_id}", auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[dict[str, str]] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < expected:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        headers = {k: v.decode() for k, v in record.headers}
                        if headers.get("e2e-run") == run_id:
                            found.append(headers)
    finally:
        await consumer.stop()
    return found


async def test_thousand_events_are_applied_deduplicated_or_dead_lettered(fleet: Fleet, db_path: Path) -> None:
    run_id = uuid.uuid4().hex
    rng = random.Random(20261123)
    patients = [pseudonymise(f"{run_id}-{i}", "e2e") for i in range(8)]
    start = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    originals = []
    for i in range(DISTINCT):
        patient = patients[i % len(patients)]
        point = step_count_point(
            str(uuid.uuid4()), patient, start + timedelta(minutes=i), rng.randint(0, 180)
        )
        originals.append((patient.encode(), point))
    records = list(originals)
    # Each duplicate follows its original: same key, so same partition, so delivered after it.
    for original in rng.sample(originals, DUPLICATES):
        records.insert(rng.randint(records.index(original) + 1, len(records)), original)
    for record in malformed_records(patients[0], start):
        records.insert(rng.randint(0, len(records)), record)
    assert len(records) == 1000

    counts_before = await ingestion_counts(fleet)
    prom_before = await prometheus_counts(fleet)

    producer = AIOKafkaProducer(bootstrap_servers=fleet.bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send(TOPIC, value, key=key, headers=[("e2e-run", run_id.encode())])
        await producer.flush()
    finally:
        await producer.stop()

    def delta(now: dict[str, int]) -> dict[str, int]:
        return {k: now[k] - counts_before[k] for k in now}

    counts, _ = await poll_until(
        lambda: ingestion_counts(fleet), lambda c: sum(delta(c).values()) >= 1000, timeout=120, interval=0.2
    )
    assert delta(counts) == {"applied": DISTINCT, "duplicate": DUPLICATES, "dead_lettered": MALFORMED}

    prom_after = await prometheus_counts(fleet)
    assert {k: prom_after[k] - prom_before[k] for k in prom_after} == {
        "applied": DISTINCT,
        "duplicate": DUPLICATES,
        "dead_lettered": MALFORMED,
    }

    assert stored(db_path, patients) == (DISTINCT, DISTINCT)

    letters = await dead_letters(fleet.bootstrap, run_id, MALFORMED)
    assert len(letters) == MALFORMED
    for headers in letters:
        assert headers["dlq-reason"], headers
        assert headers["dlq-error-code"] == "VALIDATION_ERROR"
        assert headers["dlq-source-topic"] == TOPIC
        assert int(headers["dlq-attempts"]) == 1


async def end_offsets(bootstrap: str, partitions: int) -> list[int]:
    """Offset after the last record of each partition, read from the records themselves."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = dict.fromkeys(tps, 0)
        idle = 0
        while idle < 3:
            batches = await consumer.getmany(timeout_ms=300)
            idle = 0 if batches else idle + 1
            for tp, records in batches.items():
                ends[tp] = records[-1].offset + 1
        return [ends[tp] for tp in tps]
    finally:
        await consumer.stop()


async def test_sigterm_drains_the_twin_and_commits_every_settled_offset(fleet: Fleet) -> None:
    partitions = next(spec.partitions for spec in FLEET_TOPICS if spec.name == TOPIC)
    producer = AIOKafkaProducer(bootstrap_servers=fleet.bootstrap, acks="all")
    await producer.start()
    try:
        patient = pseudonymise(uuid.uuid4().hex, "e2e")
        start = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
        for i in range(60):
            point = step_count_point(str(uuid.uuid4()), patient, start + timedelta(minutes=i), i)
            await producer.send(TOPIC, point, key=patient.encode())
        await producer.flush()
    finally:
        await producer.stop()
    expected = await end_offsets(fleet.bootstrap, partitions)
    await poll_until(
        lambda: ingestion_counts(fleet),
        lambda c: stored(fleet.data_dir / "twin.db", [patient])[0] == 60,
        timeout=60,
    )

    exit_code = await fleet.stop_service("twin")  # SIGTERM
    try:
        assert exit_code == 0
        assert await committed_offsets(fleet.bootstrap, "twin", TOPIC, partitions) == expected
    finally:
        await fleet.start_service("twin")
