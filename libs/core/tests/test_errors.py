"""One mapping from the error taxonomy to gRPC, HTTP and GraphQL codes."""

from __future__ import annotations

from http import HTTPStatus

import grpc
import pytest

from novamind.core.errors import (
    ERROR_CLASSES,
    ERROR_MAPPINGS,
    AuthenticationError,
    AuthorizationError,
    DataProcessingError,
    ErrorCode,
    ModelInferenceError,
    ServiceUnavailableError,
    ValidationError,
    code_for_grpc_status,
    error_for_code,
)


def test_every_code_has_exactly_one_mapping_and_class() -> None:
    assert set(ERROR_MAPPINGS) == set(ErrorCode)
    assert set(ERROR_CLASSES) == set(ErrorCode)


@pytest.mark.parametrize(
    ("error", "grpc_status", "http_status", "graphql_code"),
    [
        (
            ValidationError("bad"),
            grpc.StatusCode.INVALID_ARGUMENT,
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        ),
        (
            ModelInferenceError("x"),
            grpc.StatusCode.INTERNAL,
            HTTPStatus.INTERNAL_SERVER_ERROR,
            "MODEL_INFERENCE_ERROR",
        ),
        (
            ServiceUnavailableError("x"),
            grpc.StatusCode.UNAVAILABLE,
            HTTPStatus.SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
        ),
        (
            DataProcessingError("x"),
            grpc.StatusCode.INTERNAL,
            HTTPStatus.INTERNAL_SERVER_ERROR,
            "DATA_PROCESSING_ERROR",
        ),
        (
            AuthenticationError("x"),
            grpc.StatusCode.UNAUTHENTICATED,
            HTTPStatus.UNAUTHORIZED,
            "UNAUTHENTICATED",
        ),
        (AuthorizationError("x"), grpc.StatusCode.PERMISSION_DENIED, HTTPStatus.FORBIDDEN, "FORBIDDEN"),
    ],
)
def test_seed_taxonomy_maps_to_each_protocol(
    error: Exception, grpc_status: grpc.StatusCode, http_status: HTTPStatus, graphql_code: str
) -> None:
    mapping = error.mapping  # type: ignore[attr-defined]
    assert (mapping.grpc_status, mapping.http_status, mapping.graphql_code) == (
        grpc_status,
        http_status,
        graphql_code,
    )


def test_only_transient_errors_are_retryable() -> None:
    assert ServiceUnavailableError("down").retryable
    assert not ValidationError("bad").retryable
    assert not AuthorizationError("no").retryable


def test_error_names_the_field_and_round_trips_through_its_code() -> None:
    error = ValidationError("timestamps are not monotonic", field="line 17")
    assert str(error) == "VALIDATION_ERROR: timestamps are not monotonic [line 17]"
    rebuilt = error_for_code(error.code.value, error.message, field=error.field)
    assert type(rebuilt) is ValidationError and rebuilt.field == "line 17"
    assert type(error_for_code("NO_SUCH_CODE", "x")).__name__ == "NovamindError"


def test_bare_grpc_statuses_from_peers_are_classified() -> None:
    assert code_for_grpc_status(grpc.StatusCode.UNAVAILABLE) is ErrorCode.SERVICE_UNAVAILABLE
    assert code_for_grpc_status(grpc.StatusCode.DEADLINE_EXCEEDED) is ErrorCode.DEADLINE_EXCEEDED
    assert code_for_grpc_status(grpc.StatusCode.DATA_LOSS) is ErrorCode.INTERNAL_ERROR
