"""Device readings: decoding names what is wrong; applying stores exactly once, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from novamind.core.db import make_engine
from novamind.core.errors import ValidationError
from novamind.core.kafka import DuplicateEvent, SqlIdempotencyLedger
from novamind.core.privacy import pseudonymise
from novamind.twin.adapters import store
from novamind.twin.adapters.ingestion import apply_device_reading, decode_device_reading
from novamind.twin.adapters.migrate import upgrade_to_head
from novamind.twin.config import TwinSettings

PATIENT = pseudonymise("twin-test-patient", "k")


def heart_rate(event_id: str, user_id: str | None = PATIENT) -> dict[str, Any]:
    header: dict[str, Any] = {
        "uuid": event_id,
        "schema_id": {"namespace": "omh", "name": "heart-rate", "version": "2.0"},
        "creation_date_time": "2026-06-01T08:00:05Z",
    }
    if user_id is not None:
        header["user_id"] = user_id
    return {
        "header": header,
        "body": {
            "heart_rate": {"value": 64, "unit": "beats/min"},
            "effective_time_frame": {"date_time": "2026-06-01T08:00:00Z"},
        },
    }


def record(
    value: bytes | None, key: bytes | None = PATIENT.encode(), offset: int = 0
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="device.readings.v1",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=(),
    )


def test_a_valid_reading_decodes_to_its_event() -> None:
    event_id = str(uuid.uuid4())
    event = decode_device_reading(record(json.dumps(heart_rate(event_id)).encode()))
    assert (event.event_id, event.key, event.event_type) == (event_id, PATIENT, "omh:heart-rate:2.0")
    assert event.payload.value == 64 and event.payload.unit == "beats/min"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (record(json.dumps(heart_rate(str(uuid.uuid4()))).encode(), key=None), "key"),
        (record(json.dumps(heart_rate(str(uuid.uuid4()))).encode(), key=b"MRN-12345"), "key"),
        (
            record(json.dumps(heart_rate(str(uuid.uuid4()), user_id=pseudonymise("other", "k"))).encode()),
            "$.header.user_id",
        ),
        (record(None), "value"),
        (record(b"\x89PNG garbage"), "$"),
    ],
)
def test_malformed_records_raise_validation_errors_naming_the_field(raw: Any, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        decode_device_reading(raw)
    assert caught.value.field == field
    assert "MRN-12345" not in str(caught.value)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url"))


async def test_readings_are_stored_once_with_their_ledger_entry(database_url: str) -> None:
    await upgrade_to_head(TwinSettings(database_url=database_url))
    engine = make_engine(database_url)
    ledger = SqlIdempotencyLedger(engine)
    event = decode_device_reading(record(json.dumps(heart_rate(str(uuid.uuid4()))).encode()))
    try:
        async with ledger.claim("twin", event.event_id, topic=event.topic, partition=0, offset=0) as session:
            await apply_device_reading(event, session)
        with pytest.raises(DuplicateEvent):
            async with ledger.claim(
                "twin", event.event_id, topic=event.topic, partition=0, offset=1
            ) as session:
                await apply_device_reading(event, session)
        stats = await store.ingestion_stats(engine, PATIENT)
        assert (stats.readings, stats.patients) == (1, 1)
        assert (await store.ingestion_stats(engine, pseudonymise("nobody", "k"))).readings == 0
    finally:
        await engine.dispose()
