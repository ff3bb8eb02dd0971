"""Composition root of the gateway: settings in, a runnable service out."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from novamind.core.config import BACKEND_SERVICES
from novamind.core.service import ServiceRuntime
from novamind.gateway.adapters.graphql_schema import schema
from novamind.gateway.adapters.health_checks import FleetHealthChecker
from novamind.gateway.config import GatewaySettings


class _GatewayGraphQL(GraphQL):  # type: ignore[type-arg]
    """Strawberry's ASGI app with the gateway's per-request context."""

    def __init__(self, health: FleetHealthChecker, *, graphiql: bool) -> None:
        super().__init__(schema, graphql_ide="graphiql" if graphiql else None)
        self._health = health

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> dict[str, Any]:
        return {"request": request, "response": response, "health": self._health}


def build_runtime(settings: GatewaySettings | None = None) -> ServiceRuntime:
    settings = settings or GatewaySettings()
    health = FleetHealthChecker(
        {name: settings.address_of(name) for name in BACKEND_SERVICES},
        timeout=settings.health_check_timeout_seconds,
    )
    graphql_app = _GatewayGraphQL(health, graphiql=settings.graphiql_enabled)

    async def root(_: Request) -> Response:
        return RedirectResponse("/graphql")

    routes: list[BaseRoute] = [
        Route("/graphql", graphql_app, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql_app),
        Route("/", root),
    ]
    return ServiceRuntime(settings=settings, http_routes=routes, on_shutdown=[health.close])
