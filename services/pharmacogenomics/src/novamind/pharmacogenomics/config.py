"""Settings of the pharmacogenomics service (``NOVAMIND_*`` environment variables)."""

from __future__ import annotations

from typing import ClassVar

from novamind.core.config import LOCAL_PORTS, ServiceSettings


class PharmacogenomicsSettings(ServiceSettings):
    service_name: ClassVar[str] = "pharmacogenomics"

    grpc_port: int = LOCAL_PORTS["pharmacogenomics"][0]
    http_port: int = LOCAL_PORTS["pharmacogenomics"][1]
