"""Settings of the forecasting service (``NOVAMIND_*`` environment variables)."""

from __future__ import annotations

from typing import ClassVar

from novamind.core.config import LOCAL_PORTS, ServiceSettings


class ForecastingSettings(ServiceSettings):
    service_name: ClassVar[str] = "forecasting"

    grpc_port: int = LOCAL_PORTS["forecasting"][0]
    http_port: int = LOCAL_PORTS["forecasting"][1]
