"""Requests for PAT analyses of a minute-level week (``actigraphy.analysis.requested.v1``).

A request is recorded in ``analysis_requests`` (its event id is the primary key) and written to
the outbox in the caller's transaction. Event ids are deterministic, so asking again is a no-op:
a request caused by a completed day is ``uuid5(patient + week start)``, one made through the API
with an idempotency key is ``uuid5(patient + key)``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession

from novamind.api.actigraphy.v1 import actigraphy_pb2
from novamind.api.common.v1 import common_pb2
from novamind.api.events.v1 import events_pb2
from novamind.core.kafka import ACTIGRAPHY_ANALYSIS_REQUESTED
from novamind.twin.adapters.outbox import Outbox
from novamind.twin.adapters.state import utc
from novamind.twin.adapters.store import ReadingStore
from novamind.twin.adapters.tables import analysis_requests
from novamind.twin.adapters.twin_store import insert_ignoring_duplicates
from novamind.twin.domain.readings import (
    COUNTS_PER_MINUTE,
    EPOCH_SECONDS,
    MINUTES_PER_WEEK,
    WEEK,
    MinuteWeek,
    days_with_data,
    minute_week,
    trailing_week_start,
)

#: Namespace of the request event ids.
REQUEST_NAMESPACE = uuid.UUID("c4b1d0a2-6e3f-4a8b-9d71-2f5e8c0b3a64")

ORIGIN_DAY_COMPLETED = "day_completed"
ORIGIN_API = "api"


def week_request_id(patient: str, week_start: datetime) -> str:
    """Event id of the day-completion request for the week starting at ``week_start``."""
    return str(uuid.uuid5(REQUEST_NAMESPACE, f"{patient}|week|{utc(week_start).isoformat()}"))


def api_request_id(patient: str, idempotency_key: str) -> str:
    """Event id of an API request made with ``idempotency_key``."""
    return str(uuid.uuid5(REQUEST_NAMESPACE, f"{patient}|api|{idempotency_key}"))


@dataclass(frozen=True, slots=True)
class QueuedRequest:
    """A recorded request; ``duplicate`` when it had been recorded before."""

    event_id: str
    week_start: datetime
    week_end: datetime
    minutes_present: int
    duplicate: bool = False


def week_series(week: MinuteWeek, time_zone: str) -> common_pb2.TimeSeries:
    """The wire form of a minute-level week (missing mask only when something is missing)."""
    start = Timestamp()
    start.FromDatetime(week.start)
    series = common_pb2.TimeSeries(
        start=start,
        step_seconds=EPOCH_SECONDS,
        values=week.values,
        unit=COUNTS_PER_MINUTE,
        time_zone=time_zone,
    )
    if any(week.missing):
        series.missing.extend(week.missing)
    return series


class AnalysisRequester:
    """Builds weeks from stored readings and queues analysis requests through the outbox."""

    def __init__(
        self,
        readings: ReadingStore,
        outbox_writer: Outbox,
        *,
        min_days: int = 3,
        topic: str = ACTIGRAPHY_ANALYSIS_REQUESTED,
    ) -> None:
        self.readings = readings
        self.outbox = outbox_writer
        self.min_days = min_days
        self._topic = topic

    async def stored_week(self, session: AsyncSession, patient: str, start: datetime) -> MinuteWeek:
        """The minute-level week from ``start`` built from the patient's stored readings."""
        samples = await self.readings.minute_samples(session, patient, start, start + WEEK)
        return minute_week(start, samples)

    async def request_for_completed_day(
        self, session: AsyncSession, patient: str, day: date, time_zone: str, *, cause_event_id: str
    ) -> QueuedRequest | None:
        """Queue the trailing week ending with local day ``day`` if it has enough days with data.

        Returns None when the week has fewer than ``min_days`` local days with activity counts, or
        when this week was already requested.
        """
        zone = ZoneInfo(time_zone)
        start = trailing_week_start(day, zone)
        starts = await self.readings.minute_epoch_starts(session, patient, start, start + WEEK)
        if len(days_with_data(starts, zone)) < self.min_days:
            return None
        week = await self.stored_week(session, patient, start)
        queued = await self.queue(
            session,
            patient,
            week_series(week, time_zone),
            event_id=week_request_id(patient, start),
            origin=ORIGIN_DAY_COMPLETED,
            cause_event_id=cause_event_id,
        )
        return None if queued.duplicate else queued

    async def queue(
        self,
        session: AsyncSession,
        patient: str,
        series: common_pb2.TimeSeries,
        *,
        event_id: str,
        origin: str,
        cause_event_id: str,
        model_size: actigraphy_pb2.PatModelSize.ValueType = actigraphy_pb2.PAT_MODEL_SIZE_UNSPECIFIED,
        correlation_id: str = "",
    ) -> QueuedRequest:
        """Record and publish (through the outbox) a request for ``series`` (10,080 minutes).

        A request whose ``event_id`` was recorded before is returned as it was, marked duplicate.
        """
        start = utc(series.start.ToDatetime(tzinfo=UTC))
        minutes_present = (
            MINUTES_PER_WEEK - sum(1 for missing in series.missing if missing)
            if len(series.missing)
            else MINUTES_PER_WEEK
        )
        result = await session.execute(
            insert_ignoring_duplicates(
                session,
                analysis_requests,
                event_id=event_id,
                patient=patient,
                week_start=start,
                week_end=start + WEEK,
                minutes_present=minutes_present,
                origin=origin,
                cause_event_id=cause_event_id,
                requested_at=datetime.now(UTC),
            )
        )
        if not getattr(result, "rowcount", 0):
            existing = await self.find(session, event_id)
            if existing is not None:
                return existing
        event = events_pb2.ActigraphyAnalysisRequested(
            event_id=event_id,
            patient=common_pb2.PatientRef(pseudonym=patient),
            week=series,
            model_size=model_size,
            correlation_id=correlation_id or event_id,
            causation_id=cause_event_id,
        )
        event.occurred_at.GetCurrentTime()
        await self.outbox.enqueue(session, self._topic, patient, event)
        return QueuedRequest(event_id, start, start + WEEK, minutes_present)

    async def find(self, session: AsyncSession, event_id: str) -> QueuedRequest | None:
        """The recorded request ``event_id`` (marked duplicate), if any."""
        row = (
            await session.execute(
                sa.select(analysis_requests).where(analysis_requests.c.event_id == event_id)
            )
        ).first()
        if row is None:
            return None
        return QueuedRequest(
            row.event_id, utc(row.week_start), utc(row.week_end), int(row.minutes_present), duplicate=True
        )
