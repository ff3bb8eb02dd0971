"""GraphQL errors carry ``extensions.code`` from the core error mapping, and nothing internal.

A resolver raising a :class:`~novamind.core.errors.NovamindError` yields an error whose
``extensions`` hold the mapped ``code`` plus the ``service`` and ``field`` it names, and the
PHI-free details listed in :data:`EXTENSION_DETAILS` (a failed insight section's ``section`` and
``retryable``, a rate limit's ``retryAfter`` seconds). Any other exception is masked as
``INTERNAL_SERVER_ERROR`` (its message might carry internals or PHI). Errors GraphQL itself raises
(syntax, validation) get ``GRAPHQL_VALIDATION_FAILED`` unless they carry their own code (a query
over the cost limit says ``QUERY_TOO_COMPLEX``).
"""

from __future__ import annotations

import logging

import strawberry
from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.types import ExecutionContext

from novamind.core.errors import ERROR_MAPPINGS, ErrorCode, NovamindError
from novamind.core.logging import safe

log = logging.getLogger(__name__)

GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"

#: ``NovamindError.details`` keys copied into ``extensions``; all of them are PHI-free by construction.
EXTENSION_DETAILS = ("section", "retryable", "retryAfter")


def _is_unexpected(error: GraphQLError) -> bool:
    return error.original_error is not None and not isinstance(error.original_error, NovamindError)


class ErrorCodes(MaskErrors):
    """Strawberry schema extension applying the one error mapping to every GraphQL error."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message="internal error")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {"code": ERROR_MAPPINGS[ErrorCode.INTERNAL_ERROR].graphql_code}
        return masked

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        processed = super()._process_errors(errors)
        for error in processed:
            original = error.original_error
            extensions = dict(error.extensions or {})
            if isinstance(original, NovamindError):
                extensions["code"] = original.mapping.graphql_code
                if original.service:
                    extensions["service"] = original.service
                if original.field:
                    extensions["field"] = original.field
                for key in EXTENSION_DETAILS:
                    if key in original.details:
                        extensions[key] = original.details[key]
            extensions.setdefault("code", GRAPHQL_VALIDATION_FAILED)
            error.extensions = extensions
        return processed


class GatewaySchema(strawberry.Schema):
    """The schema, logging expected errors as what they are.

    A request that fails for a reason the taxonomy names (a section whose service is down, a
    refused access, bad input) is part of normal operation: one INFO line with the code and the
    service, no traceback. Anything else is logged as strawberry does, at ERROR with its traceback.
    """

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        unexpected = []
        for error in errors:
            original = error.original_error
            if isinstance(original, NovamindError) and original.code is not ErrorCode.INTERNAL_ERROR:
                log.info(
                    "graphql field failed: %s from %s",
                    safe(original.code.value),
                    safe(original.service or "gateway"),
                )
            elif original is None:
                log.info("graphql request rejected: %s", safe(GRAPHQL_VALIDATION_FAILED))
            else:
                unexpected.append(error)
        super().process_errors(unexpected, execution_context)
