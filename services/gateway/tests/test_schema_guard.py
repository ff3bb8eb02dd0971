"""No field that reaches patient data can forget its authorisation check."""

from __future__ import annotations

import re
from pathlib import Path

import strawberry

from novamind.gateway.adapters.authorization import LOCATOR_METADATA, OPERATION_METADATA, Guard, guarded_field
from novamind.gateway.adapters.graphql_schema import build_schema
from novamind.gateway.domain.policy import Operation

DOC = Path(__file__).resolve().parents[3] / "docs" / "authorization.md"
#: Types whose fields are entry points to patient data.
ENTRY_TYPES = ("Query", "Mutation", "Subscription", "Patient")
#: Fields that carry no patient data of their own.
NOT_DATA = {("Patient", "id")}


def unguarded_fields(schema: strawberry.Schema, entry_types: tuple[str, ...] = ENTRY_TYPES) -> list[str]:
    """``Type.field`` of every entry-point field without a declared operation and its guard."""
    problems: list[str] = []
    for type_name in entry_types:
        definition = schema.get_type_by_name(type_name)
        if definition is None:
            continue
        for field in definition.fields:  # type: ignore[union-attr]
            name = f"{type_name}.{field.name}"
            if (type_name, field.name) in NOT_DATA or field.metadata.get(LOCATOR_METADATA):
                continue
            operation = field.metadata.get(OPERATION_METADATA)
            if not isinstance(operation, Operation):
                problems.append(f"{name}: no declared operation")
                continue
            guards = [e for e in field.extensions if isinstance(e, Guard)]
            if type_name != "Subscription" and [g.operation for g in guards] != [operation]:
                problems.append(f"{name}: declared {operation.value} but not resolved behind its Guard")
    return problems


def test_every_patient_data_field_declares_its_operation_and_is_guarded() -> None:
    assert unguarded_fields(build_schema()) == []


def test_each_operation_is_served_by_the_fields_the_document_names() -> None:
    schema = build_schema()
    declared: dict[str, set[str]] = {}
    for type_name in ENTRY_TYPES:
        for field in schema.get_type_by_name(type_name).fields:  # type: ignore[union-attr]
            operation = field.metadata.get(OPERATION_METADATA)
            if operation is not None:
                graphql_name = schema.config.name_converter.get_graphql_name(field)
                declared.setdefault(operation.value, set()).add(f"{type_name}.{graphql_name}")
    assert declared == documented_fields()
    assert set(declared) == {op.value for op in Operation}


def documented_fields() -> dict[str, set[str]]:
    """The "Operations and GraphQL fields" table of docs/authorization.md."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^\|\s*operation\s*\|\s*GraphQL\s*\|", line))
    fields: dict[str, set[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        operation, graphql = (cell.strip().strip("`") for cell in line.strip().strip("|").split("|"))
        fields.setdefault(operation, set()).add(graphql)
    return fields


@strawberry.type(name="Patient")
class LeakyPatient:
    id: strawberry.ID

    @guarded_field(Operation.READ_TWIN)
    async def twin(self) -> int | None:
        return 1

    @strawberry.field
    async def leaky_notes(self) -> str:
        return "unguarded"

    @strawberry.field(metadata={OPERATION_METADATA: Operation.READ_FORECAST})
    async def declared_only(self) -> int:
        return 2


@strawberry.type(name="Query")
class LeakyQuery:
    @strawberry.field
    def patient(self, id: strawberry.ID) -> LeakyPatient:
        return LeakyPatient(id=id)


def test_the_walk_catches_a_field_that_forgot_its_guard() -> None:
    problems = unguarded_fields(strawberry.Schema(query=LeakyQuery))
    assert problems == [
        "Query.patient: no declared operation",
        "Patient.leaky_notes: no declared operation",
        "Patient.declared_only: declared read_forecast but not resolved behind its Guard",
    ]
