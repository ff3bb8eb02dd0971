"""A real twin (SQLite, its own Kafka topics) and a gateway in front of it, with real tokens.

The model services are not started: their addresses are free loopback ports, so insight sections
that need them fail the way they fail when a service is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from websockets.asyncio.client import ClientConnection, connect

from novamind.core.config import Environment
from novamind.core.privacy import pseudonymise
from novamind.devtools.dev_issuer import RunningDevIssuer
from novamind.devtools.net import free_port
from novamind.devtools.pytest_plugin import KafkaTopicFactory, running_service, wait_for
from novamind.gateway.app import Gateway, build_gateway
from novamind.gateway.config import GatewaySettings
from novamind.twin.adapters.migrate import upgrade_to_head as migrate_twin
from novamind.twin.app import TwinTopics
from novamind.twin.app import build_runtime as build_twin_runtime
from novamind.twin.config import TwinSettings

#: The key the gateway under test pseudonymises raw patient identifiers with.
PSEUDONYM_KEY = "gateway-tests-pseudonym-key"
TWIN_SERVICE = "/novamind.api.twin.v1.TwinService"

#: Tests that use the shared twin run in the session's event loop (the twin lives there).
in_session_loop = pytest.mark.asyncio(loop_scope="session")


def pseudonym(identifier: str) -> str:
    return pseudonymise(identifier, PSEUDONYM_KEY)


def new_identifier(label: str = "mrn") -> str:
    """A fresh raw patient identifier (an MRN-like string), so tests never share patients."""
    return f"{label}-{uuid.uuid4().hex[:12]}"


def twin_calls(method: str) -> float:
    """RPCs the in-process twin has answered for ``method`` (any status), from its metrics."""
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name != "novamind_grpc_server_handled":
            continue
        for sample in metric.samples:
            if (
                sample.name.endswith("_total")
                and sample.labels.get("service") == "twin"
                and sample.labels.get("method") == f"{TWIN_SERVICE}/{method}"
            ):
                total += sample.value
    return total


@dataclass
class RunningTwin:
    settings: TwinSettings
    topics: TwinTopics

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.settings.grpc_port}"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def twin(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, dev_issuer: RunningDevIssuer
) -> AsyncIterator[RunningTwin]:
    """The real twin service on loopback, on its own SQLite database and topics, for the session.

    Tests share it (it takes seconds to stop), so each works on fresh patients of its own; test
    modules that use it run in the session's event loop.
    """
    topic_factory = KafkaTopicFactory(kafka_bootstrap)
    topics = TwinTopics(
        device_readings=await topic_factory("readings"),
        symptom_reports=await topic_factory("symptoms"),
        analysis_completed=await topic_factory("completed"),
        analysis_requested=await topic_factory("requested"),
        twin_updated=await topic_factory("twin-updated"),
    )
    settings = TwinSettings(
        environment=Environment.TEST,
        oidc_issuer=dev_issuer.url,
        grpc_host="127.0.0.1",
        grpc_port=free_port(),
        http_host="127.0.0.1",
        http_port=free_port(),
        grpc_reflection=False,
        kafka_bootstrap=kafka_bootstrap,
        database_url=f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('twin') / 'twin.db'}",
        pat_address=f"127.0.0.1:{free_port()}",
        forecasting_address=f"127.0.0.1:{free_port()}",
        correlation_address=f"127.0.0.1:{free_port()}",
        pharmacogenomics_address=f"127.0.0.1:{free_port()}",
        insights_deadline_seconds=1.5,
        outbox_poll_seconds=0.05,
    )
    await migrate_twin(settings)
    try:
        async with running_service(build_twin_runtime(settings, topics=topics)):
            yield RunningTwin(settings, topics)
    finally:
        await topic_factory.delete_created()


GatewayFactory = Callable[..., contextlib.AbstractAsyncContextManager["GatewayClient"]]


@dataclass
class GatewayClient:
    """A running gateway and an HTTP client for its GraphQL endpoint."""

    gateway: Gateway
    http: httpx.AsyncClient

    @property
    def settings(self) -> GatewaySettings:
        return self.gateway.services.settings

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.settings.http_port}/graphql"

    async def post(
        self, query: str, *, token: str | None = None, variables: dict[str, Any] | None = None
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return await self.http.post(
            self.url, json={"query": query, "variables": variables or {}}, headers=headers
        )

    async def query(
        self, query: str, *, token: str | None = None, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The GraphQL response body (the HTTP status must be 200, as for every GraphQL answer)."""
        response = await self.post(query, token=token, variables=variables)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def gateway_settings(
    tmp_path: Path, twin: RunningTwin | None, issuer: RunningDevIssuer, **overrides: Any
) -> GatewaySettings:
    values: dict[str, Any] = {
        "environment": Environment.TEST,
        "http_host": "127.0.0.1",
        "http_port": free_port(),
        "grpc_reflection": False,
        "data_dir": tmp_path / "gateway",
        "oidc_issuer": issuer.url,
        "pseudonym_key": PSEUDONYM_KEY,
        "rate_limit": "100000/minute",
        "rate_limit_namespace": f"gateway-tests-{uuid.uuid4().hex[:8]}",
        "twin_address": twin.address if twin is not None else f"127.0.0.1:{free_port()}",
        "pat_address": f"127.0.0.1:{free_port()}",
        "forecasting_address": f"127.0.0.1:{free_port()}",
        "correlation_address": f"127.0.0.1:{free_port()}",
        "pharmacogenomics_address": f"127.0.0.1:{free_port()}",
    }
    values.update(overrides)
    return GatewaySettings(**values)


@pytest.fixture
def gateway_factory(tmp_path: Path, dev_issuer: RunningDevIssuer) -> GatewayFactory:
    """Starts a gateway with settings overrides: ``async with gateway_factory(twin, **overrides)``."""

    @contextlib.asynccontextmanager
    async def start(twin: RunningTwin | None = None, **overrides: Any) -> AsyncIterator[GatewayClient]:
        settings = gateway_settings(tmp_path, twin, dev_issuer, **overrides)
        gateway = build_gateway(settings)
        async with running_service(gateway.runtime), httpx.AsyncClient(timeout=30.0) as http:
            yield GatewayClient(gateway, http)

    return start


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(twin: RunningTwin, gateway_factory: GatewayFactory) -> AsyncIterator[GatewayClient]:
    """A gateway in front of the real twin, with default limits and no subscriptions."""
    async with gateway_factory(twin) as client:
        yield client


@dataclass
class Tokens:
    """Real RS256 tokens from the dev issuer."""

    issuer: RunningDevIssuer

    def clinician(self, patients: Sequence[str], subject: str = "clinician-1") -> str:
        return self.issuer.mint(subject, ["clinician"], patients)

    def patient(self, identifier: str) -> str:
        return self.issuer.mint(identifier, ["patient"], [identifier])

    def ops(self) -> str:
        return self.issuer.mint("ops-1", ["ops"])

    def service(self) -> str:
        return self.issuer.mint("service-1", ["service"])


@pytest.fixture
def tokens(dev_issuer: RunningDevIssuer) -> Tokens:
    return Tokens(dev_issuer)


PHQ9_REPORT = """
mutation($patient: ID!, $items: [Int!], $at: DateTime, $expected: Int) {
  submitSymptomReport(input: {patientId: $patient, instrument: PHQ9, itemResponses: $items,
                              reportedAt: $at, expectedVersion: $expected}) {
    version duplicate report { total }
  }
}
"""


async def create_twin(client: GatewayClient, token: str, identifier: str) -> int:
    """Give ``identifier`` a twin (one PHQ-9 report through the gateway); the new version."""
    body = await client.query(
        PHQ9_REPORT, token=token, variables={"patient": identifier, "items": [1, 1, 1, 1, 1, 1, 1, 1, 1]}
    )
    assert "errors" not in body, body
    version: int = body["data"]["submitSymptomReport"]["version"]
    return version


def error_codes(body: dict[str, Any]) -> dict[tuple[Any, ...], str]:
    """``extensions.code`` of each error by its path (``()`` for errors without one)."""
    return {tuple(e.get("path") or ()): e["extensions"]["code"] for e in body.get("errors") or []}


class WsSession:
    """A graphql-transport-ws client session (the protocol the gateway speaks on /graphql)."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    async def subscribe(self, operation_id: str, query: str, variables: dict[str, Any] | None = None) -> None:
        payload = {"query": query, "variables": variables or {}}
        await self.connection.send(json.dumps({"id": operation_id, "type": "subscribe", "payload": payload}))

    async def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next message other than a ping/pong."""
        while True:
            message: dict[str, Any] = json.loads(await asyncio.wait_for(self.connection.recv(), timeout))
            if message["type"] not in ("ping", "pong"):
                return message

    async def complete(self, operation_id: str) -> None:
        await self.connection.send(json.dumps({"id": operation_id, "type": "complete"}))


@contextlib.asynccontextmanager
async def ws_session(
    url: str, *, token: str | None = None, header_token: str | None = None
) -> AsyncIterator[WsSession]:
    """Connect and initialise; ``token`` goes in connection_init, ``header_token`` in the upgrade request."""
    headers = {"authorization": f"Bearer {header_token}"} if header_token else None
    async with connect(url, subprotocols=["graphql-transport-ws"], additional_headers=headers) as connection:  # type: ignore[list-item]
        payload = {"authorization": f"Bearer {token}"} if token else {}
        await connection.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = json.loads(await asyncio.wait_for(connection.recv(), 10.0))
        assert ack["type"] == "connection_ack", ack
        yield WsSession(connection)


async def wait_subscribed(client: GatewayClient, patient: str, count: int = 1) -> None:
    """Until the gateway reads the topic (it is ready) and holds the subscription."""
    hub = client.gateway.services.hub
    assert hub is not None
    await wait_for(hub.ready.is_set, what="the gateway to read twin updates")
    await wait_for(lambda: hub.subscriber_count(patient) >= count, what="the subscription to register")
