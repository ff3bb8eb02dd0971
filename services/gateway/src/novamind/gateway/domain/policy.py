"""Who may do what to which patient: the gateway's authorisation policy.

The table :data:`POLICY` maps each operation and role to an :class:`Access` level. It is the code
form of the matrix in ``docs/authorization.md``; a test keeps the two identical. A caller with
several roles gets the widest access any of its roles grants. A caller without a verified token
has the ``anonymous`` role only.

Patient scopes come from the token: a clinician's ``patients`` claim lists the assigned patients,
a patient's names the patient's own record (its subject is the patient's pseudonym too).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from novamind.core.privacy import is_pseudonym


class Operation(enum.StrEnum):
    """Everything the gateway lets a caller do; also the ``action`` of its audit records."""

    LIST_PATIENTS = "list_patients"
    READ_TWIN = "read_twin"
    READ_HISTORY = "read_history"
    READ_ACTIGRAPHY = "read_actigraphy"
    READ_FORECAST = "read_forecast"
    READ_CORRELATIONS = "read_correlations"
    READ_MEDICATION_GUIDANCE = "read_medication_guidance"
    READ_INSIGHTS = "read_insights"
    SUBMIT_SYMPTOM_REPORT = "submit_symptom_report"
    RECORD_GENOTYPE = "record_genotype"
    SET_MEDICATIONS = "set_medications"
    REQUEST_ANALYSIS = "request_analysis"
    SUBSCRIBE_TWIN = "subscribe_twin"
    READ_SERVICE_HEALTH = "read_service_health"

    @property
    def touches_patient_data(self) -> bool:
        """Whether the operation reads or writes patient data (and is therefore audited)."""
        return self is not Operation.READ_SERVICE_HEALTH


class Role(enum.StrEnum):
    """The roles of the policy: the token roles plus ``anonymous`` for callers without a token."""

    CLINICIAN = "clinician"
    PATIENT = "patient"
    OPS = "ops"
    SERVICE = "service"
    ANONYMOUS = "anonymous"


class Access(enum.StrEnum):
    """How far a role's permission for an operation reaches (the matrix's cell values)."""

    DENY = "deny"
    ASSIGNED = "assigned"
    OWN = "own"
    ANY = "any"


#: Access levels from narrowest to widest; a caller with several roles gets the widest.
_WIDTH: Mapping[Access, int] = {Access.DENY: 0, Access.OWN: 1, Access.ASSIGNED: 2, Access.ANY: 3}

_D, _A, _O, _Y = Access.DENY, Access.ASSIGNED, Access.OWN, Access.ANY


def _row(
    clinician: Access, patient: Access, ops: Access, service: Access, anonymous: Access
) -> dict[Role, Access]:
    return {
        Role.CLINICIAN: clinician,
        Role.PATIENT: patient,
        Role.OPS: ops,
        Role.SERVICE: service,
        Role.ANONYMOUS: anonymous,
    }


#: The authorisation matrix (docs/authorization.md is its documented form).
POLICY: Mapping[Operation, Mapping[Role, Access]] = {
    #                                          clinician patient ops service anonymous
    Operation.LIST_PATIENTS: _row(_A, _O, _D, _Y, _D),
    Operation.READ_TWIN: _row(_A, _O, _D, _Y, _D),
    Operation.READ_HISTORY: _row(_A, _O, _D, _Y, _D),
    Operation.READ_ACTIGRAPHY: _row(_A, _O, _D, _Y, _D),
    Operation.READ_FORECAST: _row(_A, _D, _D, _Y, _D),
    Operation.READ_CORRELATIONS: _row(_A, _D, _D, _Y, _D),
    Operation.READ_MEDICATION_GUIDANCE: _row(_A, _D, _D, _Y, _D),
    Operation.READ_INSIGHTS: _row(_A, _D, _D, _Y, _D),
    Operation.SUBMIT_SYMPTOM_REPORT: _row(_A, _O, _D, _Y, _D),
    Operation.RECORD_GENOTYPE: _row(_A, _D, _D, _Y, _D),
    Operation.SET_MEDICATIONS: _row(_A, _D, _D, _Y, _D),
    Operation.REQUEST_ANALYSIS: _row(_A, _D, _D, _Y, _D),
    Operation.SUBSCRIBE_TWIN: _row(_A, _O, _D, _Y, _D),
    Operation.READ_SERVICE_HEALTH: _row(_Y, _Y, _Y, _Y, _Y),
}


class Caller(Protocol):
    """What the policy needs of an authenticated caller (``novamind.core.rpc.Principal`` fits)."""

    @property
    def subject(self) -> str: ...

    @property
    def roles(self) -> frozenset[str]: ...

    @property
    def patient_scopes(self) -> frozenset[str]: ...


def policy_roles(caller: Caller | None) -> tuple[Role, ...]:
    """The caller's roles the policy knows, sorted; ``(anonymous,)`` for no caller or no known role."""
    if caller is None:
        return (Role.ANONYMOUS,)
    known = sorted(Role(r) for r in caller.roles if r in _TOKEN_ROLES)
    return tuple(known) or (Role.ANONYMOUS,)


_TOKEN_ROLES = frozenset(r.value for r in Role if r is not Role.ANONYMOUS)


def access_of(operation: Operation, caller: Caller | None) -> Access:
    """The widest access any of the caller's roles has for ``operation``."""
    row = POLICY[operation]
    return max((row[role] for role in policy_roles(caller)), key=_WIDTH.__getitem__)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one authorisation check; ``reason`` is PHI-free (roles and rule names)."""

    allowed: bool
    access: Access
    reason: str


def _reaches(access: Access, caller: Caller | None, patient: str) -> bool:
    if access is Access.ANY:
        return True
    if caller is None or access is Access.DENY:
        return False
    if access is Access.OWN:
        return patient == caller.subject or patient in caller.patient_scopes
    return patient in caller.patient_scopes


def decide(operation: Operation, caller: Caller | None, patient: str | None) -> Decision:
    """Whether ``caller`` may perform ``operation`` on ``patient`` (a pseudonym, or None).

    ``patient`` is None for operations not about one patient (listing, service health): then
    only the role matters, and :func:`visible_patients` says which patients a listing may show.
    Roles are combined per patient: a caller that is a clinician and a patient may act on its
    assigned patients and on its own record.
    """
    roles = policy_roles(caller)
    row = POLICY[operation]
    granted = [row[role] for role in roles if row[role] is not Access.DENY]
    widest = max((row[role] for role in roles), key=_WIDTH.__getitem__)
    names = ", ".join(roles)
    if not granted:
        return Decision(False, Access.DENY, f"role {names} may not {operation.value}")
    if patient is None:
        return Decision(True, widest, f"role {names} may {operation.value}")
    for access in sorted(granted, key=_WIDTH.__getitem__, reverse=True):
        if _reaches(access, caller, patient):
            return Decision(True, access, f"role {names} may {operation.value} ({access.value})")
    rule = "assigned patients" if Access.ASSIGNED in granted else "its own record"
    return Decision(False, widest, f"role {names} may {operation.value} only for {rule}")


def visible_patients(operation: Operation, caller: Caller | None) -> frozenset[str] | None:
    """The patients a listing may show: ``None`` for every patient, else a set of pseudonyms.

    An empty set means none (a denied caller, or a clinician with no assigned patients).
    """
    roles = policy_roles(caller)
    row = POLICY[operation]
    granted = {row[role] for role in roles}
    if Access.ANY in granted:
        return None
    if caller is None:
        return frozenset()
    visible: set[str] = set()
    if Access.ASSIGNED in granted or Access.OWN in granted:
        visible |= caller.patient_scopes
    if Access.OWN in granted and is_pseudonym(caller.subject):
        visible.add(caller.subject)
    return frozenset(visible)


def matrix_rows() -> Iterable[tuple[Operation, Mapping[Role, Access]]]:
    """The policy table row by row, in declaration order."""
    return POLICY.items()
