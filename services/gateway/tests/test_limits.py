"""Depth, alias, token and cost limits refuse a document before anything runs."""

from __future__ import annotations

import sqlalchemy as sa
from graphql import parse

from novamind.core.audit import audit_log
from novamind.gateway.adapters.graphql_limits import operation_costs
from novamind.gateway.adapters.graphql_schema import build_schema
from novamind.gateway.domain.cost import FIELD_COSTS

from .conftest import GatewayFactory, Tokens

INSIGHTS_PAGE = """
query($n: Int!) { patients(first: $n) { ...Page } }
fragment Page on PatientConnection { edges { node { ...Deep } } }
fragment Deep on Patient { insights { twinVersion } }
"""


def test_cost_expands_fragments_and_multiplies_pages() -> None:
    schema = build_schema()._schema
    inline = "{ patients(first: 10) { edges { node { insights { twinVersion } } } } }"
    per_patient = 1 + 1 + FIELD_COSTS[("Patient", "insights")] + 1  # edges, node, insights, twinVersion
    expected = FIELD_COSTS[("Query", "patients")] + 10 * per_patient
    assert operation_costs(schema, parse(inline).definitions) == {"": expected}
    fragments = parse(INSIGHTS_PAGE).definitions
    assert operation_costs(schema, fragments, variables={"n": 10}) == {"": expected}
    # A page size the rule cannot see is charged at the default page size.
    assert operation_costs(schema, fragments, default_page_size=50) == {
        "": FIELD_COSTS[("Query", "patients")] + 50 * per_patient
    }


async def test_documents_over_a_limit_are_refused_with_their_reason(
    gateway_factory: GatewayFactory, tokens: Tokens
) -> None:
    async with gateway_factory(
        max_query_depth=5, max_aliases=2, max_tokens=300, max_query_cost=200
    ) as gateway:
        token = tokens.service()
        deep = await gateway.query(
            "{ patients { edges { node { twin { medications { dailyDose { value } } } } } } }", token=token
        )
        assert deep["data"] is None
        assert deep["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "exceeds maximum operation depth of 5" in deep["errors"][0]["message"]

        aliased = await gateway.query(
            "{ a: serviceHealth { service } b: serviceHealth { service } c: serviceHealth { service } }"
        )
        assert aliased["errors"][0]["message"] == "3 aliases found. Allowed: 2"
        assert aliased["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"

        long_document = "{ serviceHealth { " + " ".join(["service"] * 400) + " } }"
        tokens_body = await gateway.query(long_document)
        assert "more than 300 tokens" in tokens_body["errors"][0]["message"]
        assert tokens_body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"

        costly = await gateway.query(INSIGHTS_PAGE, token=token, variables={"n": 10})
        assert costly["data"] is None
        error = costly["errors"][0]
        assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX", "cost": 432, "limit": 200}
        assert "costs 432, above the limit of 200" in error["message"]

        cheap = await gateway.query(INSIGHTS_PAGE, token=token, variables={"n": 1})
        assert "QUERY_TOO_COMPLEX" not in {e["extensions"]["code"] for e in cheap.get("errors") or []}

        # Refused documents never ran: the only audited access is the cheap listing.
        async with gateway.gateway.services.audit.engine.connect() as connection:
            actions = (await connection.execute(sa.select(audit_log.c.action))).scalars().all()
        assert actions == ["list_patients"]
