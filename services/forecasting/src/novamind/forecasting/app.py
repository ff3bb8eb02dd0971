"""Composition root of the forecasting service: settings in, a runnable service out."""

from __future__ import annotations

from novamind.api.forecasting.v1 import forecasting_pb2, forecasting_pb2_grpc
from novamind.core.service import GrpcService, ServiceRuntime
from novamind.forecasting.adapters.grpc_api import ForecastingServicer
from novamind.forecasting.config import ForecastingSettings

SERVICE_NAME = forecasting_pb2.DESCRIPTOR.services_by_name["ForecastingService"].full_name


def build_runtime(settings: ForecastingSettings | None = None) -> ServiceRuntime:
    settings = settings or ForecastingSettings()
    servicer = ForecastingServicer()
    return ServiceRuntime(
        settings=settings,
        grpc_services=[
            GrpcService(
                SERVICE_NAME,
                lambda server: forecasting_pb2_grpc.add_ForecastingServiceServicer_to_server(
                    servicer, server
                ),
            )
        ],
    )
