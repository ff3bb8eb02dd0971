"""From device event to clinician answer across the running fleet, and what happens when a service dies.

* A plain Kafka client sends a week of minute-level activity counts for a new patient; the twin
  requests PAT analyses as days complete, pat answers, the twin is updated, a GraphQL subscriber
  hears of it, and a GraphQL query returns the metrics, which match pat's own analysis of the
  same week.
* With forecasting killed, the insights query still answers within the twin's insights deadline
  (+10%) with ``forecast: null`` and an error naming the service; once the breaker is open,
  queries no longer wait for the dead service; after a restart the breaker half-opens, lets a
  trial call through and closes.
* Every access of patient data above is in the gateway's audit log, whose chain verifies, and a
  modified copy of it fails verification.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from novamind.api.actigraphy.v1 import actigraphy_pb2, actigraphy_pb2_grpc
from novamind.api.common.v1 import common_pb2
from novamind.core.config import CoreSettings
from novamind.core.privacy import pseudonymise
from novamind.devtools.fleet import Fleet
from novamind.devtools.readings import activity_count_point
from novamind.pat.domain.preprocessing import to_minutes
from novamind.pat.domain.synthetic import SyntheticConfig, generate

from .conftest import poll_until

pytestmark = pytest.mark.asyncio(loop_scope="session")

#: The twin's default insights deadline (TwinSettings.insights_deadline_seconds).
INSIGHTS_DEADLINE_SECONDS = 2.0
WEEK_START = datetime(2026, 11, 9, tzinfo=UTC)
MINUTES = 7 * 1440

SUBSCRIPTION = """subscription($id: ID!) {
  twinUpdated(patientId: $id) { patientId version previousVersion changedSections }
}"""
LATEST_ACTIGRAPHY = """query($id: ID!) { patient(id: $id) { twin { version latestActigraphy {
  weekStart weekEnd inputQuality { minutesPresent }
  sleep { nightsAnalyzed totalSleepTimeMinutes sleepEfficiencyPercent }
  circadian { interdailyStability intradailyVariability } } } } }"""
INSIGHTS = """query($id: ID!) { patient(id: $id) { insights {
  twinVersion forecast { forecasts { originDate } } sectionErrors { section code service }
  recommendations { id priority evidence } } } }"""
SUBMIT_PHQ9 = """mutation($input: SymptomReportInput!) { submitSymptomReport(input: $input) { version } }"""


def week_counts() -> np.ndarray:
    config = SyntheticConfig(start_date=WEEK_START.date(), days=7, epoch_seconds=60, timezone="UTC")
    return to_minutes(generate(config, seed=5).recording).counts[:MINUTES]


async def graphql(fleet: Fleet, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30.0) as client:
        response = await client.post(
            fleet.graphql_url,
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    return dict(response.json())


class Subscriber:
    """One graphql-transport-ws subscription to twinUpdated."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def next_update(self, timeout: float) -> dict[str, Any]:
        message = json.loads(await asyncio.wait_for(self.connection.recv(), timeout))
        assert message["type"] == "next", message
        return dict(message["payload"]["data"]["twinUpdated"])


@pytest_asyncio.fixture(loop_scope="session")
async def subscribed(fleet: Fleet) -> AsyncIterator[tuple[str, str, Subscriber]]:
    identifier = f"e2e-{uuid.uuid4().hex[:12]}"
    patient = pseudonymise(identifier, CoreSettings().pseudonym_key.get_secret_value())
    token = fleet.mint("dr-e2e", ["clinician"], [identifier])
    ws_url = fleet.graphql_url.replace("http://", "ws://")
    async with connect(ws_url, subprotocols=["graphql-transport-ws"]) as connection:  # type: ignore[list-item]
        await connection.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        assert json.loads(await asyncio.wait_for(connection.recv(), 10))["type"] == "connection_ack"
        await connection.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": SUBSCRIPTION, "variables": {"id": patient}},
                }
            )
        )
        yield patient, token, Subscriber(connection)


async def test_a_week_of_readings_reaches_the_clinician(
    fleet: Fleet, subscribed: tuple[str, str, Subscriber]
) -> None:
    patient, token, subscriber = subscribed
    # A first change through the API proves the subscription is live before the readings flow.
    answered = datetime(2026, 11, 8, 20, 0, tzinfo=UTC).isoformat()
    body = await graphql(
        fleet,
        token,
        SUBMIT_PHQ9,
        {
            "input": {
                "patientId": patient,
                "instrument": "PHQ9",
                "itemResponses": [1] * 9,
                "reportedAt": answered,
            }
        },
    )
    assert "errors" not in body, body
    first = await subscriber.next_update(timeout=30)
    assert first["patientId"] == patient and first["changedSections"] == ["symptoms"]

    counts = week_counts()
    producer = AIOKafkaProducer(bootstrap_servers=fleet.bootstrap, linger_ms=20, acks="all")
    await producer.start()
    try:
        sends = []
        for minute, value in enumerate(counts):
            moment = WEEK_START + timedelta(minutes=minute)
            event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{patient}/{minute}"))
            point = activity_count_point(event_id, patient, moment, float(value))
            sends.append(await producer.send("device.readings.v1", key=patient.encode(), value=point))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()

    week_end = (WEEK_START + timedelta(days=7)).isoformat()
    deadline = time.monotonic() + 240
    latest: dict[str, Any] | None = None
    while latest is None or (
        latest["weekEnd"] != week_end.replace("+00:00", "Z") and latest["weekEnd"] != week_end
    ):
        assert time.monotonic() < deadline, f"no analysis of the full week; last twin view {latest}"
        update = await subscriber.next_update(timeout=max(1.0, deadline - time.monotonic()))
        assert update["version"] == update["previousVersion"] + 1
        if "actigraphy" not in update["changedSections"]:
            continue
        body = await graphql(fleet, token, LATEST_ACTIGRAPHY, {"id": patient})
        assert "errors" not in body, body
        latest = body["data"]["patient"]["twin"]["latestActigraphy"]
    assert latest["inputQuality"]["minutesPresent"] == MINUTES

    # pat's own analysis of the same week gives the same numbers.
    start = Timestamp()
    start.FromDatetime(WEEK_START)
    week = common_pb2.TimeSeries(
        start=start, step_seconds=60, values=counts.tolist(), unit="{counts}/min", time_zone="UTC"
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fleet.services['pat'].grpc_port}") as channel:
        direct = await actigraphy_pb2_grpc.ActigraphyServiceStub(channel).Analyze(
            actigraphy_pb2.AnalyzeRequest(
                patient=common_pb2.PatientRef(pseudonym=patient),
                week=week,
                include=actigraphy_pb2.AnalysisInclude(metrics=True),
            ),
            timeout=60,
        )
    assert latest["sleep"]["nightsAnalyzed"] == direct.sleep.nights_analyzed > 0
    assert latest["sleep"]["totalSleepTimeMinutes"] == pytest.approx(direct.sleep.total_sleep_time_minutes)
    assert latest["sleep"]["sleepEfficiencyPercent"] == pytest.approx(direct.sleep.sleep_efficiency_percent)
    assert latest["circadian"]["interdailyStability"] == pytest.approx(direct.circadian.interdaily_stability)


async def breaker_state(fleet: Fleet, dependency: str) -> float | None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        text = (await client.get(f"{fleet.http_url('twin')}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "novamind_circuit_breaker_state"
                and sample.labels.get("dependency") == dependency
            ):
                return sample.value
    return None


async def timed_insights(fleet: Fleet, token: str, patient: str) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    body = await graphql(fleet, token, INSIGHTS, {"id": patient})
    return body, time.monotonic() - started


def forecast_error(body: dict[str, Any]) -> dict[str, Any]:
    errors = [e for e in body.get("errors", []) if e.get("path", [])[-1:] == ["forecast"]]
    assert len(errors) == 1, body
    return dict(errors[0])


async def test_dead_forecasting_degrades_insights_then_recovers(fleet: Fleet) -> None:
    identifier = f"e2e-degrade-{uuid.uuid4().hex[:8]}"
    patient = pseudonymise(identifier, CoreSettings().pseudonym_key.get_secret_value())
    token = fleet.mint("dr-degrade", ["clinician"], [identifier])
    for day in range(10):
        answered = (datetime(2026, 11, 1, 19, 0, tzinfo=UTC) + timedelta(days=day)).isoformat()
        variables = {
            "input": {
                "patientId": patient,
                "instrument": "PHQ9",
                "itemResponses": [day % 3] * 9,
                "reportedAt": answered,
            }
        }
        assert "errors" not in await graphql(fleet, token, SUBMIT_PHQ9, variables)

    # Up: forecasting answers with the PHQ-9 forecast from the last answered day, quickly.
    body, _ = await timed_insights(fleet, token, patient)
    insights = body["data"]["patient"]["insights"]
    assert insights["twinVersion"] >= 10
    assert [f["originDate"] for f in insights["forecast"]["forecasts"]] == ["2026-11-10"], body
    assert not any(e.get("path", [])[-1:] == ["forecast"] for e in body.get("errors", []))

    await fleet.stop_service("forecasting", sig=signal.SIGKILL)
    try:
        body, elapsed = await timed_insights(fleet, token, patient)
        assert elapsed <= INSIGHTS_DEADLINE_SECONDS * 1.1, f"insights took {elapsed:.2f} s"
        insights = body["data"]["patient"]["insights"]
        assert insights["forecast"] is None
        error = forecast_error(body)
        assert error["extensions"]["service"] == "forecasting"
        assert error["extensions"]["code"] in {"SERVICE_UNAVAILABLE", "DEADLINE_EXCEEDED"}
        assert {"section": "forecast", "service": "forecasting"}.items() <= next(
            e for e in insights["sectionErrors"] if e["section"] == "forecast"
        ).items()
        # the other sections are still answered or fail for their own reasons, never forecasting's
        assert all(
            e["service"] != "forecasting" for e in insights["sectionErrors"] if e["section"] != "forecast"
        )

        # Repeated failures open the breaker; then a query does not wait for the dead service.
        async def query_then_breaker_state() -> float | None:
            await timed_insights(fleet, token, patient)
            return await breaker_state(fleet, "forecasting")

        await poll_until(query_then_breaker_state, lambda s: s == 2.0, timeout=30, interval=0)
        body, elapsed = await timed_insights(fleet, token, patient)
        assert body["data"]["patient"]["insights"]["forecast"] is None
        assert "breaker" in forecast_error(body)["message"]
        assert elapsed < INSIGHTS_DEADLINE_SECONDS / 4, f"an open breaker still waited {elapsed:.2f} s"
    finally:
        await fleet.start_service("forecasting")

    # After the cool-down the breaker half-opens; the trial call reaches the live service and closes it.
    async def recovered() -> bool:
        body, _ = await timed_insights(fleet, token, patient)
        return body["data"]["patient"]["insights"]["forecast"] is not None

    await poll_until(recovered, lambda ok: ok, timeout=30, interval=0.2)
    assert await breaker_state(fleet, "forecasting") == 0.0


async def test_patient_data_access_is_audited_and_tampering_detected(fleet: Fleet, tmp_path: Path) -> None:
    copy = tmp_path / "gateway.db"
    # the online backup API includes what is still in the write-ahead log
    with sqlite3.connect(fleet.data_dir / "gateway.db") as live, sqlite3.connect(copy) as target:
        live.backup(target)
    with sqlite3.connect(copy) as conn:
        actions = {row[0] for row in conn.execute("SELECT DISTINCT action FROM audit_log")}
        assert {"read_insights", "submit_symptom_report"} <= actions, actions
    audit = str(Path(sys.executable).with_name("novamind-audit"))
    url = f"sqlite+aiosqlite:///{copy}"
    verify = [audit, "verify", "--database-url", url]
    intact = await asyncio.to_thread(subprocess.run, verify, capture_output=True, text=True, check=False)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    with sqlite3.connect(copy) as conn:
        seq = conn.execute("SELECT seq FROM audit_log ORDER BY seq LIMIT 1 OFFSET 2").fetchone()[0]
        conn.execute("UPDATE audit_log SET outcome = 'denied' WHERE seq = ?", (seq,))
    tampered = await asyncio.to_thread(subprocess.run, verify, capture_output=True, text=True, check=False)
    assert tampered.returncode == 1
    assert str(seq) in tampered.stdout + tampered.stderr
