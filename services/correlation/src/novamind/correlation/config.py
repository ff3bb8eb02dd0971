"""Settings of the correlation service (``NOVAMIND_*`` environment variables)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from novamind.core.config import LOCAL_PORTS, ServiceSettings


class CorrelationSettings(ServiceSettings):
    service_name: ClassVar[str] = "correlation"

    grpc_port: int = LOCAL_PORTS["correlation"][0]
    http_port: int = LOCAL_PORTS["correlation"][1]
    #: Smallest |coefficient| a correlation needs to be called significant (besides its q-value),
    #: when a request sets none (``NOVAMIND_CORRELATION_THRESHOLD``).
    correlation_threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    #: Longest common day grid of one request (days).
    correlation_max_days: int = Field(default=730, ge=14)
