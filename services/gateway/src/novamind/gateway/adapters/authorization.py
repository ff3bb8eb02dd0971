"""The one enforcement point: every field that touches patient data declares its operation.

:func:`guarded_field` makes a strawberry field whose resolver runs behind :class:`Guard`: the
policy decides first (denials are audited and raise FORBIDDEN before anything is fetched), then
the resolver runs, and the outcome (``allowed`` or ``error`` with its code) is audited before the
answer leaves. The operation is also stored in the field's metadata, where a test that walks the
schema checks that no patient-data field lacks one. A subscription resolver, which strawberry
cannot wrap in a field extension, calls :func:`guard_subscription` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.types import Info

from novamind.core.errors import NovamindError
from novamind.gateway.adapters.graphql_context import RequestContext
from novamind.gateway.domain.policy import Operation

#: Field metadata key holding a field's :class:`Operation`.
OPERATION_METADATA = "novamind.operation"
#: Field metadata key marking a field that only locates a patient (its sub-fields are guarded).
LOCATOR_METADATA = "novamind.locator"

PatientOf = Callable[[RequestContext, Any, Mapping[str, Any]], str | None]


def patient_of_source(context: RequestContext, source: Any, arguments: Mapping[str, Any]) -> str:
    """The patient of a field on ``Patient``: the parent's pseudonym."""
    return str(source.id)


def patient_of_input(context: RequestContext, source: Any, arguments: Mapping[str, Any]) -> str:
    """The patient named by a mutation's ``input.patientId`` (pseudonymised at the edge)."""
    return context.patient_pseudonym(str(arguments["input"].patient_id), field="input.patientId")


def no_patient(context: RequestContext, source: Any, arguments: Mapping[str, Any]) -> None:
    """Operations not about one patient (listing, service health)."""
    return None


def request_context(info: Info[Any, Any]) -> RequestContext:
    context = info.context
    if not isinstance(context, RequestContext):
        raise TypeError("the gateway schema runs with a RequestContext (see RequestScope)")
    return context


class Guard(FieldExtension):
    """Authorise, run and audit one field."""

    def __init__(self, operation: Operation, patient_of: PatientOf) -> None:
        self.operation = operation
        self.patient_of = patient_of

    async def resolve_async(self, next_: Any, source: Any, info: Info[Any, Any], **kwargs: Any) -> Any:
        context = request_context(info)
        patient = self.patient_of(context, source, kwargs)
        await context.deny_unless_allowed(self.operation, patient)
        # Nothing above suspends when access is allowed, so every field of a response reaches its
        # loader in the same tick and the loaders can batch.
        try:
            result = await next_(source, info, **kwargs)
        except NovamindError as exc:
            await self._audit(context, patient, "error", exc.code.value)
            raise
        except Exception:
            await self._audit(context, patient, "error", "INTERNAL_SERVER_ERROR")
            raise
        await self._audit(context, patient, "allowed")
        return result

    async def _audit(
        self, context: RequestContext, patient: str | None, outcome: str, detail: str = ""
    ) -> None:
        if self.operation.touches_patient_data:
            await context.audit(self.operation, patient, outcome, detail)


def guarded_field(
    operation: Operation,
    *,
    patient_of: PatientOf = patient_of_source,
    description: str | None = None,
) -> Any:
    """A strawberry field (decorator) enforced by :class:`Guard` for ``operation``."""
    return strawberry.field(
        description=description,
        extensions=[Guard(operation, patient_of)],
        metadata={OPERATION_METADATA: operation},
    )


def guarded_mutation(operation: Operation, *, description: str | None = None) -> Any:
    """A mutation (decorator) on the patient named by ``input.patientId``, enforced by :class:`Guard`."""
    return strawberry.mutation(
        description=description,
        extensions=[Guard(operation, patient_of_input)],
        metadata={OPERATION_METADATA: operation},
    )


async def guard_subscription(context: RequestContext, operation: Operation, patient: str) -> None:
    """Authorise and audit the start of a subscription (raises FORBIDDEN when refused)."""
    await context.deny_unless_allowed(operation, patient)
    await context.audit(operation, patient, "allowed")
