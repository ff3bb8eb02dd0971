"""The gRPC face of the twin (``novamind.api.twin.v1.TwinService``).

RPCs not overridden here answer NOT_IMPLEMENTED with an ErrorDetail through the core interceptor.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncEngine

from novamind.api.twin.v1 import twin_pb2, twin_pb2_grpc
from novamind.core.kafka import ConsumerRunner
from novamind.twin.adapters import store


class TwinServicer(twin_pb2_grpc.TwinServiceServicer):
    """Serves ``TwinService``."""

    def __init__(
        self, engine: AsyncEngine, consumers: Sequence[ConsumerRunner], started_at: datetime
    ) -> None:
        self._engine = engine
        self._consumers = consumers
        self._started_at = started_at

    async def GetIngestionStats(
        self, request: twin_pb2.GetIngestionStatsRequest, context: grpc.aio.ServicerContext
    ) -> twin_pb2.GetIngestionStatsResponse:
        patient = request.patient.pseudonym if request.HasField("patient") else None
        stats = await store.ingestion_stats(self._engine, patient)
        since = Timestamp()
        since.FromDatetime(self._started_at)
        topics = []
        for consumer in self._consumers:
            counts = consumer.stats
            # Each runner consumes one topic, so its counts are that topic's.
            topics.extend(
                twin_pb2.TopicIngestionStats(
                    topic=topic,
                    received=counts.settled,
                    applied=counts.applied,
                    duplicates=counts.duplicate,
                    dead_lettered=counts.dead_lettered,
                    retried=counts.retries,
                )
                for topic in consumer.topics
            )
        return twin_pb2.GetIngestionStatsResponse(
            topics=topics, readings_applied=stats.readings, distinct_events=stats.readings, since=since
        )
