"""The gateway's GraphQL schema: live service health and the one error mapping."""

from __future__ import annotations

from typing import ClassVar

import strawberry

from novamind.api.forecasting.v1 import forecasting_pb2, forecasting_pb2_grpc
from novamind.core.config import ServiceSettings
from novamind.core.errors import ServiceUnavailableError, ValidationError
from novamind.core.service import GrpcService, ServiceRuntime
from novamind.devtools.net import free_port
from novamind.devtools.pytest_plugin import running_service
from novamind.gateway.adapters.graphql_errors import ErrorCodes

from .conftest import GatewayFactory


class _BackendSettings(ServiceSettings):
    service_name: ClassVar[str] = "forecasting"


async def test_service_health_reports_a_live_backend_and_unreachable_ones(
    gateway_factory: GatewayFactory,
) -> None:
    backend = ServiceRuntime(
        settings=_BackendSettings(
            grpc_host="127.0.0.1", grpc_port=free_port(), http_host="127.0.0.1", http_port=free_port()
        ),
        grpc_services=[
            GrpcService(
                forecasting_pb2.DESCRIPTOR.services_by_name["ForecastingService"].full_name,
                lambda server: forecasting_pb2_grpc.add_ForecastingServiceServicer_to_server(
                    forecasting_pb2_grpc.ForecastingServiceServicer(), server
                ),
            )
        ],
    )
    async with (
        running_service(backend),
        gateway_factory(forecasting_address=f"127.0.0.1:{backend.settings.grpc_port}") as gateway,
    ):
        # Anonymous: service health needs no token.
        result = await gateway.query("{ serviceHealth { service status serving detail latencyMs } }")
    assert "errors" not in result, result
    by_name = {entry["service"]: entry for entry in result["data"]["serviceHealth"]}
    assert by_name["forecasting"]["status"] == "SERVING" and by_name["forecasting"]["serving"] is True
    assert by_name["correlation"]["status"] == "UNREACHABLE" and by_name["correlation"]["serving"] is False
    assert "UNAVAILABLE" in by_name["correlation"]["detail"]


@strawberry.type
class _Probe:
    @strawberry.field
    def bad_input(self) -> int | None:
        raise ValidationError("horizon above the maximum of 30 days", field="horizonDays")

    @strawberry.field
    def dead_service(self) -> int | None:
        raise ServiceUnavailableError("circuit breaker open", service="forecasting")

    @strawberry.field
    def bug(self) -> int | None:
        raise RuntimeError("patient Jane Doe broke the parser")

    @strawberry.field
    def fine(self) -> int:
        return 1


_probe_schema = strawberry.Schema(query=_Probe, extensions=[ErrorCodes])


async def test_errors_carry_mapped_codes_and_failed_fields_null_only_themselves() -> None:
    result = await _probe_schema.execute("{ badInput deadService bug fine }")
    assert result.data == {"badInput": None, "deadService": None, "bug": None, "fine": 1}
    errors = {tuple(e.path or ()): e for e in result.errors or []}
    assert errors[("badInput",)].extensions == {"code": "VALIDATION_ERROR", "field": "horizonDays"}
    assert errors[("deadService",)].extensions == {"code": "SERVICE_UNAVAILABLE", "service": "forecasting"}
    assert errors[("bug",)].extensions == {"code": "INTERNAL_SERVER_ERROR"}
    assert "Jane" not in errors[("bug",)].message


async def test_malformed_queries_are_validation_failures() -> None:
    result = await _probe_schema.execute("{ noSuchField }")
    assert result.errors is not None
    assert result.errors[0].extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}
