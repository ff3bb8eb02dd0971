"""The shared test fixtures and helpers."""

from __future__ import annotations

from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from novamind.devtools.pytest_plugin import KafkaTopicFactory, committed_offsets, read_records, wait_for

pytestmark = pytest.mark.timeout(30)


async def test_wait_for_returns_once_the_condition_holds() -> None:
    calls = 0

    async def third_time_lucky() -> bool:
        nonlocal calls
        calls += 1
        return calls >= 3

    await wait_for(third_time_lucky, timeout=5, interval=0)
    assert calls == 3


async def test_wait_for_names_what_it_waited_for_when_it_times_out() -> None:
    with pytest.raises(AssertionError, match="the impossible"):
        await wait_for(lambda: False, timeout=0.05, what="the impossible")


def test_sqlite_url_points_into_the_test_directory(sqlite_url: str, tmp_path: Path) -> None:
    url = make_url(sqlite_url)
    assert url.drivername == "sqlite+aiosqlite"
    assert Path(url.database or "").is_relative_to(tmp_path)


async def test_postgres_url_has_its_own_schema(postgres_url: str) -> None:
    url = make_url(postgres_url)
    schema = url.query["search_path"]
    connection = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
    try:
        found = await connection.fetchval(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1", schema
        )
    finally:
        await connection.close()
    assert found == 1


async def test_topic_factory_makes_distinct_topics_with_dlqs(
    kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    first = await kafka_topic_factory("plugin")
    second = await kafka_topic_factory("plugin")

    assert first != second and first.startswith("plugin.")
    assert kafka_topic_factory.created == [first, f"{first}.dlq", second, f"{second}.dlq"]
    assert await read_records(kafka_bootstrap, f"{first}.dlq", 0, timeout=0.2) == []
    assert await committed_offsets(kafka_bootstrap, "nobody", first) == [None]
