"""Kafka ingestion of ``device.readings.v1`` into the twin store.

Decoding turns a record into a validated :class:`~novamind.core.omh.DataPoint` (malformed input
raises ValidationError, which the consumer runner dead-letters with the reason); the handler
writes the reading inside the runner's idempotency transaction, so a reading and the record of
its event id become durable together.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from novamind.core.errors import ValidationError
from novamind.core.kafka import DecodedEvent
from novamind.core.omh import parse_data_point
from novamind.core.privacy import is_pseudonym
from novamind.twin.adapters import store
from novamind.twin.domain.readings import Reading


def decode_device_reading(record: Any) -> DecodedEvent:
    """A Kafka record of ``device.readings.v1`` as a decoded event (raises ValidationError).

    The key must be the patient's pseudonym; the event id is the data point's header uuid.
    """
    if not record.key:
        raise ValidationError("record key (the patient pseudonym) is missing", field="key")
    if not is_pseudonym(record.key.decode("ascii", "replace")):
        raise ValidationError("record key is not a patient pseudonym (pt_ + 20 hex digits)", field="key")
    if record.value is None:
        raise ValidationError("record has no value", field="value")
    point = parse_data_point(record.value)
    event = DecodedEvent.from_record(
        record, point, event_id=point.event_id, event_type=f"omh:{point.schema}:{point.schema_version}"
    )
    if point.user_id is not None and point.user_id != event.key:
        raise ValidationError("header.user_id does not match the record key", field="$.header.user_id")
    return event


async def apply_device_reading(event: DecodedEvent, session: AsyncSession) -> None:
    """Store the reading of ``event`` in the caller's transaction."""
    point = event.payload
    assert event.key is not None  # guaranteed by decode_device_reading
    await store.add_reading(
        session,
        Reading(
            event_id=event.event_id,
            patient=event.key,
            schema=point.schema,
            start=point.start,
            end=point.end,
            value=point.value,
            unit=point.unit,
        ),
    )
