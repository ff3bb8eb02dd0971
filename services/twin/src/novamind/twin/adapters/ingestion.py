"""Kafka ingestion: device readings, symptom reports and completed actigraphy analyses.

Decoders turn records into validated events (malformed input raises ValidationError naming the
field, which the consumer runner dead-letters with the reason). Handlers run inside the runner's
idempotency transaction and write only through the session it hands over, so an event's effects,
its outbox events and the record of its event id commit together.

``device.readings.v1``: each reading is stored encrypted. Readings do **not** bump the twin
version one by one (a week is 10,080 of them); the twin is versioned with ``["readings"]`` when
its first reading creates it and when a reading completes a local day. The minute-level series
is made of 60-second ``activity-count`` epochs (see :mod:`novamind.twin.domain.readings`); a
reading of it that reaches local midnight of day D+1 completes day D (the newest complete day is
kept per patient in ``reading_progress`` and only moves forward, so a late reading for an older
day completes nothing). When a day completes and the trailing week (the 7 local days ending with
it) has at least ``analysis_min_days`` days with activity counts, an ActigraphyAnalysisRequested
for that week goes to the outbox with the event id ``uuid5(patient + week start)``, so a
redelivered reading never requests the same week twice. When a reading jumps several days ahead,
only the newest completed day requests an analysis.

``symptom.reports.v1``: a validated report (PHQ-9, GAD-7 or mood) is added to the twin state;
version with ``["symptoms"]``.

``actigraphy.analysis.completed.v1``: every completion is stored encrypted in ``analyses``; a
successful one becomes the twin's latest or previous analysis by the end of its week (an older
week arriving late does not replace a newer one) and bumps the version with ``["actigraphy"]``
when it changed either. A completion carrying an ``error`` is recorded without changing the twin.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from google.protobuf import json_format
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from novamind.api.common.v1 import common_pb2
from novamind.api.events.v1 import events_pb2
from novamind.api.twin.v1 import twin_pb2
from novamind.core.crypto import EnvelopeCipher
from novamind.core.errors import ValidationError
from novamind.core.kafka import DecodedEvent, parse_proto_event
from novamind.core.omh import parse_data_point
from novamind.core.privacy import is_pseudonym
from novamind.twin.adapters.analysis_requests import AnalysisRequester
from novamind.twin.adapters.outbox import on_commit
from novamind.twin.adapters.state import TwinState, utc
from novamind.twin.adapters.store import ReadingStore
from novamind.twin.adapters.tables import analyses
from novamind.twin.adapters.twin_store import Change, Mutation, TwinStore, insert_ignoring_duplicates
from novamind.twin.domain import sections
from novamind.twin.domain.analyses import WEEK, Placement, comparison_week, place_analysis
from novamind.twin.domain.readings import HEART_RATE, Reading, completed_through, is_minute_epoch
from novamind.twin.domain.symptoms import Instrument, score_report

# -- device.readings.v1 ----------------------------------------------------------------------


def decode_device_reading(record: Any) -> DecodedEvent:
    """A Kafka record of ``device.readings.v1`` as a decoded event (raises ValidationError).

    The key must be the patient's pseudonym; the event id is the data point's header uuid.
    """
    _require_pseudonym_key(record)
    if record.value is None:
        raise ValidationError("record has no value", field="value")
    point = parse_data_point(record.value)
    event = DecodedEvent.from_record(
        record, point, event_id=point.event_id, event_type=f"omh:{point.schema}:{point.schema_version}"
    )
    if point.user_id is not None and point.user_id != event.key:
        raise ValidationError("header.user_id does not match the record key", field="$.header.user_id")
    return event


@dataclass(frozen=True, slots=True)
class _KnownPatient:
    """What the readings handler remembers of a patient (values read from committed rows)."""

    time_zone: str
    zone: ZoneInfo
    newest_complete_day: date | None


class DeviceReadingHandler:
    """Stores readings and turns completed local days into analysis requests (see module doc).

    Per patient it remembers the time zone and the newest complete day it has seen committed, so
    a reading that completes nothing costs one insert; the cache is only a hint (the newest
    complete day only grows), and the conditional update in the database decides. Readings that
    share a transaction (the consumer runner's batch mode) first consult what that transaction
    saw or wrote; it reaches the cache only if the transaction commits, so a batch that rolls
    back and is applied again record by record leaves nothing of itself in the cache.
    """

    def __init__(
        self,
        twins: TwinStore,
        readings: ReadingStore,
        requester: AnalysisRequester,
        *,
        cache_size: int = 10_000,
    ) -> None:
        self._twins = twins
        self._readings = readings
        self._requester = requester
        self._cache_size = cache_size
        self._known: OrderedDict[str, _KnownPatient] = OrderedDict()
        #: Analysis requests queued since start (committed or not).
        self.requests_queued = 0

    async def __call__(self, event: DecodedEvent, session: AsyncSession) -> None:
        point = event.payload
        patient = event.key
        assert patient is not None  # guaranteed by decode_device_reading
        reading = Reading(
            event_id=event.event_id,
            patient=patient,
            schema=point.schema,
            start=point.start,
            end=point.end,
            value=point.value,
            unit=point.unit,
            at_rest=point.schema == HEART_RATE
            and point.body.get("temporal_relationship_to_physical_activity") == "at rest",
        )
        await self._readings.add(session, reading)
        known = _pending(session).get(patient) or self._known.get(patient)
        created = False
        if known is None:
            known, created = await self._load(session, patient, event.event_id)
        if reading.end is None or not is_minute_epoch(reading.schema, reading.start, reading.end):
            return
        day = completed_through(reading.end, known.zone)
        if known.newest_complete_day is not None and day <= known.newest_complete_day:
            return
        if not await self._readings.advance_complete_day(session, patient, day):
            newest = await self._readings.newest_complete_day(session, patient)
            self._remember_after_commit(session, patient, known, newest)
            return
        if not created:
            await self._twins.apply(
                session,
                patient,
                lambda _: Change((sections.READINGS,), {"completed_day": day.isoformat()}),
                cause_event_id=event.event_id,
            )
        queued = await self._requester.request_for_completed_day(
            session, patient, day, known.time_zone, cause_event_id=event.event_id
        )
        if queued is not None:
            self.requests_queued += 1
        self._remember_after_commit(session, patient, known, day)

    async def _load(self, session: AsyncSession, patient: str, event_id: str) -> tuple[_KnownPatient, bool]:
        """The patient's time zone and newest complete day; creates the twin at its first reading."""
        applied = await self._twins.apply(
            session,
            patient,
            lambda _: Change((sections.READINGS,), {"first_reading": event_id}),
            cause_event_id=event_id,
            only_if_absent=True,
        )
        assert applied.twin is not None
        time_zone = applied.twin.time_zone
        newest = await self._readings.newest_complete_day(session, patient)
        known = _KnownPatient(time_zone, ZoneInfo(time_zone), newest)
        self._remember_after_commit(session, patient, known, newest)
        return known, applied.changed

    def _remember_after_commit(
        self, session: AsyncSession, patient: str, known: _KnownPatient, newest: date | None
    ) -> None:
        """Cache what this transaction saw or wrote for ``patient`` once it commits (last call wins)."""
        pending = _pending(session)
        pending[patient] = _KnownPatient(known.time_zone, known.zone, newest)

        def remember() -> None:
            for name, value in pending.items():
                self._known[name] = value
                self._known.move_to_end(name)
            pending.clear()
            while len(self._known) > self._cache_size:
                self._known.popitem(last=False)

        on_commit(session, "readings-cache", remember)


def _pending(session: AsyncSession) -> dict[str, _KnownPatient]:
    """What ``session``'s open transaction saw or wrote per patient (cached when it commits)."""
    pending: dict[str, _KnownPatient] = session.info.setdefault("novamind_twin_readings_cache", {})
    return pending


# -- symptom.reports.v1 ----------------------------------------------------------------------


def instrument_of(value: common_pb2.SymptomInstrument.ValueType) -> Instrument | None:
    """The domain instrument for the wire enum (None for UNSPECIFIED or unknown values)."""
    return {
        common_pb2.SYMPTOM_INSTRUMENT_PHQ9: Instrument.PHQ9,
        common_pb2.SYMPTOM_INSTRUMENT_GAD7: Instrument.GAD7,
        common_pb2.SYMPTOM_INSTRUMENT_MOOD: Instrument.MOOD,
    }.get(value)


def decode_symptom_report(record: Any) -> DecodedEvent:
    """A record of ``symptom.reports.v1`` (protobuf JSON of SymptomReported) as an event whose
    payload is the :class:`twin_pb2.SymptomReport` to store. Raises ValidationError naming the field.
    """
    message = parse_proto_event(record, events_pb2.SymptomReported)
    patient = _event_patient(record, message.patient.pseudonym)
    if not message.HasField("reported_at"):
        raise ValidationError("reported_at is required", field="reported_at")
    total = score_report(
        instrument_of(message.instrument),
        list(message.item_responses),
        total=message.total if message.HasField("total") else None,
        rating_field="total",
    )
    report = twin_pb2.SymptomReport(
        report_id=message.event_id,
        instrument=message.instrument,
        item_responses=list(message.item_responses),
        total=total,
        reported_at=message.reported_at,
        source=message.source or "kafka",
    )
    event = DecodedEvent.from_record(
        record, report, event_id=message.event_id, event_type=message.DESCRIPTOR.full_name
    )
    return _with_key(event, patient)


def add_symptom_report(report: twin_pb2.SymptomReport) -> Mutation:
    """The mutation adding ``report`` (nothing when a report with its id is already stored)."""

    def mutate(state: TwinState) -> Change | None:
        if state.report(report.report_id) is not None:
            return None
        stored = twin_pb2.SymptomReport()
        stored.CopyFrom(report)
        state.add_report(stored)
        return Change(
            (sections.SYMPTOMS,),
            {"symptom_report": json_format.MessageToDict(report, preserving_proto_field_name=True)},
        )

    return mutate


class SymptomReportHandler:
    """Adds a reported symptom score to the twin."""

    def __init__(self, twins: TwinStore) -> None:
        self._twins = twins

    async def __call__(self, event: DecodedEvent, session: AsyncSession) -> None:
        assert event.key is not None
        await self._twins.apply(
            session, event.key, add_symptom_report(event.payload), cause_event_id=event.event_id
        )


# -- actigraphy.analysis.completed.v1 --------------------------------------------------------


def decode_analysis_completed(record: Any) -> DecodedEvent:
    """A record of ``actigraphy.analysis.completed.v1`` as an event (payload: the message).

    A successful completion needs its analysis id and the analysed week; raises ValidationError.
    """
    message = parse_proto_event(record, events_pb2.ActigraphyAnalysisCompleted)
    patient = _event_patient(record, message.patient.pseudonym)
    if not message.request_event_id:
        raise ValidationError("request_event_id is required", field="request_event_id")
    if not message.HasField("error"):
        if not message.analysis_id:
            raise ValidationError("analysis_id is required", field="analysis_id")
        if not (message.week.HasField("start") and message.week.HasField("end")):
            raise ValidationError("the analysed week needs a start and an end", field="week")
        if message.week.end.ToDatetime() <= message.week.start.ToDatetime():
            raise ValidationError("the analysed week ends before it starts", field="week")
    event = DecodedEvent.from_record(
        record, message, event_id=message.event_id, event_type=message.DESCRIPTOR.full_name
    )
    return _with_key(event, patient)


def actigraphy_summary(message: events_pb2.ActigraphyAnalysisCompleted) -> twin_pb2.ActigraphySummary:
    """The twin's summary of a successful completion."""
    summary = twin_pb2.ActigraphySummary(
        analysis_id=message.analysis_id,
        request_event_id=message.request_event_id,
        week=message.week,
        analyzed_at=message.occurred_at,
        sleep=message.sleep,
        circadian=message.circadian,
        nights=message.nights,
        input_quality=message.input_quality,
        model=message.model,
    )
    if message.HasField("embedding"):
        summary.embedding.CopyFrom(message.embedding)
    return summary


def _week_end(summary: twin_pb2.ActigraphySummary | None) -> datetime | None:
    return None if summary is None else summary.week.end.ToDatetime(tzinfo=UTC)


def place_summary(
    summary: twin_pb2.ActigraphySummary, earlier: twin_pb2.ActigraphySummary | None = None
) -> Mutation:
    """The mutation putting ``summary`` in the twin's latest or previous slot (or nowhere).

    ``earlier`` is the best comparison week for ``summary`` among the stored analyses; when
    ``summary`` becomes the latest, the previous is the best of it, the old latest and the old
    previous.
    """

    def mutate(state: TwinState) -> Change | None:
        week_end = summary.week.end.ToDatetime(tzinfo=UTC)
        placement = place_analysis(
            week_end, _week_end(state.latest_actigraphy), _week_end(state.previous_actigraphy)
        )
        if placement is Placement.IGNORED:
            return None
        if placement is Placement.SUPERSEDES_LATEST:
            candidates = [
                s for s in (state.latest_actigraphy, state.previous_actigraphy, earlier) if s is not None
            ]
            chosen = comparison_week(week_end, (_week_end(s) for s in candidates))
            state.previous_actigraphy = next((s for s in candidates if _week_end(s) == chosen), None)
            state.latest_actigraphy = summary
        elif placement is Placement.REPLACES_LATEST:
            state.latest_actigraphy = summary
        else:
            state.previous_actigraphy = summary
        return Change(
            (sections.ACTIGRAPHY,), {"analysis_id": summary.analysis_id, "placement": placement.value}
        )

    return mutate


class AnalysisCompletedHandler:
    """Stores a completed analysis and shows it in the twin when it is among the two newest weeks."""

    def __init__(self, twins: TwinStore, cipher: EnvelopeCipher) -> None:
        self._twins = twins
        self._cipher = cipher

    async def __call__(self, event: DecodedEvent, session: AsyncSession) -> None:
        message: events_pb2.ActigraphyAnalysisCompleted = event.payload
        patient = message.patient.pseudonym
        failed = message.HasField("error")
        summary = None if failed else actigraphy_summary(message)
        content: Message = message.error if failed else summary  # type: ignore[assignment]
        blob = self._cipher.encrypt(content.SerializeToString(), context=patient.encode())
        has_week = message.week.HasField("start") and message.week.HasField("end")
        await session.execute(
            insert_ignoring_duplicates(
                session,
                analyses,
                event_id=event.event_id,
                patient=patient,
                request_event_id=message.request_event_id,
                analysis_id=message.analysis_id,
                week_start=utc(message.week.start.ToDatetime(tzinfo=UTC)) if has_week else None,
                week_end=utc(message.week.end.ToDatetime(tzinfo=UTC)) if has_week else None,
                status="failed" if failed else "completed",
                error_code=message.error.code if failed else None,
                payload=blob,
                key_id=EnvelopeCipher.key_id_of(blob),
                recorded_at=datetime.now(UTC),
            )
        )
        if summary is not None:
            earlier = await self._comparison_candidate(session, patient, summary)
            await self._twins.apply(
                session, patient, place_summary(summary, earlier), cause_event_id=event.event_id
            )

    async def _comparison_candidate(
        self, session: AsyncSession, patient: str, summary: twin_pb2.ActigraphySummary
    ) -> twin_pb2.ActigraphySummary | None:
        """The stored analysis ``summary``'s week is best compared with (see domain.analyses)."""
        week_end = utc(summary.week.end.ToDatetime(tzinfo=UTC))
        completed = sa.and_(analyses.c.patient == patient, analyses.c.status == "completed")
        apart = (
            sa.select(analyses.c.payload)
            .where(completed, analyses.c.week_end <= week_end - WEEK)
            .order_by(analyses.c.week_end.desc())
            .limit(1)
        )
        oldest = (
            sa.select(analyses.c.payload)
            .where(completed, analyses.c.week_end < week_end)
            .order_by(analyses.c.week_end.asc())
            .limit(1)
        )
        payload = (await session.execute(apart)).scalar() or (await session.execute(oldest)).scalar()
        if payload is None:
            return None
        found = twin_pb2.ActigraphySummary()
        found.ParseFromString(self._cipher.decrypt(payload, context=patient.encode()))
        return found


# -- shared ----------------------------------------------------------------------------------


def _require_pseudonym_key(record: Any) -> str:
    if not record.key:
        raise ValidationError("record key (the patient pseudonym) is missing", field="key")
    key = record.key.decode("ascii", "replace")
    if not is_pseudonym(key):
        raise ValidationError("record key is not a patient pseudonym (pt_ + 20 hex digits)", field="key")
    return str(key)


def _event_patient(record: Any, pseudonym: str) -> str:
    if not is_pseudonym(pseudonym):
        raise ValidationError("patient.pseudonym is not a patient pseudonym", field="patient.pseudonym")
    if record.key and record.key.decode("ascii", "replace") != pseudonym:
        raise ValidationError("the record key does not match patient.pseudonym", field="key")
    return pseudonym


def _with_key(event: DecodedEvent, patient: str) -> DecodedEvent:
    if event.key == patient:
        return event
    return DecodedEvent(
        event_id=event.event_id,
        event_type=event.event_type,
        key=patient,
        payload=event.payload,
        headers=event.headers,
        topic=event.topic,
        partition=event.partition,
        offset=event.offset,
        timestamp_ms=event.timestamp_ms,
    )
