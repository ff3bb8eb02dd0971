"""Composition root of the pharmacogenomics service: settings in, a runnable service out."""

from __future__ import annotations

from novamind.api.pharmacogenomics.v1 import pharmacogenomics_pb2, pharmacogenomics_pb2_grpc
from novamind.core.service import GrpcService, ServiceRuntime
from novamind.pharmacogenomics.adapters.grpc_api import PharmacogenomicsServicer
from novamind.pharmacogenomics.config import PharmacogenomicsSettings

SERVICE_NAME = pharmacogenomics_pb2.DESCRIPTOR.services_by_name["PharmacogenomicsService"].full_name


def build_runtime(settings: PharmacogenomicsSettings | None = None) -> ServiceRuntime:
    settings = settings or PharmacogenomicsSettings()
    servicer = PharmacogenomicsServicer()
    return ServiceRuntime(
        settings=settings,
        grpc_services=[
            GrpcService(
                SERVICE_NAME,
                lambda server: pharmacogenomics_pb2_grpc.add_PharmacogenomicsServiceServicer_to_server(
                    servicer, server
                ),
            )
        ],
    )
