"""The Novamind error taxonomy and its single mapping to gRPC, HTTP and GraphQL.

Every failure a caller can see is a :class:`NovamindError` subclass. Each class carries one
:class:`ErrorCode`; :data:`ERROR_MAPPINGS` is the only place that says which gRPC status, HTTP
status and GraphQL ``extensions.code`` that code becomes, and the adapters (gRPC interceptor,
HTTP middleware, GraphQL error formatter, Kafka DLQ headers) all read it.

Messages must never contain PHI: they name *what* was wrong (a field, a line, a limit), not the
patient's values.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import grpc


class ErrorCode(enum.StrEnum):
    """Stable, machine-readable error codes (also the GraphQL ``extensions.code``)."""

    VALIDATION_ERROR = "VALIDATION_ERROR"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    AUTHENTICATION_ERROR = "UNAUTHENTICATED"
    AUTHORIZATION_ERROR = "FORBIDDEN"
    RATE_LIMITED = "RATE_LIMITED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    MODEL_INFERENCE_ERROR = "MODEL_INFERENCE_ERROR"
    MODEL_NOT_READY = "MODEL_NOT_READY"
    DATA_PROCESSING_ERROR = "DATA_PROCESSING_ERROR"
    NOT_IMPLEMENTED = "NOT_IMPLEMENTED"
    INTERNAL_ERROR = "INTERNAL_SERVER_ERROR"


@dataclass(frozen=True, slots=True)
class ErrorMapping:
    """How one :class:`ErrorCode` appears on each protocol, and whether a retry may help."""

    grpc_status: grpc.StatusCode
    http_status: HTTPStatus
    graphql_code: str
    retryable: bool


#: The one mapping. Adapters must not invent their own.
ERROR_MAPPINGS: Mapping[ErrorCode, ErrorMapping] = {
    ErrorCode.VALIDATION_ERROR: ErrorMapping(
        grpc.StatusCode.INVALID_ARGUMENT, HTTPStatus.UNPROCESSABLE_ENTITY, "VALIDATION_ERROR", False
    ),
    ErrorCode.NOT_FOUND: ErrorMapping(grpc.StatusCode.NOT_FOUND, HTTPStatus.NOT_FOUND, "NOT_FOUND", False),
    ErrorCode.CONFLICT: ErrorMapping(grpc.StatusCode.ABORTED, HTTPStatus.CONFLICT, "CONFLICT", True),
    ErrorCode.AUTHENTICATION_ERROR: ErrorMapping(
        grpc.StatusCode.UNAUTHENTICATED, HTTPStatus.UNAUTHORIZED, "UNAUTHENTICATED", False
    ),
    ErrorCode.AUTHORIZATION_ERROR: ErrorMapping(
        grpc.StatusCode.PERMISSION_DENIED, HTTPStatus.FORBIDDEN, "FORBIDDEN", False
    ),
    ErrorCode.RATE_LIMITED: ErrorMapping(
        grpc.StatusCode.RESOURCE_EXHAUSTED, HTTPStatus.TOO_MANY_REQUESTS, "RATE_LIMITED", True
    ),
    ErrorCode.RESOURCE_EXHAUSTED: ErrorMapping(
        grpc.StatusCode.RESOURCE_EXHAUSTED, HTTPStatus.SERVICE_UNAVAILABLE, "RESOURCE_EXHAUSTED", True
    ),
    ErrorCode.DEADLINE_EXCEEDED: ErrorMapping(
        grpc.StatusCode.DEADLINE_EXCEEDED, HTTPStatus.GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED", True
    ),
    ErrorCode.SERVICE_UNAVAILABLE: ErrorMapping(
        grpc.StatusCode.UNAVAILABLE, HTTPStatus.SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", True
    ),
    ErrorCode.MODEL_INFERENCE_ERROR: ErrorMapping(
        grpc.StatusCode.INTERNAL, HTTPStatus.INTERNAL_SERVER_ERROR, "MODEL_INFERENCE_ERROR", False
    ),
    ErrorCode.MODEL_NOT_READY: ErrorMapping(
        grpc.StatusCode.FAILED_PRECONDITION, HTTPStatus.SERVICE_UNAVAILABLE, "MODEL_NOT_READY", False
    ),
    ErrorCode.DATA_PROCESSING_ERROR: ErrorMapping(
        grpc.StatusCode.INTERNAL, HTTPStatus.INTERNAL_SERVER_ERROR, "DATA_PROCESSING_ERROR", False
    ),
    ErrorCode.NOT_IMPLEMENTED: ErrorMapping(
        grpc.StatusCode.UNIMPLEMENTED, HTTPStatus.NOT_IMPLEMENTED, "NOT_IMPLEMENTED", False
    ),
    ErrorCode.INTERNAL_ERROR: ErrorMapping(
        grpc.StatusCode.INTERNAL, HTTPStatus.INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR", False
    ),
}

#: Reverse direction for errors that arrive from a peer as a bare gRPC status.
_CODE_BY_GRPC_STATUS: Mapping[grpc.StatusCode, ErrorCode] = {
    grpc.StatusCode.INVALID_ARGUMENT: ErrorCode.VALIDATION_ERROR,
    grpc.StatusCode.OUT_OF_RANGE: ErrorCode.VALIDATION_ERROR,
    grpc.StatusCode.NOT_FOUND: ErrorCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: ErrorCode.CONFLICT,
    grpc.StatusCode.ABORTED: ErrorCode.CONFLICT,
    grpc.StatusCode.UNAUTHENTICATED: ErrorCode.AUTHENTICATION_ERROR,
    grpc.StatusCode.PERMISSION_DENIED: ErrorCode.AUTHORIZATION_ERROR,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ErrorCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED: ErrorCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED: ErrorCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE: ErrorCode.SERVICE_UNAVAILABLE,
    grpc.StatusCode.FAILED_PRECONDITION: ErrorCode.MODEL_NOT_READY,
    grpc.StatusCode.UNIMPLEMENTED: ErrorCode.NOT_IMPLEMENTED,
}


@dataclass(eq=False)
class NovamindError(Exception):
    """Base of every error Novamind reports to a caller.

    ``message`` is shown to callers and written to logs: it must not contain PHI.
    ``field`` names the offending input (``"week.values[42]"``, ``"line 17"``) when there is one.
    ``service`` names the service that raised it, filled in by the adapter if left empty.
    """

    message: str
    field: str | None = None
    service: str | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    code = ErrorCode.INTERNAL_ERROR

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        return f"{self.code.value}: {self.message}{where}"

    @property
    def mapping(self) -> ErrorMapping:
        return ERROR_MAPPINGS[self.code]

    @property
    def retryable(self) -> bool:
        return self.mapping.retryable


class ValidationError(NovamindError):
    """Input failed validation; ``field`` says where. Never retried."""

    code = ErrorCode.VALIDATION_ERROR


class NotFoundError(NovamindError):
    """The thing asked for does not exist (or the caller may not know it exists)."""

    code = ErrorCode.NOT_FOUND


class ConflictError(NovamindError):
    """An optimistic-concurrency or uniqueness conflict; retrying with fresh state may succeed."""

    code = ErrorCode.CONFLICT


class AuthenticationError(NovamindError):
    """The caller's identity could not be established (missing, expired or invalid token)."""

    code = ErrorCode.AUTHENTICATION_ERROR


class AuthorizationError(NovamindError):
    """The caller is known but lacks the role or patient scope for the operation."""

    code = ErrorCode.AUTHORIZATION_ERROR


class RateLimitedError(NovamindError):
    """The caller exceeded its request rate."""

    code = ErrorCode.RATE_LIMITED


class ResourceExhaustedError(NovamindError):
    """A bounded queue or pool is full; back off and retry."""

    code = ErrorCode.RESOURCE_EXHAUSTED


class DeadlineExceededError(NovamindError):
    """The caller's deadline passed before the work finished."""

    code = ErrorCode.DEADLINE_EXCEEDED


class ServiceUnavailableError(NovamindError):
    """A dependency is down, unreachable, or its circuit breaker is open."""

    code = ErrorCode.SERVICE_UNAVAILABLE


class ModelInferenceError(NovamindError):
    """A model failed to produce a prediction for valid input."""

    code = ErrorCode.MODEL_INFERENCE_ERROR


class ModelNotReadyError(NovamindError):
    """The model's weights are missing or failed verification; the service is not ready."""

    code = ErrorCode.MODEL_NOT_READY


class DataProcessingError(NovamindError):
    """Processing of accepted data failed (a bug or corrupt stored state, not bad input)."""

    code = ErrorCode.DATA_PROCESSING_ERROR


class NotImplementedYetError(NovamindError):
    """The operation is part of the v1 contract but this build does not serve it."""

    code = ErrorCode.NOT_IMPLEMENTED


ERROR_CLASSES: Mapping[ErrorCode, type[NovamindError]] = {
    cls.code: cls
    for cls in (
        ValidationError,
        NotFoundError,
        ConflictError,
        AuthenticationError,
        AuthorizationError,
        RateLimitedError,
        ResourceExhaustedError,
        DeadlineExceededError,
        ServiceUnavailableError,
        ModelInferenceError,
        ModelNotReadyError,
        DataProcessingError,
        NotImplementedYetError,
        NovamindError,
    )
}


def error_for_code(code: ErrorCode | str, message: str, **kwargs: Any) -> NovamindError:
    """Build the taxonomy error for ``code`` (unknown codes become an internal error)."""
    try:
        code = ErrorCode(code)
    except ValueError:
        code = ErrorCode.INTERNAL_ERROR
    return ERROR_CLASSES[code](message, **kwargs)


def code_for_grpc_status(status: grpc.StatusCode) -> ErrorCode:
    """The taxonomy code for a bare gRPC status received from a peer."""
    return _CODE_BY_GRPC_STATUS.get(status, ErrorCode.INTERNAL_ERROR)
