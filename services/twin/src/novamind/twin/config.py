"""Settings of the twin service (``NOVAMIND_*`` environment variables)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from novamind.core.config import LOCAL_PORTS, ServiceSettings


class TwinSettings(ServiceSettings):
    service_name: ClassVar[str] = "twin"

    grpc_port: int = LOCAL_PORTS["twin"][0]
    http_port: int = LOCAL_PORTS["twin"][1]
    #: Kafka consumer group of the twin's ingestion.
    consumer_group: str = "twin"
    #: Attempts for a transiently failing event before it is dead-lettered.
    event_max_attempts: int = Field(default=5, ge=1)
