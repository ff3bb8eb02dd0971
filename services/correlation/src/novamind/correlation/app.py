"""Composition root of the correlation service: settings in, a runnable service out."""

from __future__ import annotations

from novamind.api.correlation.v1 import correlation_pb2, correlation_pb2_grpc
from novamind.core.service import GrpcService, ServiceRuntime
from novamind.correlation.adapters.grpc_api import CorrelationServicer
from novamind.correlation.config import CorrelationSettings

SERVICE_NAME = correlation_pb2.DESCRIPTOR.services_by_name["CorrelationService"].full_name


def build_runtime(settings: CorrelationSettings | None = None) -> ServiceRuntime:
    settings = settings or CorrelationSettings()
    servicer = CorrelationServicer(settings)
    return ServiceRuntime(
        settings=settings,
        grpc_services=[
            GrpcService(
                SERVICE_NAME,
                lambda server: correlation_pb2_grpc.add_CorrelationServiceServicer_to_server(
                    servicer, server
                ),
            )
        ],
    )
