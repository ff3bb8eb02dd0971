"""The embedded broker: it starts, answers Kafka, stops and frees its port; a configured cluster
means nothing is started."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from novamind.core.kafka import FLEET_TOPICS
from novamind.devtools.broker import BrokerStartError, EmbeddedBroker, resolve_bootstrap

pytestmark = pytest.mark.timeout(60)


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


async def topic_names(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


def test_broker_starts_answers_and_frees_its_port_on_stop() -> None:
    broker = EmbeddedBroker()
    bootstrap = broker.start()
    port = broker.port

    assert bootstrap == f"127.0.0.1:{port}"
    assert broker.running and accepts_connections(port)
    assert isinstance(asyncio.run(topic_names(bootstrap)), list)

    broker.stop()
    broker.stop()  # idempotent
    assert not broker.running
    assert not accepts_connections(port)


async def test_broker_works_as_an_async_context_manager() -> None:
    async with EmbeddedBroker() as broker:
        port = broker.port
        assert await topic_names(broker.bootstrap) == []
    assert not accepts_connections(port)


def test_broker_works_as_a_context_manager_and_removes_its_log() -> None:
    with EmbeddedBroker() as broker:
        log_path = broker.log_path
        assert log_path is not None and log_path.exists()
    assert not log_path.exists()


def test_broker_that_exits_during_start_up_reports_its_output() -> None:
    # A shell cannot run a script called "broker": it exits at once, complaining about it.
    broker = EmbeddedBroker(binary="/bin/sh", startup_timeout=5)

    with pytest.raises(BrokerStartError, match="exited with status") as raised:
        broker.start()
    assert "broker" in str(raised.value).split("last output:")[1]
    assert not broker.running


def test_configured_cluster_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOVAMIND_KAFKA_BOOTSTRAP", "kafka-0.kafka:9092,kafka-1.kafka:9092")

    bootstrap, broker = resolve_bootstrap()

    assert (bootstrap, broker) == ("kafka-0.kafka:9092,kafka-1.kafka:9092", None)


def test_without_configuration_an_embedded_broker_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOVAMIND_KAFKA_BOOTSTRAP", raising=False)

    bootstrap, broker = resolve_bootstrap()
    try:
        assert broker is not None and broker.running and bootstrap == broker.bootstrap
    finally:
        assert broker is not None
        broker.stop()


async def test_broker_command_prints_the_bootstrap_creates_topics_and_stops_on_sigterm() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NOVAMIND_KAFKA_BOOTSTRAP"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "novamind.devtools.broker",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
        name, _, bootstrap = line.partition("=")
        assert name == "NOVAMIND_KAFKA_BOOTSTRAP", line
        port = int(bootstrap.rsplit(":", 1)[1])

        assert {spec.name for spec in FLEET_TOPICS} <= set(await topic_names(bootstrap))

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
        assert not accepts_connections(port)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
