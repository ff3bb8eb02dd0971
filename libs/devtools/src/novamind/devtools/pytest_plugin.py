"""pytest fixtures for tests that talk to real parts (loaded through the ``pytest11`` entry point).

* ``kafka_bootstrap`` (session): an embedded Tansu broker for the whole run, or the cluster named
  by ``NOVAMIND_KAFKA_BOOTSTRAP`` (then nothing is started).
* ``kafka_topic_factory``: creates uniquely named topics, each with its ``.dlq``, so tests never
  see each other's records; they are deleted afterwards.
* ``sqlite_url``: a SQLite file in the test's ``tmp_path``.
* ``postgres_url``: a fresh schema per test in the local PostgreSQL
  (``postgresql+asyncpg://postgres@127.0.0.1:5432/test``, or ``NOVAMIND_TEST_POSTGRES_URL``),
  dropped afterwards; the test is skipped, saying why, when PostgreSQL is unreachable. Open it
  with :func:`novamind.core.db.make_engine`, which applies the URL's ``search_path``.
* ``dev_issuer`` (session): the development OpenID issuer served on a free loopback port; its
  ``.url`` is the issuer (``NOVAMIND_OIDC_ISSUER``) and ``.mint(subject, roles, patients)``
  returns real RS256 tokens that :class:`novamind.core.auth.TokenVerifier` accepts.

:func:`wait_for` is the way to wait for something asynchronous in a test: it polls a condition
with a bound instead of sleeping for a guessed time. :func:`read_records` and
:func:`committed_offsets` read the broker's state the way an operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from novamind.core.service import ServiceRuntime
from novamind.devtools.broker import resolve_bootstrap

if TYPE_CHECKING:
    from novamind.devtools.dev_issuer import RunningDevIssuer

log = logging.getLogger(__name__)

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
POSTGRES_URL_ENV = "NOVAMIND_TEST_POSTGRES_URL"


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 15.0,
    interval: float = 0.02,
    what: str = "condition",
) -> None:
    """Poll ``predicate`` (sync or async) every ``interval`` seconds until it is true.

    Raises :class:`AssertionError` naming ``what`` if it is still false after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running_service(runtime: ServiceRuntime, *, timeout: float = 15.0) -> AsyncIterator[ServiceRuntime]:
    """Run ``runtime`` in this event loop until the block ends, then stop it gracefully.

    Returns once the ops HTTP server answers ``/healthz``; raises if the runtime fails first.
    """
    import httpx

    task = asyncio.create_task(runtime.run())
    url = f"http://127.0.0.1:{runtime.settings.http_port}/healthz"
    async with httpx.AsyncClient(timeout=1.0) as client:

        async def answers() -> bool:
            if task.done():
                task.result()
                raise RuntimeError("the service stopped during start-up")
            try:
                return (await client.get(url)).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(answers, timeout=timeout, what=f"{runtime.name} /healthz")
    try:
        yield runtime
    finally:
        runtime.request_stop()
        await asyncio.wait_for(task, timeout)


async def health_status(grpc_port: int, service: str = "") -> str:
    """The gRPC health status name (``SERVING`` ...) a local server reports for ``service``."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


async def read_records(
    bootstrap: str, topic: str, expected: int, *, partition: int = 0, timeout: float = 15.0
) -> list[Any]:
    """Read ``expected`` records from the start of one partition of ``topic`` (no consumer group).

    Returns aiokafka ``ConsumerRecord`` objects. Raises :class:`AssertionError` if fewer arrive
    within ``timeout`` seconds.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    tp = TopicPartition(topic, partition)
    records: list[Any] = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=200)
            records += batch.get(tp, [])
    finally:
        await consumer.stop()
    assert len(records) >= expected, (
        f"expected {expected} records on {topic}[{partition}], found {len(records)}"
    )
    return records


async def committed_offsets(
    bootstrap: str, group_id: str, topic: str, partitions: int = 1
) -> list[int | None]:
    """The offsets ``group_id`` committed on each partition of ``topic`` (``None``: none yet).

    Read by a fresh client of the group that does not join it, so it disturbs no member.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        return [await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)]
    finally:
        await consumer.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Kafka bootstrap servers for the session (embedded broker unless one is configured)."""
    bootstrap, broker = resolve_bootstrap()
    try:
        yield bootstrap
    finally:
        if broker is not None:
            broker.stop()


class KafkaTopicFactory:
    """Creates unique topics (``<prefix>.<random>``) with their DLQs on ``bootstrap``."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.created: list[str] = []

    async def __call__(self, prefix: str = "test", *, partitions: int = 1) -> str:
        """Create a fresh topic and its ``.dlq``; returns the topic's name."""
        from novamind.core.kafka.topics import TopicSpec, dlq_topic, ensure_topics

        name = f"{prefix}.{uuid.uuid4().hex[:12]}"
        await ensure_topics(self.bootstrap, [TopicSpec(name, partitions), TopicSpec(dlq_topic(name), 1)])
        self.created += [name, dlq_topic(name)]
        return name

    async def delete_created(self) -> None:
        """Delete every topic this factory created (best effort: a failure is only logged)."""
        if not self.created:
            return
        from aiokafka.admin import AIOKafkaAdminClient
        from aiokafka.errors import KafkaError

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            await admin.delete_topics(self.created, timeout_ms=10_000)
        except KafkaError as exc:
            log.warning("could not delete test topics: %s", type(exc).__name__)
        finally:
            await admin.close()
        self.created.clear()


@pytest_asyncio.fixture
async def kafka_topic_factory(kafka_bootstrap: str) -> AsyncIterator[KafkaTopicFactory]:
    """A :class:`KafkaTopicFactory`; its topics are deleted after the test."""
    factory = KafkaTopicFactory(kafka_bootstrap)
    try:
        yield factory
    finally:
        await factory.delete_created()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """``sqlite+aiosqlite:///<tmp_path>/db/test.db`` (the directory is created by ``make_engine``)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'db' / 'test.db'}"


@pytest_asyncio.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A PostgreSQL URL whose ``search_path`` is a schema created for this test alone."""
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    url = make_url(os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL))
    where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"
    try:
        connection = await asyncpg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            database=url.database,
            timeout=5,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL at {where} is unreachable ({type(exc).__name__}: {exc})")
    schema = f"test_{uuid.uuid4().hex[:16]}"
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        yield url.update_query_dict({"search_path": schema}).render_as_string(hide_password=False)
    finally:
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()


@pytest.fixture(scope="session")
def dev_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDevIssuer]:
    """The dev OpenID issuer on a free loopback port for the session (``.url``, ``.mint(...)``).

    Tests that rotate its key should start their own with
    :func:`novamind.devtools.dev_issuer.serve_dev_issuer` instead.
    """
    from novamind.devtools.dev_issuer import serve_dev_issuer

    with serve_dev_issuer(tmp_path_factory.mktemp("dev-issuer")) as running:
        yield running
