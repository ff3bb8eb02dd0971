"""gRPC server and client helpers: interceptors for deadlines, tracing, auth metadata and errors.

Server side, :class:`ServerInterceptor` wraps every unary handler so that:

* the caller's deadline becomes the active :mod:`~novamind.core.resilience` deadline;
* the W3C trace context in the metadata parents a server span;
* the ``authorization`` bearer token is checked by the configured :class:`Authenticator` and the
  resulting :class:`Principal` is available through :func:`current_principal`;
* a :class:`~novamind.core.errors.NovamindError` becomes the mapped gRPC status with a
  ``novamind.api.common.v1.ErrorDetail`` in the rich status details, and anything else becomes
  ``INTERNAL`` with no internals leaked;
* latency and outcome are counted in Prometheus.

Client side, :func:`open_channel` makes a channel whose interceptor propagates trace context,
the caller's authorization and request id, and caps every call's timeout at the active deadline;
:class:`ServiceClient` adds the circuit breaker, retries for idempotent calls, and turns gRPC
failures back into taxonomy errors.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import status_pb2
from grpc_status import rpc_status
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from prometheus_client import Counter, Histogram

from novamind.api.common.v1 import common_pb2
from novamind.core.errors import (
    DeadlineExceededError,
    ErrorCode,
    NotImplementedYetError,
    NovamindError,
    ServiceUnavailableError,
    code_for_grpc_status,
    error_for_code,
)
from novamind.core.logging import safe
from novamind.core.resilience import (
    CircuitBreakers,
    RetryPolicy,
    deadline_scope,
    effective_timeout,
    retry_async,
)
from novamind.core.telemetry import LATENCY_BUCKETS_SECONDS

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    _ServerInterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
    _ClientInterceptorBase = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
else:
    _ServerInterceptorBase = grpc.aio.ServerInterceptor
    _ClientInterceptorBase = grpc.aio.UnaryUnaryClientInterceptor

T = TypeVar("T")

REQUEST_ID_KEY = "x-request-id"
AUTHORIZATION_KEY = "authorization"

GRPC_SERVER_HANDLED = Counter(
    "novamind_grpc_server_handled_total", "RPCs completed by the server", ["service", "method", "code"]
)
GRPC_SERVER_SECONDS = Histogram(
    "novamind_grpc_server_handling_seconds",
    "Server-side RPC latency (seconds)",
    ["service", "method"],
    buckets=LATENCY_BUCKETS_SECONDS,
)
GRPC_CLIENT_HANDLED = Counter(
    "novamind_grpc_client_handled_total", "RPCs completed by clients", ["dependency", "method", "code"]
)
GRPC_CLIENT_SECONDS = Histogram(
    "novamind_grpc_client_handling_seconds",
    "Client-side RPC latency including retries (seconds)",
    ["dependency", "method"],
    buckets=LATENCY_BUCKETS_SECONDS,
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: subject pseudonym, roles and the patients it may access."""

    subject: str
    roles: frozenset[str] = frozenset()
    patient_scopes: frozenset[str] = frozenset()
    token: str = field(default="", repr=False)


class Authenticator(Protocol):
    """Verifies a bearer token; raises AuthenticationError when a required token is bad."""

    async def authenticate(self, token: str | None, method: str) -> Principal | None: ...


_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "novamind_principal", default=None
)
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("novamind_request_id", default=None)


def current_principal() -> Principal | None:
    """The caller of the RPC being served, if it presented a verified token."""
    return _principal.get()


def current_request_id() -> str | None:
    return _request_id.get()


def error_detail(error: NovamindError, service: str) -> common_pb2.ErrorDetail:
    """The wire form of a taxonomy error."""
    return common_pb2.ErrorDetail(
        code=error.code.value,
        message=error.message,
        service=error.service or service,
        field=error.field or "",
        retryable=error.retryable,
    )


def to_rpc_status(error: NovamindError, service: str) -> grpc.Status:
    """A gRPC status carrying ``error`` as an ErrorDetail in the rich status details."""
    detail = any_pb2.Any()
    detail.Pack(error_detail(error, service))
    grpc_code = error.mapping.grpc_status
    status = status_pb2.Status(code=grpc_code.value[0], message=str(error), details=[detail])
    return rpc_status.to_status(status)


def error_from_rpc(exc: grpc.aio.AioRpcError, dependency: str) -> NovamindError:
    """Rebuild the taxonomy error a peer sent, or classify a transport failure."""
    trailing: Any = exc.trailing_metadata() or ()
    raw = next((value for key, value in trailing if key == "grpc-status-details-bin"), None)
    if isinstance(raw, bytes):
        status = status_pb2.Status.FromString(raw)
        for any_detail in status.details:
            detail = common_pb2.ErrorDetail()
            if any_detail.Unpack(detail):
                return error_for_code(
                    detail.code,
                    detail.message,
                    field=detail.field or None,
                    service=detail.service or dependency,
                )
    code = code_for_grpc_status(exc.code())
    if code is ErrorCode.SERVICE_UNAVAILABLE:
        return ServiceUnavailableError("service unreachable", service=dependency)
    if code is ErrorCode.DEADLINE_EXCEEDED:
        return DeadlineExceededError("deadline exceeded waiting for the service", service=dependency)
    # A status without an ErrorDetail comes from outside the taxonomy (a proxy, a foreign server,
    # an unhandled exception): its text may carry internals or echoed input, so it is not passed on.
    return error_for_code(code, f"{dependency} answered {exc.code().name}", service=dependency)


class ServerInterceptor(_ServerInterceptorBase):
    """Deadline, tracing, authentication, error mapping and metrics for every unary RPC."""

    def __init__(self, service: str, authenticator: Authenticator | None = None) -> None:
        self._service = service
        self._authenticator = authenticator
        self._tracer = trace.get_tracer("novamind.core.rpc")

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: grpc answers UNIMPLEMENTED
            return handler  # type: ignore[return-value]
        method = handler_call_details.method
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, cast(Any, handler.unary_stream)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    @contextlib.contextmanager
    def _request_scope(self, context: grpc.aio.ServicerContext[Any, Any]) -> Iterator[dict[str, str]]:
        """Request id and caller's trace context active for the call; yields the text metadata."""
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        request_id_token = _request_id.set(metadata.get(REQUEST_ID_KEY) or uuid.uuid4().hex)
        otel_token = otel_context.attach(propagate.extract(metadata))
        try:
            yield metadata
        finally:
            otel_context.detach(otel_token)
            _request_id.reset(request_id_token)

    async def _authenticate(self, method: str, metadata: dict[str, str]) -> Principal | None:
        if self._authenticator is None:
            return None
        header = metadata.get(AUTHORIZATION_KEY, "")
        token = header[7:] if header.lower().startswith("bearer ") else None
        return await self._authenticator.authenticate(token, method)

    async def _fail(
        self, context: grpc.aio.ServicerContext[Any, Any], method: str, exc: BaseException
    ) -> None:
        if isinstance(exc, grpc.aio.AbortError):
            # The handler aborted with its own status (the health service's NOT_FOUND, say).
            raise exc
        if isinstance(exc, NovamindError):
            error = exc
        elif isinstance(exc, NotImplementedError):
            # The generated servicer base raises this for RPCs a service does not serve yet.
            error = NotImplementedYetError(f"{method} is in the v1 contract but not served by this build")
        else:
            log.exception("unhandled error in %s", safe(method))
            error = NovamindError("internal error", service=self._service)
        if error.service is None:
            error.service = self._service
        status = to_rpc_status(error, self._service)
        GRPC_SERVER_HANDLED.labels(self._service, method, status.code.name).inc()
        await context.abort(status.code, status.details, status.trailing_metadata)

    def _wrap_unary(self, method: str, inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            with self._request_scope(context) as metadata:
                try:
                    with (
                        self._tracer.start_as_current_span(method, kind=trace.SpanKind.SERVER),
                        deadline_scope(context.time_remaining()),
                    ):
                        principal_token = _principal.set(await self._authenticate(method, metadata))
                        try:
                            response = await inner(request, context)
                        finally:
                            _principal.reset(principal_token)
                    GRPC_SERVER_HANDLED.labels(self._service, method, "OK").inc()
                    return response
                except Exception as exc:
                    await self._fail(context, method, exc)
                finally:
                    GRPC_SERVER_SECONDS.labels(self._service, method).observe(time.perf_counter() - started)

        return handle

    def _wrap_stream(
        self, method: str, inner: Callable[..., AsyncIterator[Any]]
    ) -> Callable[..., AsyncIterator[Any]]:
        async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            with self._request_scope(context) as metadata:
                try:
                    principal_token = _principal.set(await self._authenticate(method, metadata))
                    try:
                        async for item in inner(request, context):
                            yield item
                    finally:
                        _principal.reset(principal_token)
                    GRPC_SERVER_HANDLED.labels(self._service, method, "OK").inc()
                except Exception as exc:
                    await self._fail(context, method, exc)

        return handle


class _ClientMetadataInterceptor(_ClientInterceptorBase):
    """Propagates trace context, authorization and request id; caps the timeout at the deadline."""

    def __init__(self, default_timeout: float) -> None:
        self._default_timeout = default_timeout

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = list(client_call_details.metadata or ())
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        metadata.extend(carrier.items())
        request_id = current_request_id()
        if request_id and not any(k == REQUEST_ID_KEY for k, _ in metadata):
            metadata.append((REQUEST_ID_KEY, request_id))
        principal = current_principal()
        if principal is not None and principal.token and not any(k == AUTHORIZATION_KEY for k, _ in metadata):
            metadata.append((AUTHORIZATION_KEY, f"Bearer {principal.token}"))
        timeout = effective_timeout(
            client_call_details.timeout if client_call_details.timeout is not None else self._default_timeout
        )
        if timeout is not None and timeout <= 0:
            raise DeadlineExceededError("deadline exceeded before calling the service")
        details = grpc.aio.ClientCallDetails(
            method=client_call_details.method,
            timeout=timeout,
            metadata=grpc.aio.Metadata(*metadata),
            credentials=client_call_details.credentials,
            wait_for_ready=client_call_details.wait_for_ready,
        )
        return await continuation(details, request)


#: Reconnect quickly after a peer restarts: dashboards and breakers notice within about a second.
CHANNEL_OPTIONS: Sequence[tuple[str, Any]] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.enable_retries", 0),
)


def open_channel(
    address: str, *, default_timeout: float = 5.0, max_message_bytes: int = 16 * 1024 * 1024
) -> grpc.aio.Channel:
    """An insecure loopback/cluster channel with Novamind's client interceptor."""
    options = [
        *CHANNEL_OPTIONS,
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    return grpc.aio.insecure_channel(
        address,
        options=options,
        interceptors=[_ClientMetadataInterceptor(default_timeout)],  # type: ignore[list-item]
    )


class ServiceClient:
    """Calls to one dependency through its circuit breaker, with retries for idempotent calls."""

    def __init__(
        self,
        dependency: str,
        channel: grpc.aio.Channel,
        *,
        breakers: CircuitBreakers,
        retry_policy: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.dependency = dependency
        self.channel = channel
        self._breakers = breakers
        self._retry_policy = retry_policy

    @property
    def breakers(self) -> CircuitBreakers:
        """The breakers this client calls through (shared by the clients of one process)."""
        return self._breakers

    async def call(
        self,
        method: Callable[..., Awaitable[T]],
        request: Any,
        *,
        timeout: float | None = None,
        idempotent: bool = True,
    ) -> T:
        """Call ``method`` (a stub's bound method) with ``request``.

        Raises the taxonomy error the peer returned, :class:`ServiceUnavailableError` when the
        peer is unreachable or its breaker is open, :class:`DeadlineExceededError` on timeout.
        """
        name = getattr(method, "_method", b"")
        method_name = name.decode() if isinstance(name, bytes) else str(name)
        started = time.perf_counter()
        outcome = "OK"

        async def attempt() -> T:
            try:
                return await method(request, timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                raise error_from_rpc(exc, self.dependency) from None

        async def through_breaker() -> T:
            return await self._breakers.call(self.dependency, attempt)

        try:
            if idempotent:
                return await retry_async(through_breaker, self._retry_policy)
            return await through_breaker()
        except NovamindError as exc:
            outcome = exc.code.value
            raise
        finally:
            GRPC_CLIENT_HANDLED.labels(self.dependency, method_name, outcome).inc()
            GRPC_CLIENT_SECONDS.labels(self.dependency, method_name).observe(time.perf_counter() - started)


__all__ = [
    "Authenticator",
    "Principal",
    "ServerInterceptor",
    "ServiceClient",
    "current_principal",
    "current_request_id",
    "error_detail",
    "error_from_rpc",
    "open_channel",
    "to_rpc_status",
]
