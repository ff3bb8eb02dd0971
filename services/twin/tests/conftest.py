"""Shared fixtures: the twin's stores on SQLite and PostgreSQL, records, and a running twin."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import pytest_asyncio
from aiokafka.structs import ConsumerRecord
from google.protobuf import json_format
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncEngine

from novamind.core.crypto import EnvelopeCipher, KeyRing
from novamind.core.db import make_engine
from novamind.core.kafka import SqlIdempotencyLedger
from novamind.core.privacy import pseudonymise
from novamind.devtools.net import free_port
from novamind.devtools.readings import activity_count_point
from novamind.twin.adapters.analysis_requests import AnalysisRequester
from novamind.twin.adapters.migrate import upgrade_to_head
from novamind.twin.adapters.outbox import Outbox
from novamind.twin.adapters.store import ReadingStore
from novamind.twin.adapters.twin_store import TwinStore
from novamind.twin.config import TwinSettings


def new_patient(label: str = "patient") -> str:
    """A fresh pseudonym, so tests sharing a database or topic never see each other's patients."""
    return pseudonymise(f"{label}-{uuid.uuid4()}", "twin-tests")


def key_line(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


def consumer_record(
    value: bytes | None,
    key: bytes | None,
    *,
    topic: str = "device.readings.v1",
    offset: int = 0,
    headers: tuple[tuple[str, bytes], ...] = (),
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=headers,
    )


def proto_json(message: Message) -> bytes:
    return json_format.MessageToJson(message, indent=None).encode()


def minute_record(
    patient: str, start: datetime, counts: float, offset: int = 0
) -> ConsumerRecord[bytes, bytes]:
    """An activity-count reading of the minute from ``start`` with a fresh event id."""
    value = activity_count_point(str(uuid.uuid4()), patient, start, counts)
    return consumer_record(value, patient.encode(), offset=offset)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url"))


@dataclass
class Stores:
    """The twin's stores on one migrated database."""

    settings: TwinSettings
    engine: AsyncEngine
    cipher: EnvelopeCipher
    outbox: Outbox
    twins: TwinStore
    readings: ReadingStore
    requester: AnalysisRequester
    ledger: SqlIdempotencyLedger


def build_stores(settings: TwinSettings, engine: AsyncEngine) -> Stores:
    cipher = EnvelopeCipher(KeyRing.from_settings(settings))
    outbox = Outbox(cipher)
    twins = TwinStore(
        cipher,
        outbox,
        default_time_zone=settings.default_time_zone,
        max_attempts=settings.twin_write_max_attempts,
        backoff_seconds=settings.twin_write_backoff_seconds,
        max_backoff_seconds=settings.twin_write_max_backoff_seconds,
    )
    readings = ReadingStore(cipher)
    requester = AnalysisRequester(readings, outbox, min_days=settings.analysis_min_days)
    return Stores(settings, engine, cipher, outbox, twins, readings, requester, SqlIdempotencyLedger(engine))


@pytest_asyncio.fixture
async def stores(database_url: str) -> AsyncIterator[Stores]:
    settings = TwinSettings(database_url=database_url)
    await upgrade_to_head(settings)
    engine = make_engine(database_url)
    try:
        yield build_stores(settings, engine)
    finally:
        await engine.dispose()


def service_settings(database_url: str, **overrides: Any) -> TwinSettings:
    """Settings for a twin on loopback ports with fast consumer-group joins."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "grpc_host": "127.0.0.1",
        "grpc_port": free_port(),
        "http_host": "127.0.0.1",
        "http_port": free_port(),
        "consumer_group": f"twin-{uuid.uuid4().hex[:8]}",
        "symptoms_consumer_group": f"twin-symptoms-{uuid.uuid4().hex[:8]}",
        "analyses_consumer_group": f"twin-analyses-{uuid.uuid4().hex[:8]}",
        "consumer_session_timeout_ms": 2_000,
        "consumer_heartbeat_interval_ms": 300,
        "outbox_poll_seconds": 0.2,
        "environment": "test",
    }
    values.update(overrides)
    return TwinSettings(**values)
