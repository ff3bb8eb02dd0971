"""The authorisation policy as plain values: roles, scopes, combined roles and listings."""

from __future__ import annotations

from dataclasses import dataclass, field

from novamind.core.privacy import pseudonymise
from novamind.gateway.domain.policy import (
    Access,
    Operation,
    access_of,
    decide,
    policy_roles,
    visible_patients,
)

MINE = pseudonymise("mrn-1", "k")
OTHER = pseudonymise("mrn-2", "k")


@dataclass(frozen=True)
class Caller:
    subject: str
    roles: frozenset[str]
    patient_scopes: frozenset[str] = field(default_factory=frozenset)


def clinician(*patients: str) -> Caller:
    return Caller("dr-1", frozenset({"clinician"}), frozenset(patients))


def test_a_clinician_acts_on_assigned_patients_only() -> None:
    assert decide(Operation.READ_FORECAST, clinician(MINE), MINE).allowed
    refused = decide(Operation.READ_FORECAST, clinician(MINE), OTHER)
    assert not refused.allowed
    assert refused.reason == "role clinician may read_forecast only for assigned patients"
    assert OTHER not in refused.reason and MINE not in refused.reason


def test_a_patient_reads_its_own_twin_but_not_model_outputs() -> None:
    me = Caller(MINE, frozenset({"patient"}), frozenset({MINE}))
    assert decide(Operation.READ_TWIN, me, MINE).allowed
    assert decide(Operation.SUBMIT_SYMPTOM_REPORT, me, MINE).allowed
    assert not decide(Operation.READ_TWIN, me, OTHER).allowed
    assert not decide(Operation.READ_INSIGHTS, me, MINE).allowed
    # Its own record is its subject even when the token lists no patients.
    assert decide(Operation.READ_HISTORY, Caller(MINE, frozenset({"patient"})), MINE).allowed


def test_roles_combine_per_patient() -> None:
    both = Caller(MINE, frozenset({"patient", "clinician"}), frozenset({OTHER}))
    assert decide(Operation.READ_FORECAST, both, OTHER).allowed  # as clinician
    assert decide(Operation.READ_TWIN, both, MINE).allowed  # as patient (own record)
    assert not decide(Operation.READ_FORECAST, both, MINE).allowed  # neither role allows it
    assert access_of(Operation.READ_FORECAST, both) is Access.ASSIGNED


def test_ops_anonymous_and_unknown_roles_see_no_patient_data_but_service_health() -> None:
    ops = Caller("ops-1", frozenset({"ops"}))
    stranger = Caller("x", frozenset({"auditor"}))
    assert policy_roles(stranger) == ("anonymous",)
    for caller in (ops, stranger, None):
        assert not decide(Operation.READ_TWIN, caller, MINE).allowed
        assert decide(Operation.READ_SERVICE_HEALTH, caller, None).allowed
    assert decide(Operation.SET_MEDICATIONS, Caller("sync", frozenset({"service"})), OTHER).allowed


def test_listings_are_restricted_to_the_callers_scope() -> None:
    assert visible_patients(Operation.LIST_PATIENTS, Caller("svc", frozenset({"service"}))) is None
    assert visible_patients(Operation.LIST_PATIENTS, clinician(MINE, OTHER)) == frozenset({MINE, OTHER})
    assert visible_patients(Operation.LIST_PATIENTS, clinician()) == frozenset()
    assert visible_patients(Operation.LIST_PATIENTS, Caller(MINE, frozenset({"patient"}))) == frozenset(
        {MINE}
    )
    assert visible_patients(Operation.LIST_PATIENTS, Caller("ops", frozenset({"ops"}))) == frozenset()
    assert visible_patients(Operation.LIST_PATIENTS, None) == frozenset()
