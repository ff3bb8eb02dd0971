"""What a resolver can reach: the gateway's services, the caller, and per-request loaders.

Strawberry builds one :class:`ConnectionContext` per HTTP request or WebSocket connection. The
:class:`RequestScope` extension turns it into a fresh :class:`RequestContext` for every operation
(so two operations on one WebSocket never share loaders), authenticates the caller and charges the
operation to the caller's rate limit before anything executes.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension

from novamind.core.auth import bearer_token
from novamind.core.errors import AuthorizationError, NovamindError, ValidationError
from novamind.core.privacy import is_pseudonym
from novamind.core.rpc import Principal
from novamind.gateway.adapters.audit_trail import AuditTrail
from novamind.gateway.adapters.health_checks import FleetHealthChecker
from novamind.gateway.adapters.loaders import InsightsLoader, TwinLoader
from novamind.gateway.adapters.rate_limits import RequestRateLimiter
from novamind.gateway.adapters.twin_client import CallerMetadata, TwinClient
from novamind.gateway.adapters.twin_updates import TwinUpdatesHub
from novamind.gateway.config import GatewaySettings
from novamind.gateway.domain import policy
from novamind.gateway.domain.identifiers import edge_pseudonym
from novamind.gateway.domain.policy import Decision, Operation

log = logging.getLogger(__name__)

#: Acts for requests without a token when ``auth_required`` is off (development and tests only).
DEVELOPMENT_PRINCIPAL = Principal(subject="development", roles=frozenset({"service"}))

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class TokenVerifying(Protocol):
    """What the gateway needs of :class:`novamind.core.auth.TokenVerifier`."""

    async def verify(self, token: str) -> Principal: ...

    async def close(self) -> None: ...


@dataclass
class GatewayServices:
    """Process-wide collaborators, built once by the composition root."""

    settings: GatewaySettings
    health: FleetHealthChecker
    twin: TwinClient
    verifier: TokenVerifying
    audit: AuditTrail
    rate_limiter: RequestRateLimiter
    hub: TwinUpdatesHub | None = None

    @property
    def pseudonym_key(self) -> str:
        return self.settings.pseudonym_key.get_secret_value()

    async def authenticate(self, authorization: str | None) -> Principal | None:
        """The caller behind an ``Authorization`` header value; ``None`` when anonymous.

        Raises :class:`AuthenticationError` for a malformed header or a token that fails
        verification (the message names the failed check, never the token).
        """
        token = bearer_token(authorization)
        if token is None:
            return None if self.settings.auth_required else DEVELOPMENT_PRINCIPAL
        return await self.verifier.verify(token)


@dataclass
class ConnectionContext:
    """One HTTP request or one WebSocket connection."""

    services: GatewayServices
    request: Request | WebSocket | None = None
    response: Response | None = None
    #: The graphql-transport-ws ``connection_init`` payload (WebSocket only).
    connection_params: dict[str, Any] | None = None
    #: WebSocket only: the caller verified when the connection was initialised.
    principal: Principal | None = None
    authenticated: bool = False

    @property
    def client_address(self) -> str:
        client = self.request.client if self.request is not None else None
        return client.host if client is not None else "unknown"

    def authorization_header(self) -> str | None:
        """The bearer credentials: connection_init payload first, then the request header."""
        params = self.connection_params or {}
        for key in ("authorization", "Authorization"):
            value = params.get(key)
            if isinstance(value, str):
                return value
        if self.request is None:
            return None
        return self.request.headers.get("authorization")

    def incoming_request_id(self) -> str | None:
        if self.request is None:
            return None
        value = self.request.headers.get("x-request-id")
        return value if value and _REQUEST_ID.match(value) else None


@dataclass
class RequestContext:
    """One GraphQL operation: the caller, its request id and its loaders."""

    services: GatewayServices
    connection: ConnectionContext
    request_id: str
    principal: Principal | None = None
    _twins: TwinLoader | None = field(default=None, repr=False)
    _insights: InsightsLoader | None = field(default=None, repr=False)

    @classmethod
    def begin(cls, connection: ConnectionContext) -> RequestContext:
        request_id = connection.incoming_request_id() or uuid.uuid4().hex
        if isinstance(connection.response, Response):
            connection.response.headers["x-request-id"] = request_id
        return cls(connection.services, connection, request_id, principal=connection.principal)

    # ---- admission -----------------------------------------------------------------------

    @property
    def rate_limit_key(self) -> str:
        if self.principal is not None:
            return f"sub:{self.principal.subject}"
        return f"addr:{self.connection.client_address}"

    async def admit(self) -> None:
        """Authenticate (HTTP; WebSocket callers were verified at connection_init) and charge one
        operation to the caller's rate limit. Raises AuthenticationError or RateLimitedError."""
        if not self.connection.authenticated:
            self.principal = await self.services.authenticate(self.connection.authorization_header())
        await self.services.rate_limiter.check(self.rate_limit_key)

    # ---- loaders -------------------------------------------------------------------------

    @property
    def caller_metadata(self) -> CallerMetadata:
        token = self.principal.token if self.principal is not None else ""
        return CallerMetadata(token=token, request_id=self.request_id)

    @property
    def twins(self) -> TwinLoader:
        if self._twins is None:
            self._twins = TwinLoader(
                self.services.twin,
                self.caller_metadata,
                symptom_history_days=self.services.settings.symptom_history_max_days,
            )
        return self._twins

    @property
    def insights(self) -> InsightsLoader:
        if self._insights is None:
            self._insights = InsightsLoader.for_twin(self.services.twin, self.caller_metadata)
        return self._insights

    # ---- patients, authorisation and audit -----------------------------------------------

    def patient_pseudonym(self, identifier: str, *, field: str) -> str:
        """The pseudonym of a caller-supplied patient id (see :func:`edge_pseudonym`).

        Callers without a verified identity may name patients by pseudonym only, so the gateway
        is no pseudonymisation oracle for them.
        """
        if self.principal is None and not is_pseudonym(identifier.strip()):
            raise ValidationError("without a bearer token, patients are named by pseudonym only", field=field)
        return edge_pseudonym(identifier, self.services.pseudonym_key, field=field)

    def decide(self, operation: Operation, patient: str | None) -> Decision:
        return policy.decide(operation, self.principal, patient)

    async def audit(self, operation: Operation, patient: str | None, outcome: str, detail: str = "") -> None:
        """Append the audit record of one access (durable when this returns)."""
        await self.services.audit.record(
            self.principal, operation, patient, outcome, request_id=self.request_id, detail=detail
        )

    async def deny_unless_allowed(self, operation: Operation, patient: str | None) -> Decision:
        """Audit and raise :class:`AuthorizationError` when the policy refuses the access.

        Allowed accesses are audited by the caller once their outcome is known.
        """
        decision = self.decide(operation, patient)
        if not decision.allowed:
            await self.audit(operation, patient, "denied", decision.reason)
            hint = "; sign in with a bearer token" if self.principal is None else ""
            raise AuthorizationError(decision.reason + hint)
        return decision


class RequestScope(SchemaExtension):
    """Begins a :class:`RequestContext` per operation and admits its caller before anything runs.

    A refused caller (bad token, rate limit) gets its error as the operation's only error, in an
    ordinary GraphQL response (HTTP 200), and nothing is validated or executed.
    """

    async def on_operation(self) -> AsyncIterator[None]:
        connection = self.execution_context.context
        if isinstance(connection, ConnectionContext):
            context = RequestContext.begin(connection)
            self.execution_context.context = context
            try:
                await context.admit()
            except NovamindError as exc:
                log.info("operation refused: %s", exc.code.value)
                self.execution_context.pre_execution_errors = [GraphQLError(exc.message, original_error=exc)]
        yield


__all__ = ["DEVELOPMENT_PRINCIPAL", "ConnectionContext", "GatewayServices", "RequestContext", "RequestScope"]
