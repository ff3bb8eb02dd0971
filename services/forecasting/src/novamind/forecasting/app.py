"""Composition root of the forecasting service: settings in, a runnable service out."""

from __future__ import annotations

from novamind.api.forecasting.v1 import forecasting_pb2, forecasting_pb2_grpc
from novamind.core.resilience import CircuitBreakers
from novamind.core.rpc import ServiceClient, open_channel
from novamind.core.service import GrpcService, ServiceRuntime
from novamind.forecasting.adapters.grpc_api import ForecastingServicer, TwinHistory
from novamind.forecasting.adapters.model_holder import ModelHolder
from novamind.forecasting.config import ForecastingSettings

SERVICE_NAME = forecasting_pb2.DESCRIPTOR.services_by_name["ForecastingService"].full_name


def build_runtime(settings: ForecastingSettings | None = None) -> ServiceRuntime:
    settings = settings or ForecastingSettings()
    holder = ModelHolder(settings)
    channel = open_channel(settings.address_of("twin"), default_timeout=settings.twin_timeout_seconds)
    twin = TwinHistory(
        ServiceClient("twin", channel, breakers=CircuitBreakers()), settings.twin_timeout_seconds
    )
    servicer = ForecastingServicer(settings, holder, twin)

    async def close_channel() -> None:
        await channel.close()

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
        readiness_checks={"model": holder.check_ready},
        on_startup=[holder.start],
        on_shutdown=[close_channel],
    )
