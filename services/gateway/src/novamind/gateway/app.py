"""Composition root of the gateway: settings in, a runnable service out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import strawberry
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from novamind.core.auth import TokenVerifier
from novamind.core.config import BACKEND_SERVICES
from novamind.core.db import make_engine
from novamind.core.errors import NovamindError
from novamind.core.resilience import CircuitBreakers
from novamind.core.service import ReadinessCheck, ServiceRuntime
from novamind.gateway.adapters.audit_trail import AuditTrail
from novamind.gateway.adapters.graphql_context import ConnectionContext, GatewayServices
from novamind.gateway.adapters.graphql_schema import build_schema
from novamind.gateway.adapters.health_checks import FleetHealthChecker
from novamind.gateway.adapters.migrate import upgrade_to_head
from novamind.gateway.adapters.rate_limits import RequestRateLimiter
from novamind.gateway.adapters.twin_client import TwinClient
from novamind.gateway.adapters.twin_updates import TwinUpdatesHub
from novamind.gateway.config import GatewaySettings


class GatewayGraphQL(GraphQL[ConnectionContext, None]):
    """Strawberry's ASGI app with the gateway's context and WebSocket authentication.

    WebSocket clients speak graphql-transport-ws and authenticate once, with
    ``{"authorization": "Bearer ..."}`` in the ``connection_init`` payload or the upgrade request's
    ``Authorization`` header; a bad token closes the connection with 4403.
    """

    def __init__(self, schema: strawberry.Schema, services: GatewayServices) -> None:
        settings = services.settings
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=settings.subscription_init_timeout_seconds),
        )
        self.services = services

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> ConnectionContext:
        return ConnectionContext(
            self.services, request=request, response=response if isinstance(response, Response) else None
        )

    async def on_ws_connect(self, context: ConnectionContext) -> None:
        try:
            context.principal = await self.services.authenticate(context.authorization_header())
        except NovamindError as exc:
            raise ConnectionRejectionError() from exc
        context.authenticated = True


@dataclass(frozen=True)
class Gateway:
    """A built gateway: the runtime to run and the parts tests and operations look at."""

    runtime: ServiceRuntime
    services: GatewayServices
    schema: strawberry.Schema


def build_gateway(settings: GatewaySettings | None = None) -> Gateway:
    """Wire the gateway from ``settings``: schema, twin client, auth, audit, limits, subscriptions."""
    settings = settings or GatewaySettings()
    health = FleetHealthChecker(
        {name: settings.address_of(name) for name in BACKEND_SERVICES},
        timeout=settings.health_check_timeout_seconds,
    )
    breakers = CircuitBreakers(
        failure_threshold=settings.breaker_failure_threshold,
        recovery_seconds=settings.breaker_recovery_seconds,
    )
    twin = TwinClient(
        settings.address_of("twin"),
        breakers=breakers,
        timeout=settings.twin_timeout_seconds,
        insights_deadline=settings.insights_deadline_seconds,
        max_message_bytes=settings.max_message_bytes,
    )
    verifier = TokenVerifier.from_settings(settings)
    audit = AuditTrail(make_engine(settings.sqlalchemy_url("gateway")))
    rate_limiter = RequestRateLimiter(
        settings.rate_limit, redis_url=settings.redis_url, namespace=settings.rate_limit_namespace
    )
    hub = (
        TwinUpdatesHub(
            settings.kafka_bootstrap,
            settings.twin_updates_topic,
            queue_size=settings.subscription_queue_size,
            client_id=f"{settings.kafka_client_id_prefix}-gateway-subscriptions",
        )
        if settings.kafka_bootstrap
        else None
    )
    services = GatewayServices(
        settings=settings,
        health=health,
        twin=twin,
        verifier=verifier,
        audit=audit,
        rate_limiter=rate_limiter,
        hub=hub,
    )
    schema = build_schema(settings)
    graphql_app = GatewayGraphQL(schema, services)

    async def root(_: Request) -> Response:
        return RedirectResponse("/graphql")

    routes: list[BaseRoute] = [
        Route("/graphql", graphql_app, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql_app),
        Route("/", root),
    ]

    async def start() -> None:
        if settings.migrate_on_start_enabled:
            await upgrade_to_head(settings)
        await audit.start()

    async def close() -> None:
        await health.close()
        await twin.close()
        await verifier.close()
        await audit.close()

    readiness: dict[str, ReadinessCheck] = {"audit_database": audit.ping}
    if settings.redis_url:
        readiness["rate_limit_storage"] = rate_limiter.ping
    if hub is not None:
        readiness["twin_updates"] = hub.ping
    runtime = ServiceRuntime(
        settings=settings,
        http_routes=routes,
        readiness_checks=readiness,
        consumers=[hub] if hub is not None else [],
        on_startup=[start],
        on_shutdown=[close],
    )
    return Gateway(runtime=runtime, services=services, schema=schema)


def build_runtime(settings: GatewaySettings | None = None) -> ServiceRuntime:
    """The gateway's runtime (``novamind-gateway serve``)."""
    return build_gateway(settings).runtime
