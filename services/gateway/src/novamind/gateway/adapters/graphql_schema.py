"""The GraphQL schema (strawberry-graphql).

Every field backed by a model service is nullable, so a failing service nulls only its section
(GraphQL spec, "Handling Field Errors").
"""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from novamind.gateway.adapters.graphql_errors import ErrorCodes
from novamind.gateway.adapters.health_checks import FleetHealthChecker
from novamind.gateway.domain.health import ServiceHealthReport
from novamind.gateway.domain.health import ServingStatus as DomainServingStatus

ServingStatus = strawberry.enum(
    DomainServingStatus,
    name="ServingStatus",
    description="gRPC health status of a service; UNREACHABLE when it gave no answer in time.",
)


@strawberry.type(description="Health of one back-end service, as its gRPC health service reports it.")
class ServiceHealth:
    service: str
    address: str
    status: ServingStatus
    serving: bool
    latency_ms: float = strawberry.field(description="Round trip of the health check, milliseconds.")
    detail: str | None

    @classmethod
    def from_report(cls, report: ServiceHealthReport) -> ServiceHealth:
        return cls(
            service=report.service,
            address=report.address,
            status=report.status,
            serving=report.serving,
            latency_ms=report.latency_ms,
            detail=report.detail,
        )


@strawberry.type
class Query:
    @strawberry.field(description="Health of every back-end service, checked now over gRPC.")
    async def service_health(self, info: Info) -> list[ServiceHealth]:
        checker: FleetHealthChecker = info.context["health"]
        return [ServiceHealth.from_report(r) for r in await checker.check_all()]


schema = strawberry.Schema(query=Query, extensions=[ErrorCodes])
