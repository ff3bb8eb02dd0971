"""Settings of the gateway (``NOVAMIND_*`` environment variables)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from novamind.core.config import LOCAL_PORTS, ServiceSettings


class GatewaySettings(ServiceSettings):
    service_name: ClassVar[str] = "gateway"

    http_port: int = LOCAL_PORTS["gateway"][1]
    #: Deadline of one health check of one back-end service (seconds).
    health_check_timeout_seconds: float = Field(default=1.0, gt=0)
    #: Serve the GraphiQL IDE on GET /graphql; defaults to on in development only.
    graphiql: bool | None = None

    @property
    def graphiql_enabled(self) -> bool:
        return self.is_development if self.graphiql is None else self.graphiql
