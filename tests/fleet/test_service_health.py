"""The gateway's serviceHealth reflects each back-end service's gRPC health, live."""

from __future__ import annotations

import signal

import pytest

from novamind.core.config import BACKEND_SERVICES
from novamind.devtools.fleet import Fleet

from .conftest import poll_until, service_health

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_service_health_reports_every_backend_serving(fleet: Fleet) -> None:
    health = await service_health(fleet)
    assert sorted(health) == sorted(BACKEND_SERVICES)
    for name, entry in health.items():
        assert entry["status"] == "SERVING", (name, entry)
        assert entry["serving"] is True
        assert entry["latencyMs"] >= 0


async def test_killed_service_shows_not_serving_within_two_seconds_and_recovers(fleet: Fleet) -> None:
    victim = "forecasting"
    await fleet.stop_service(victim, sig=signal.SIGKILL)

    health, elapsed = await poll_until(
        lambda: service_health(fleet), lambda h: h[victim]["status"] != "SERVING", timeout=5.0
    )
    assert elapsed < 2.0, f"took {elapsed:.2f} s to notice"
    assert health[victim]["serving"] is False
    assert health[victim]["detail"]
    others = {n: e["status"] for n, e in health.items() if n != victim}
    assert set(others.values()) == {"SERVING"}, others

    await fleet.start_service(victim)
    health, _ = await poll_until(
        lambda: service_health(fleet), lambda h: h[victim]["status"] == "SERVING", timeout=10.0
    )
    assert all(e["status"] == "SERVING" for e in health.values()), health
