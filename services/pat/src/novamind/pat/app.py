"""Composition root of the pat service: settings in, a runnable service out."""

from __future__ import annotations

from novamind.api.actigraphy.v1 import actigraphy_pb2, actigraphy_pb2_grpc
from novamind.core.service import GrpcService, ServiceRuntime
from novamind.pat.adapters.grpc_api import ActigraphyServicer
from novamind.pat.adapters.model_runtime import ModelHolder
from novamind.pat.config import ActigraphySettings

SERVICE_NAME = actigraphy_pb2.DESCRIPTOR.services_by_name["ActigraphyService"].full_name


def build_runtime(settings: ActigraphySettings | None = None) -> ServiceRuntime:
    settings = settings or ActigraphySettings()
    holder = ModelHolder(settings)
    servicer = ActigraphyServicer(holder)
    return ServiceRuntime(
        settings=settings,
        grpc_services=[
            GrpcService(
                SERVICE_NAME,
                lambda server: actigraphy_pb2_grpc.add_ActigraphyServiceServicer_to_server(servicer, server),
            )
        ],
        readiness_checks={"model": holder.readiness},
        on_startup=[holder.start],
        on_shutdown=[holder.close],
    )
