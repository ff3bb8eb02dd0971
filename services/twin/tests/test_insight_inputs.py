"""What GetInsights hands the orchestrator: the twin, the previous analysis, the trailing week
of stored counts and daily biometric series, built from the store on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from novamind.api.actigraphy.v1 import actigraphy_pb2
from novamind.api.common.v1 import common_pb2
from novamind.api.events.v1 import events_pb2
from novamind.devtools.readings import heart_rate_point, step_count_point
from novamind.twin.adapters.grpc_api import TwinServicer
from novamind.twin.adapters.ingestion import (
    AnalysisCompletedHandler,
    DeviceReadingHandler,
    decode_analysis_completed,
    decode_device_reading,
)
from novamind.twin.domain.readings import MINUTES_PER_WEEK, trailing_week_start

from .conftest import Stores, consumer_record, minute_record, new_patient, proto_json


async def test_insight_inputs_come_from_the_store(stores: Stores) -> None:
    patient = new_patient()
    handler = DeviceReadingHandler(stores.twins, stores.readings, stores.requester)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday, before = today - timedelta(days=1), today - timedelta(days=2)
    raws = [minute_record(patient, before + timedelta(hours=9, minutes=m), 10.0 * m) for m in range(3)]
    raws.append(minute_record(patient, yesterday + timedelta(hours=9), 99.0))  # completes the day before
    raws += [
        consumer_record(
            step_count_point(str(uuid.uuid4()), patient, yesterday + timedelta(hours=h), s), patient.encode()
        )
        for h, s in ((8, 1200), (17, 3400))
    ]
    raws += [
        consumer_record(
            heart_rate_point(str(uuid.uuid4()), patient, yesterday + timedelta(hours=h), bpm, at_rest=rest),
            patient.encode(),
        )
        for h, bpm, rest in ((7, 58.0, True), (12, 90.0, False))
    ]
    for offset, raw in enumerate(raws):
        event = decode_device_reading(raw)
        async with stores.ledger.claim(
            "twin", event.event_id, topic="t", partition=0, offset=offset
        ) as session:
            await handler(event, session)

    analyses = AnalysisCompletedHandler(stores.twins, stores.cipher)
    for weeks_ago, analysis_id in ((2, "older"), (1, "newer")):
        start = today - timedelta(days=7 * weeks_ago)
        message = events_pb2.ActigraphyAnalysisCompleted(
            event_id=str(uuid.uuid4()),
            patient=common_pb2.PatientRef(pseudonym=patient),
            request_event_id=str(uuid.uuid4()),
            analysis_id=analysis_id,
            nights=[
                actigraphy_pb2.NightSummary(
                    night_date=(start + timedelta(days=n)).date().isoformat(),
                    total_sleep_time_minutes=400 + n,
                )
                for n in range(2)
            ],
        )
        message.week.start.FromDatetime(start)
        message.week.end.FromDatetime(start + timedelta(days=7))
        event = decode_analysis_completed(consumer_record(proto_json(message), patient.encode(), topic="c"))
        async with AsyncSession(stores.engine) as session, session.begin():
            await analyses(event, session)

    servicer = TwinServicer(
        engine=stores.engine,
        twins=stores.twins,
        readings_store=stores.readings,
        requester=stores.requester,
        consumers=[],
        started_at=datetime.now(UTC),
    )
    inputs = await servicer.insight_inputs(patient, 30)

    assert inputs.twin.patient.pseudonym == patient and inputs.twin.latest_actigraphy.analysis_id == "newer"
    assert inputs.previous_actigraphy is not None and inputs.previous_actigraphy.analysis_id == "older"
    assert inputs.week is not None
    assert inputs.week.start.ToDatetime(tzinfo=UTC) == trailing_week_start(before.date(), UTC)
    assert len(inputs.week.values) == MINUTES_PER_WEEK and sum(not m for m in inputs.week.missing) == 3
    nine = MINUTES_PER_WEEK - 1440 + 9 * 60
    assert inputs.week.values[nine : nine + 3] == [0.0, 10.0, 20.0]
    series = {s.name: (s.unit, [(v.date, v.value) for v in s.values]) for s in inputs.daily_biometrics}
    day = yesterday.date().isoformat()
    newer_start = (today - timedelta(days=7)).date()
    assert series == {
        "steps": ("{steps}", [(day, 4600.0)]),
        "heart_rate": ("/min", [(day, 74.0)]),
        "resting_heart_rate": ("/min", [(day, 58.0)]),
        "total_sleep_time_minutes": (
            "min",
            [(newer_start.isoformat(), 400.0), ((newer_start + timedelta(days=1)).isoformat(), 401.0)],
        ),
    }
