"""The authorisation matrix of docs/authorization.md is the policy, and the gateway enforces it.

The table is parsed from the document. It must equal the policy module, and every role runs every
operation through the real GraphQL endpoint with a real token from the dev issuer against the
real twin, on a patient in its scope and on one outside it: allowed cells succeed (or fail for
reasons other than FORBIDDEN), denied ones answer FORBIDDEN, and each access leaves its audit
record.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from novamind.core.audit import audit_log
from novamind.gateway.domain.policy import POLICY, Access, Operation, Role

from .conftest import (
    GatewayClient,
    GatewayFactory,
    RunningTwin,
    Tokens,
    create_twin,
    error_codes,
    in_session_loop,
    new_identifier,
    pseudonym,
    wait_subscribed,
    ws_session,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "authorization.md"


def parse_matrix(text: str) -> dict[str, dict[str, str]]:
    """The markdown table whose header starts with ``| operation |`` and lists the roles."""
    lines = text.splitlines()
    start = next(
        i for i, line in enumerate(lines) if re.match(r"^\|\s*operation\s*\|\s*clinician\s*\|", line)
    )
    header = [cell.strip() for cell in lines[start].strip().strip("|").split("|")]
    roles = header[1:]
    matrix: dict[str, dict[str, str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        operation = cells[0].strip("`")
        matrix[operation] = dict(zip(roles, cells[1:], strict=True))
    return matrix


DOC_MATRIX = parse_matrix(DOC.read_text())


def test_the_documented_matrix_is_the_policy_module() -> None:
    code = {
        op.value: {role.value: access.value for role, access in row.items()} for op, row in POLICY.items()
    }
    assert code == DOC_MATRIX
    assert set(DOC_MATRIX) == {op.value for op in Operation}
    for row in DOC_MATRIX.values():
        assert set(row) == {role.value for role in Role}
        assert set(row.values()) <= {access.value for access in Access}


# ---- running every cell ---------------------------------------------------------------------------------


@dataclass
class Cell:
    allowed: bool
    request_id: str | None
    body: dict[str, Any]


Runner = Callable[[GatewayClient, str | None, str], Awaitable[Cell]]


async def _http(
    client: GatewayClient, token: str | None, query: str, variables: dict[str, Any], path: tuple[str, ...]
) -> Cell:
    response = await client.post(query, token=token, variables=variables)
    assert response.status_code == 200, response.text
    body = response.json()
    codes = error_codes(body)
    assert "UNAUTHENTICATED" not in codes.values(), body
    forbidden = codes.get(path) == "FORBIDDEN"
    if not forbidden:
        assert "FORBIDDEN" not in codes.values(), body
    return Cell(not forbidden, response.headers.get("x-request-id"), body)


def _read(field: str, selection: str) -> Runner:
    query = f"query($id: ID!) {{ patient(id: $id) {{ {field} {selection} }} }}"

    async def run(client: GatewayClient, token: str | None, patient: str) -> Cell:
        cell = await _http(client, token, query, {"id": patient}, ("patient", field.split("(")[0]))
        if cell.allowed:
            codes = error_codes(cell.body)
            # Allowed reads succeed, or fail only for missing data or down model services.
            assert set(codes.values()) <= {"NOT_FOUND", "VALIDATION_ERROR", "SERVICE_UNAVAILABLE"}, cell.body
        return cell

    return run


def _mutation(field: str, fields: str, selection: str) -> Runner:
    query = f"mutation($id: ID!) {{ {field}(input: {{patientId: $id, {fields}}}) {selection} }}"

    async def run(client: GatewayClient, token: str | None, patient: str) -> Cell:
        return await _http(client, token, query, {"id": patient}, (field,))

    return run


LIST_PATIENTS = """query($after: String) {
  patients(first: 100, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } }
}"""


async def _list_patients(client: GatewayClient, token: str | None, patient: str) -> Cell:
    """Allowed when the patient appears in the caller's listing (all pages)."""
    cell = await _http(client, token, LIST_PATIENTS, {}, ("patients",))
    if not cell.allowed:
        return cell
    first_page = cell
    listed: set[str] = set()
    while True:
        page = cell.body["data"]["patients"]
        listed |= {edge["node"]["id"] for edge in page["edges"]}
        if not page["pageInfo"]["hasNextPage"]:
            break
        cell = await _http(
            client, token, LIST_PATIENTS, {"after": page["pageInfo"]["endCursor"]}, ("patients",)
        )
    first_page.allowed = patient in listed
    return first_page


async def _service_health(client: GatewayClient, token: str | None, patient: str) -> Cell:
    return await _http(client, token, "{ serviceHealth { service status } }", {}, ("serviceHealth",))


RUNNERS: dict[Operation, Runner] = {
    Operation.LIST_PATIENTS: _list_patients,
    Operation.READ_TWIN: _read("twin", "{ version symptomHistory { total } }"),
    Operation.READ_HISTORY: _read("history(first: 5)", "{ versions { version changedSections } }"),
    Operation.READ_ACTIGRAPHY: _read("actigraphy", "{ latest { analysisId } }"),
    Operation.READ_FORECAST: _read("forecast(days: 7)", "{ forecasts { target } }"),
    Operation.READ_CORRELATIONS: _read("correlations", "{ testsPerformed }"),
    Operation.READ_MEDICATION_GUIDANCE: _read("medicationGuidance", "{ disclaimer }"),
    Operation.READ_INSIGHTS: _read("insights", "{ twinVersion sectionErrors { section code } }"),
    Operation.SUBMIT_SYMPTOM_REPORT: _mutation(
        "submitSymptomReport", "instrument: MOOD, moodRating: 6", "{ version }"
    ),
    Operation.RECORD_GENOTYPE: _mutation(
        "recordGenotype",
        'outsideCalls: [{gene: "CYP2D6", diplotype: "*1/*4", source: "lab"}]',
        "{ version genotype { genes { gene diplotype } } }",
    ),
    Operation.SET_MEDICATIONS: _mutation(
        "setMedications",
        'medications: [{name: "sertraline", dailyDose: {value: 50, unit: "mg"}}]',
        "{ version }",
    ),
    Operation.REQUEST_ANALYSIS: _mutation("requestActigraphyAnalysis", "modelSize: S", "{ requestEventId }"),
    Operation.READ_SERVICE_HEALTH: _service_health,
}

TWIN_UPDATED = "subscription($id: ID!) { twinUpdated(patientId: $id) { patientId version changedSections } }"


def expected_allowed(access: str, in_scope: bool) -> bool:
    return access == "any" or (access in ("assigned", "own") and in_scope)


async def audit_rows(client: GatewayClient, request_id: str) -> list[Any]:
    async with client.gateway.services.audit.engine.connect() as connection:
        result = await connection.execute(
            sa.select(audit_log).where(audit_log.c.request_id == request_id).order_by(audit_log.c.seq)
        )
        return list(result)


@pytest.fixture
def people(tokens: Tokens) -> dict[str, Any]:
    mine, other = new_identifier("mine"), new_identifier("other")
    return {
        "mine": mine,
        "other": other,
        "tokens": {
            Role.CLINICIAN: tokens.clinician([mine]),
            Role.PATIENT: tokens.patient(mine),
            Role.OPS: tokens.ops(),
            Role.SERVICE: tokens.service(),
            Role.ANONYMOUS: None,
        },
    }


@in_session_loop
async def test_every_role_runs_every_operation_as_the_matrix_says(
    twin: RunningTwin,
    gateway_factory: GatewayFactory,
    tokens: Tokens,
    people: dict[str, Any],
    kafka_bootstrap: str,
) -> None:
    async with gateway_factory(
        twin, kafka_bootstrap=kafka_bootstrap, twin_updates_topic=twin.topics.twin_updated
    ) as client:
        for identifier in (people["mine"], people["other"]):
            await create_twin(client, tokens.service(), identifier)
        targets = {True: pseudonym(people["mine"]), False: pseudonym(people["other"])}
        checked = 0
        for operation, runner in RUNNERS.items():
            for role, token in people["tokens"].items():
                access = DOC_MATRIX[operation.value][role.value]
                for in_scope, patient in targets.items():
                    cell = await runner(client, token, patient)
                    want = expected_allowed(access, in_scope)
                    assert cell.allowed is want, (operation, role, in_scope, cell.body)
                    assert cell.request_id is not None
                    rows = await audit_rows(client, cell.request_id)
                    if operation is Operation.READ_SERVICE_HEALTH:
                        assert rows == []
                        continue
                    if operation is Operation.LIST_PATIENTS:
                        assert [(r.action, r.patient) for r in rows] == [(operation.value, None)]
                        assert rows[0].outcome == ("denied" if access == "deny" else "allowed")
                        continue
                    assert [(r.action, r.patient) for r in rows] == [(operation.value, patient)], rows
                    assert (rows[0].outcome == "denied") is (not want)
                    assert rows[0].roles == f'["{role.value}"]'
                    checked += 1
        assert checked == (len(RUNNERS) - 2) * len(Role) * 2

        # subscribe_twin over WebSocket: an allowed subscriber receives the next change.
        for role, token in people["tokens"].items():
            access = DOC_MATRIX[Operation.SUBSCRIBE_TWIN.value][role.value]
            for in_scope, patient in targets.items():
                async with ws_session(client.ws_url, token=token) as session:
                    await session.subscribe("1", TWIN_UPDATED, {"id": patient})
                    if expected_allowed(access, in_scope):
                        await wait_subscribed(client, patient)
                        await create_twin(client, tokens.service(), patient)
                        message = await session.receive()
                        assert message["type"] == "next", (role, in_scope, message)
                        assert message["payload"]["data"]["twinUpdated"]["patientId"] == patient
                    else:
                        message = await session.receive()
                        assert message["type"] == "next", message
                        assert message["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN", (
                            role,
                            message,
                        )
                        assert message["payload"]["data"] is None


@in_session_loop
async def test_a_clinician_cannot_read_an_unassigned_patient_and_the_attempt_is_audited(
    gateway: GatewayClient, tokens: Tokens
) -> None:
    assigned, unassigned = new_identifier(), new_identifier()
    for identifier in (assigned, unassigned):
        await create_twin(gateway, tokens.service(), identifier)
    clinician = tokens.clinician([assigned], subject=f"clinician-{uuid.uuid4().hex[:6]}")
    query = "query($id: ID!) { patient(id: $id) { id twin { version } } }"

    body = await gateway.query(query, token=clinician, variables={"id": unassigned})
    assert body["data"]["patient"] == {"id": pseudonym(unassigned), "twin": None}
    assert error_codes(body) == {("patient", "twin"): "FORBIDDEN"}
    assert "only for assigned patients" in body["errors"][0]["message"]

    listed = await gateway.query("{ patients { edges { node { id } } } }", token=clinician)
    assert [e["node"]["id"] for e in listed["data"]["patients"]["edges"]] == [pseudonym(assigned)]

    async with gateway.gateway.services.audit.engine.connect() as connection:
        rows = list(
            await connection.execute(
                sa.select(audit_log.c.action, audit_log.c.patient, audit_log.c.outcome)
                .where(audit_log.c.actor == clinician_subject(clinician, tokens))
                .order_by(audit_log.c.seq)
            )
        )
    assert [tuple(r) for r in rows] == [
        ("read_twin", pseudonym(unassigned), "denied"),
        ("list_patients", None, "allowed"),
    ]


def clinician_subject(token: str, tokens: Tokens) -> str:
    import jwt

    return str(jwt.decode(token, options={"verify_signature": False})["sub"])
