"""Settings of the pat service (``NOVAMIND_*`` environment variables)."""

from __future__ import annotations

from typing import ClassVar

from novamind.core.config import LOCAL_PORTS, ServiceSettings


class ActigraphySettings(ServiceSettings):
    service_name: ClassVar[str] = "pat"

    grpc_port: int = LOCAL_PORTS["pat"][0]
    http_port: int = LOCAL_PORTS["pat"][1]
