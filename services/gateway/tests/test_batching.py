"""DataLoader batching: one GetInsights per patient per request, one BatchGetTwins per request."""

from __future__ import annotations

import asyncio

from novamind.api.forecasting.v1 import forecasting_pb2
from novamind.api.twin.v1 import twin_pb2
from novamind.gateway.adapters.loaders import InsightsLoader, insight_options
from novamind.gateway.domain.insights import InsightNeeds, Section

from .conftest import (
    GatewayClient,
    Tokens,
    create_twin,
    error_codes,
    in_session_loop,
    new_identifier,
    pseudonym,
    twin_calls,
)


@in_session_loop
async def test_section_fields_of_one_patient_share_one_get_insights_call(
    gateway: GatewayClient, tokens: Tokens
) -> None:
    patient = new_identifier()
    await create_twin(gateway, tokens.service(), patient)
    query = """query($id: ID!) { patient(id: $id) {
        actigraphy(explanation: true) { latest { analysisId } }
        forecast { forecasts { target } }
        correlations { testsPerformed }
        insights { twinVersion sectionErrors { section code } }
    } }"""
    before = twin_calls("GetInsights")
    body = await gateway.query(query, token=tokens.service(), variables={"id": patient})
    assert twin_calls("GetInsights") - before == 1
    # Each section field reports its own section's outcome from that one response.
    assert body["data"]["patient"]["insights"]["twinVersion"] >= 1
    assert set(error_codes(body)) == {
        ("patient", "actigraphy"),
        ("patient", "forecast"),
        ("patient", "correlations"),
    }
    sections = {e["section"] for e in body["data"]["patient"]["insights"]["sectionErrors"]}
    assert sections == {"actigraphy", "forecast", "correlations", "medications"}


@in_session_loop
async def test_fields_with_conflicting_parameters_need_separate_calls(
    gateway: GatewayClient, tokens: Tokens
) -> None:
    patient = new_identifier()
    await create_twin(gateway, tokens.service(), patient)
    query = """query($id: ID!) { patient(id: $id) {
        week: forecast(days: 7) { forecasts { target } }
        fortnight: forecast(days: 14) { forecasts { target } }
        correlations { testsPerformed }
    } }"""
    before = twin_calls("GetInsights")
    await gateway.query(query, token=tokens.service(), variables={"id": patient})
    assert twin_calls("GetInsights") - before == 2


@in_session_loop
async def test_twins_of_a_page_of_patients_come_from_one_batch_get_twins(
    gateway: GatewayClient, tokens: Tokens
) -> None:
    identifiers = [new_identifier() for _ in range(6)]
    for identifier in identifiers:
        await create_twin(gateway, tokens.service(), identifier)
    clinician = tokens.clinician(identifiers)
    before_batch, before_single = twin_calls("BatchGetTwins"), twin_calls("GetTwin")
    body = await gateway.query(
        "{ patients(first: 50) { edges { node { id twin { version medications { name } } } } } }",
        token=clinician,
    )
    assert "errors" not in body, body
    nodes = {edge["node"]["id"]: edge["node"] for edge in body["data"]["patients"]["edges"]}
    assert set(nodes) == {pseudonym(i) for i in identifiers}
    assert all(node["twin"]["version"] == 1 for node in nodes.values())
    assert twin_calls("BatchGetTwins") - before_batch == 1
    assert twin_calls("GetTwin") - before_single == 0


@in_session_loop
async def test_the_insights_loader_merges_needs_stated_in_one_tick_and_reuses_covering_calls() -> None:
    calls: list[tuple[str, InsightNeeds]] = []

    async def fetch(patient: str, needs: InsightNeeds) -> twin_pb2.GetInsightsResponse:
        calls.append((patient, needs))
        await asyncio.sleep(0)
        return twin_pb2.GetInsightsResponse(twin_version=len(calls))

    loader = InsightsLoader(fetch)
    first = await asyncio.gather(
        loader.load("pt_a", InsightNeeds(sections=frozenset({Section.ACTIGRAPHY}), actigraphy_fhir=True)),
        loader.load("pt_a", InsightNeeds(sections=frozenset({Section.FORECAST}), forecast_days=7)),
        loader.load(
            "pt_a", InsightNeeds(sections=frozenset({Section.ACTIGRAPHY}), actigraphy_explanation=True)
        ),
        loader.load("pt_b", InsightNeeds(sections=frozenset({Section.CORRELATIONS}))),
    )
    assert sorted(p for p, _ in calls) == ["pt_a", "pt_b"]
    merged = next(needs for p, needs in calls if p == "pt_a")
    assert merged.sections == {Section.ACTIGRAPHY, Section.FORECAST}
    assert merged.actigraphy_explanation and merged.actigraphy_fhir and merged.forecast_days == 7
    assert first[0] is first[1] is first[2]

    # Covered by the call already made: no new call. Not covered: a new one.
    again = await loader.load("pt_a", InsightNeeds(sections=frozenset({Section.FORECAST}), forecast_days=7))
    assert again is first[0] and len(calls) == 2
    await loader.load("pt_a", InsightNeeds(sections=frozenset({Section.MEDICATIONS})))
    assert len(calls) == 3


def test_options_switch_off_every_section_not_needed() -> None:
    options = insight_options(
        InsightNeeds(sections=frozenset({Section.FORECAST}), forecast_targets=("TARGET_SYMPTOM_PHQ9_TOTAL",))
    )
    assert options.HasField("include_actigraphy") and not options.include_actigraphy
    assert options.include_forecast and not options.include_correlations and not options.include_medications
    assert list(options.forecast_targets) == [forecasting_pb2.TARGET_SYMPTOM_PHQ9_TOTAL]
