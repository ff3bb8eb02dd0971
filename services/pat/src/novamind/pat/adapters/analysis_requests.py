"""Kafka face of the pat service: ``actigraphy.analysis.requested.v1`` in, ``…completed.v1`` out.

Each request is analysed exactly as ``ActigraphyService.Analyze`` would, and the result is
published with an event id derived from the request's (UUID 5), so a redelivered request yields
the same completed event and consumers downstream deduplicate it.
"""

from __future__ import annotations

import uuid
from typing import Any

from google.protobuf import json_format
from sqlalchemy.ext.asyncio import AsyncSession

from novamind.api.actigraphy.v1 import actigraphy_pb2
from novamind.api.common.v1 import common_pb2
from novamind.api.events.v1 import events_pb2
from novamind.core.errors import ValidationError
from novamind.core.kafka import ACTIGRAPHY_ANALYSIS_COMPLETED, DecodedEvent, EventProducer, parse_proto_event
from novamind.pat.adapters.grpc_api import ActigraphyServicer

_COMPLETED_NAMESPACE = uuid.UUID("6f1b8f0e-3c1d-4a43-9a53-2f4d1c7e9b10")


def decode_analysis_request(record: Any) -> DecodedEvent:
    """A record of ``actigraphy.analysis.requested.v1`` (JSON protobuf mapping) as an event.

    Raises ValidationError naming the problem for anything that is not such a request.
    """
    message = parse_proto_event(record, events_pb2.ActigraphyAnalysisRequested)
    if not message.patient.pseudonym:
        raise ValidationError("the request names no patient pseudonym", field="patient.pseudonym")
    return DecodedEvent.from_record(
        record, message, event_id=message.event_id, event_type=message.DESCRIPTOR.full_name
    )


class AnalysisRequestHandler:
    """Analyses a requested week and publishes the completed analysis."""

    def __init__(self, servicer: ActigraphyServicer, producer: EventProducer) -> None:
        self._servicer = servicer
        self._producer = producer

    async def __call__(self, event: DecodedEvent, session: AsyncSession) -> None:
        request: events_pb2.ActigraphyAnalysisRequested = event.payload
        include = (
            request.include
            if request.HasField("include")
            else actigraphy_pb2.AnalysisInclude(metrics=True, embedding=True)
        )
        analysis = await self._servicer.Analyze(
            actigraphy_pb2.AnalyzeRequest(
                patient=request.patient, week=request.week, model_size=request.model_size, include=include
            ),
            None,  # type: ignore[arg-type]  # no RPC context outside gRPC
        )
        week_end = common_pb2.TimeInterval(start=request.week.start)
        week_end.end.FromSeconds(request.week.start.seconds + 10_080 * 60)
        completed = events_pb2.ActigraphyAnalysisCompleted(
            event_id=str(uuid.uuid5(_COMPLETED_NAMESPACE, request.event_id)),
            occurred_at=analysis.analyzed_at,
            patient=request.patient,
            request_event_id=request.event_id,
            correlation_id=request.correlation_id,
            analysis_id=analysis.analysis_id,
            week=week_end,
            embedding=analysis.embedding,
            sleep=analysis.sleep,
            circadian=analysis.circadian,
            nights=analysis.nights,
            input_quality=analysis.input_quality,
            model=analysis.model,
        )
        await self._producer.send(
            ACTIGRAPHY_ANALYSIS_COMPLETED,
            key=request.patient.pseudonym,
            value=json_format.MessageToJson(completed, indent=None).encode(),
            event_id=completed.event_id,
            event_type=completed.DESCRIPTOR.full_name,
        )
