"""Device readings: decoding names what is wrong; applying stores exactly once; completed local
days request PAT analyses, one per day, never twice. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord
from google.protobuf import json_format
from sqlalchemy.ext.asyncio import AsyncSession

from novamind.api.events.v1 import events_pb2
from novamind.core.errors import ValidationError
from novamind.core.kafka import DecodedEvent, DuplicateEvent
from novamind.core.privacy import pseudonymise
from novamind.twin.adapters import store, tables
from novamind.twin.adapters.analysis_requests import AnalysisRequester, week_request_id
from novamind.twin.adapters.ingestion import DeviceReadingHandler, decode_device_reading
from novamind.twin.adapters.twin_store import TwinStore
from novamind.twin.domain.readings import MINUTES_PER_WEEK, trailing_week_start

from .conftest import Stores, consumer_record, minute_record, new_patient

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
    return consumer_record(value, key, offset=offset)


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


def handler_for(stores: Stores, time_zone: str = "UTC", min_days: int = 3) -> DeviceReadingHandler:
    twins = TwinStore(stores.cipher, stores.outbox, default_time_zone=time_zone)
    requester = AnalysisRequester(stores.readings, stores.outbox, min_days=min_days)
    return DeviceReadingHandler(twins, stores.readings, requester)


async def deliver(stores: Stores, handler: DeviceReadingHandler, event: DecodedEvent) -> bool:
    """Apply ``event`` the way the consumer runner does; False when the ledger dropped it."""
    try:
        async with stores.ledger.claim(
            "twin", event.event_id, topic=event.topic, partition=0, offset=event.offset
        ) as session:
            await handler(event, session)
    except DuplicateEvent:
        return False
    return True


async def test_readings_are_stored_once_with_their_ledger_entry(stores: Stores) -> None:
    handler = handler_for(stores)
    patient = new_patient()
    event = decode_device_reading(
        record(json.dumps(heart_rate(str(uuid.uuid4()), user_id=patient)).encode(), key=patient.encode())
    )
    assert await deliver(stores, handler, event)
    assert not await deliver(stores, handler, event)
    stats = await store.ingestion_stats(stores.engine, patient)
    assert (stats.readings, stats.patients) == (1, 1)
    assert (await store.ingestion_stats(stores.engine, pseudonymise("nobody", "k"))).readings == 0
    async with AsyncSession(stores.engine) as session:
        twin = await stores.twins.get(session, patient)
        samples = await stores.readings.samples(
            session, patient, "heart-rate", datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC)
        )
    assert twin is not None and twin.version == 1  # created by its first reading
    assert samples == [(datetime(2026, 6, 1, 8, tzinfo=UTC), 64.0)]


async def requested_weeks(stores: Stores, patient: str) -> list[events_pb2.ActigraphyAnalysisRequested]:
    async with stores.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(tables.outbox.c.payload)
                .where(
                    tables.outbox.c.key == patient,
                    tables.outbox.c.event_type == "novamind.api.events.v1.ActigraphyAnalysisRequested",
                )
                .order_by(tables.outbox.c.id)
            )
        ).all()
    requests = []
    for row in rows:
        message = events_pb2.ActigraphyAnalysisRequested()
        json_format.Parse(stores.cipher.decrypt(row.payload, context=patient.encode()), message)
        requests.append(message)
    return requests


async def test_each_completed_local_day_requests_its_trailing_week_once(stores: Stores) -> None:
    """Six local days (Europe/Berlin) with ten minutes of counts at noon: the first reading of a
    day completes the day before; from the third day with data on, each completed day requests
    the week ending with it. Redelivered or re-sent readings request nothing again."""
    zone_name = "Europe/Berlin"
    zone = ZoneInfo(zone_name)
    handler = handler_for(stores, zone_name)
    patient = new_patient()
    first_day = date(2026, 3, 23)  # the week spans the change to summer time on 29 March
    events = []
    for day_index in range(6):
        noon = datetime.combine(first_day + timedelta(days=day_index), datetime.min.time(), zone) + timedelta(
            hours=12
        )
        for minute in range(10):
            raw = minute_record(patient, noon.astimezone(UTC) + timedelta(minutes=minute), 100 + minute)
            events.append(decode_device_reading(raw))
    for event in events:
        assert await deliver(stores, handler, event)

    requests = await requested_weeks(stores, patient)
    completed = [first_day + timedelta(days=i) for i in (2, 3, 4)]
    assert [r.week.start.ToDatetime(tzinfo=UTC) for r in requests] == [
        trailing_week_start(day, zone) for day in completed
    ]
    for request, day in zip(requests, completed, strict=True):
        start = trailing_week_start(day, zone)
        assert request.event_id == week_request_id(patient, start)
        assert request.patient.pseudonym == patient
        assert len(request.week.values) == len(request.week.missing) == MINUTES_PER_WEEK
        assert (request.week.step_seconds, request.week.unit, request.week.time_zone) == (
            60,
            "{counts}/min",
            zone_name,
        )
        days_with_data = (day - first_day).days + 1
        assert sum(not m for m in request.week.missing) == 10 * days_with_data
        noon_index = int(
            (
                datetime.combine(first_day, datetime.min.time(), zone) + timedelta(hours=12) - start
            ).total_seconds()
            // 60
        )
        if noon_index >= 0:
            assert request.week.values[noon_index : noon_index + 10] == [100.0 + m for m in range(10)]

    async with AsyncSession(stores.engine) as session:
        history = await stores.twins.versions(session, patient, before=None, limit=20)
        newest = await stores.readings.newest_complete_day(session, patient)
    # Version 1: created by the first reading; then one version per completed day (days 1-5).
    assert [sections for _, _, sections, _ in history] == [["readings"]] * 6
    assert newest == first_day + timedelta(days=4)

    # The runner's redelivery is dropped by the ledger; a device re-sending a reading under a new
    # event id completes nothing (the newest complete day only moves forward).
    assert not any([await deliver(stores, handler, event) for event in events])
    fresh = handler_for(stores, zone_name)  # a restarted process: nothing cached
    for event in events[-10:-9] + events[20:21]:
        resent = decode_device_reading(
            minute_record(patient, event.payload.start, event.payload.value, offset=99)
        )
        assert await deliver(stores, fresh, resent)
    assert len(await requested_weeks(stores, patient)) == 3
    async with AsyncSession(stores.engine) as session, session.begin():
        again = await stores.requester.request_for_completed_day(
            session, patient, completed[0], zone_name, cause_event_id="again"
        )
    assert again is None
    assert len(await requested_weeks(stores, patient)) == 3


async def test_a_reading_at_local_midnight_completes_the_day_before(stores: Stores) -> None:
    handler = handler_for(stores, min_days=1)
    patient = new_patient()
    day = date(2026, 4, 6)
    last_minute = datetime(2026, 4, 6, 23, 59, tzinfo=UTC)
    assert await deliver(
        stores, handler, decode_device_reading(minute_record(patient, last_minute - timedelta(hours=1), 5))
    )
    assert await requested_weeks(stores, patient) == []
    assert await deliver(stores, handler, decode_device_reading(minute_record(patient, last_minute, 7)))
    requests = await requested_weeks(stores, patient)
    assert [r.week.start.ToDatetime(tzinfo=UTC) for r in requests] == [trailing_week_start(day, UTC)]
    assert requests[0].week.values[-1] == 7.0 and not requests[0].week.missing[-1]
