"""Settings of the correlation service (``NOVAMIND_*`` environment variables)."""

from __future__ import annotations

from typing import ClassVar

from novamind.core.config import LOCAL_PORTS, ServiceSettings


class CorrelationSettings(ServiceSettings):
    service_name: ClassVar[str] = "correlation"

    grpc_port: int = LOCAL_PORTS["correlation"][0]
    http_port: int = LOCAL_PORTS["correlation"][1]
