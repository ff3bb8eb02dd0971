"""A failed section or service nulls only its field, with an error that names it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from .conftest import (
    PHQ9_REPORT,
    GatewayClient,
    GatewayFactory,
    Tokens,
    error_codes,
    in_session_loop,
    new_identifier,
)

QUERY = """query($id: ID!) { patient(id: $id) {
  id
  twin { version symptomHistory(days: 30) { total } }
  forecast(days: 7) { forecasts { target days { horizonDay } } }
  insights { twinVersion recommendations { id evidence } sectionErrors { section code service retryable }
             forecast { forecasts { target } } }
} }"""


@in_session_loop
async def test_a_down_model_service_nulls_its_section_and_leaves_the_rest(
    gateway: GatewayClient, tokens: Tokens
) -> None:
    patient, token = new_identifier(), tokens.service()
    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    for days_ago in range(10, 0, -1):
        body = await gateway.query(
            PHQ9_REPORT,
            token=token,
            variables={
                "patient": patient,
                "items": [days_ago % 4] * 9,
                "at": (today - timedelta(days=days_ago)).isoformat(),
            },
        )
        assert "errors" not in body, body

    body = await gateway.query(QUERY, token=token, variables={"id": patient})
    data = body["data"]["patient"]
    assert data["twin"]["version"] == 10 and len(data["twin"]["symptomHistory"]) == 10
    assert data["forecast"] is None and data["insights"]["forecast"] is None
    assert data["insights"]["twinVersion"] == 10
    assert data["insights"]["recommendations"], "recommendations from the sections that succeeded"
    forecast_error = {
        "section": "forecast",
        "code": "SERVICE_UNAVAILABLE",
        "service": "forecasting",
        "retryable": True,
    }
    assert forecast_error in data["insights"]["sectionErrors"]

    errors = {tuple(e["path"]): e for e in body["errors"]}
    for path in (("patient", "forecast"), ("patient", "insights", "forecast")):
        extensions = errors[path]["extensions"]
        assert {k: extensions[k] for k in ("code", "service", "section", "retryable")} == {
            "code": "SERVICE_UNAVAILABLE",
            "service": "forecasting",
            "section": "forecast",
            "retryable": True,
        }
    assert ("patient", "twin") not in errors


async def test_a_down_twin_fails_its_fields_and_its_breaker_then_answers_at_once(
    gateway_factory: GatewayFactory, tokens: Tokens
) -> None:
    async with gateway_factory(breaker_failure_threshold=2, breaker_recovery_seconds=60) as gateway:
        query = (
            "query($id: ID!) { patient(id: $id) { id twin { version } } serviceHealth { service serving } }"
        )
        variables = {"id": new_identifier()}
        first = await gateway.query(query, token=tokens.service(), variables=variables)
        assert first["data"]["patient"]["twin"] is None
        assert error_codes(first) == {("patient", "twin"): "SERVICE_UNAVAILABLE"}
        assert first["errors"][0]["extensions"]["service"] == "twin"
        assert len(first["data"]["serviceHealth"]) == 5

        # the breaker alone answers: no health checks in this query, nothing else to wait for
        twin_only = "query($id: ID!) { patient(id: $id) { id twin { version } } }"
        started = time.monotonic()
        second = await gateway.query(twin_only, token=tokens.service(), variables=variables)
        assert time.monotonic() - started < 0.5
        assert "circuit breaker open" in second["errors"][0]["message"]
        assert second["errors"][0]["extensions"] == {"code": "SERVICE_UNAVAILABLE", "service": "twin"}
