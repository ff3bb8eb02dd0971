"""A whole local fleet (six processes on free loopback ports), shared by the fleet tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio

from novamind.devtools.fleet import Fleet

T = TypeVar("T")

SERVICE_HEALTH_QUERY = "{ serviceHealth { service status serving latencyMs detail } }"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fleet(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
    fleet = Fleet(
        data_dir=tmp_path_factory.mktemp("fleet"),
        ports="free",
        bootstrap=kafka_bootstrap,
        echo=False,
        # a short breaker cool-down, so the degradation test sees it half-open and close quickly
        env={"NOVAMIND_ENVIRONMENT": "test", "NOVAMIND_BREAKER_RECOVERY_SECONDS": "1.0"},
        model_dir=tmp_path_factory.mktemp("models"),
        pretrain_args=("--steps", "2", "--synthetic-recordings", "4"),
        forecast_train_args=("--quick",),
    )
    try:
        await fleet.start()
        yield fleet
    finally:
        await fleet.stop()


async def service_health(fleet: Fleet) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.post(fleet.graphql_url, json={"query": SERVICE_HEALTH_QUERY})
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return {entry["service"]: entry for entry in body["data"]["serviceHealth"]}


async def poll_until(
    probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], *, timeout: float, interval: float = 0.05
) -> tuple[T, float]:
    """Call ``probe`` until ``accept`` holds; the last value and seconds taken (fails on timeout)."""
    started = time.monotonic()
    value = await probe()
    while not accept(value):
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s; last value: {value!r}")
        await asyncio.sleep(interval)
        value = await probe()
    return value, time.monotonic() - started


@pytest.fixture
def db_path(fleet: Fleet) -> Path:
    return fleet.data_dir / "twin.db"
