"""The REST mirror: a week in, the analysis out (200), or a job to poll (202); errors by the core mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.routing import Mount

from novamind.core.cache import InProcessCache
from novamind.core.errors import NotFoundError, ResourceExhaustedError, ValidationError
from novamind.core.service import ServiceRuntime
from novamind.devtools.net import free_port
from novamind.devtools.pytest_plugin import running_service, wait_for
from novamind.pat.config import ActigraphySettings
from novamind.pat.serving.model import EmbeddingInferenceModel
from novamind.pat.serving.oip import OpenInferenceServer
from novamind.pat.serving.rest import AnalyseWeek, JobRegistry, JobStatus, WeekInput, create_app


def _week(**overrides: Any) -> dict[str, Any]:
    values: list[float | None] = [float(m % 1440 >= 420) * 250.0 for m in range(10080)]
    values[5000] = None
    return {
        "week": {"values": values, "start": "2026-03-02T00:00:00", "timezone": "Europe/Zurich", **overrides}
    }


class CountingAnalysis:
    """Mean activity of the week; counts its calls; waits for ``release`` when one is given."""

    def __init__(self, release: asyncio.Event | None = None) -> None:
        self.calls = 0
        self.release = release
        self.seen: list[WeekInput] = []

    async def __call__(self, week: WeekInput) -> Mapping[str, Any]:
        self.calls += 1
        self.seen.append(week)
        if self.release is not None:
            await self.release.wait()
        return {"mean_counts_per_minute": float(np.nanmean(week.values)), "start": week.start.isoformat()}


def _client(analyse: AnalyseWeek, **kwargs: Any) -> httpx.AsyncClient:
    kwargs.setdefault("model_version", lambda: "1.0.0")
    app = create_app(analyse, **kwargs)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pat")


async def _poll_until_finished(client: httpx.AsyncClient, location: str) -> dict[str, Any]:
    polled: dict[str, Any] = {}

    async def finished() -> bool:
        response = await client.get(location)
        assert response.status_code == 200
        polled.update(response.json())
        return bool(polled["status"] != "pending")

    await wait_for(finished, timeout=10, what="the analysis job to finish")
    return polled


@pytest.fixture
def analysis() -> CountingAnalysis:
    return CountingAnalysis()


@pytest.fixture
async def client(analysis: CountingAnalysis) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(analysis) as c:
        yield c


async def test_a_fast_analysis_answers_200_with_the_result(
    client: httpx.AsyncClient, analysis: CountingAnalysis
) -> None:
    response = await client.post("/v1/analyses", json=_week())

    assert response.status_code == 200
    assert response.json()["mean_counts_per_minute"] == pytest.approx(250.0 * 17 / 24, rel=1e-3)
    (week,) = analysis.seen
    assert week.values.shape == (10080,)
    assert np.isnan(week.values[5000])
    assert week.start.isoformat() == "2026-03-02T00:00:00+01:00"


async def test_async_requests_answer_202_and_the_job_can_be_polled_to_done(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/analyses", params={"async": "true"}, json=_week())

    assert response.status_code == 202
    job_id = response.json()["job_id"]
    assert response.headers["location"] == f"/v1/analyses/{job_id}"
    polled = await _poll_until_finished(client, response.headers["location"])
    assert polled["status"] == "done"
    assert polled["result"]["mean_counts_per_minute"] == pytest.approx(250.0 * 17 / 24, rel=1e-3)
    assert polled["error"] is None


async def test_work_over_the_budget_answers_202_and_finishes_in_the_background() -> None:
    release = asyncio.Event()
    analysis = CountingAnalysis(release)
    async with _client(analysis, sync_budget_seconds=0.05) as client:
        response = await client.post("/v1/analyses", json=_week())

        assert response.status_code == 202
        pending = await client.get(response.headers["location"])
        assert pending.json()["status"] == "pending"

        release.set()
        polled = await _poll_until_finished(client, response.headers["location"])

    assert polled["status"] == "done"
    assert analysis.calls == 1


async def test_a_failed_analysis_answers_the_mapped_status_with_code_message_field() -> None:
    async def refuse(week: WeekInput) -> Mapping[str, Any]:
        raise ValidationError("fewer than 4 valid days", field="week.values")

    async with _client(refuse) as client:
        sync = await client.post("/v1/analyses", json=_week())
        queued = await client.post("/v1/analyses", params={"async": "true"}, json=_week())
        polled = await _poll_until_finished(client, queued.headers["location"])

    assert sync.status_code == 422
    assert sync.json() == {
        "code": "VALIDATION_ERROR",
        "message": "fewer than 4 valid days",
        "field": "week.values",
    }
    assert polled["status"] == "failed"
    assert polled["error"] == sync.json()


async def test_an_unexpected_failure_is_a_500_that_reveals_nothing() -> None:
    async def crash(week: WeekInput) -> Mapping[str, Any]:
        raise RuntimeError("secret internals")

    async with _client(crash) as client:
        response = await client.post("/v1/analyses", json=_week())

    assert response.status_code == 500
    assert response.json()["code"] == "INTERNAL_SERVER_ERROR"
    assert "secret" not in response.text


@pytest.mark.parametrize(
    ("week", "field"),
    [
        (_week(values=[0.0] * 100), "week.values"),
        (_week(values=[0.0] * 42 + [-1.0] + [0.0] * 10037), "week.values[42]"),
        (_week(timezone="Mars/Olympus_Mons"), "week.timezone"),
        (_week(start="yesterday"), "week.start"),
        ({}, "week"),
    ],
    ids=["short", "negative", "zone", "start", "missing"],
)
async def test_an_invalid_week_is_422_naming_the_field(
    client: httpx.AsyncClient, analysis: CountingAnalysis, week: dict[str, Any], field: str
) -> None:
    response = await client.post("/v1/analyses", json=week)

    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert response.json()["field"] == field
    assert analysis.calls == 0


async def test_bodies_over_the_limit_are_refused_before_parsing(analysis: CountingAnalysis) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    async with _client(analysis, max_body_bytes=5000) as client:
        declared = await client.post("/v1/analyses", json=_week())
        streamed = await client.post(
            "/v1/analyses", content=chunks(), headers={"content-type": "application/json"}
        )

    for response in (declared, streamed):
        assert response.status_code == 422
        assert response.json()["field"] == "body"
        assert "5000 bytes" in response.json()["message"]
    assert analysis.calls == 0


async def test_results_are_cached_until_the_model_version_changes(analysis: CountingAnalysis) -> None:
    version = "1.0.0"
    cache = InProcessCache(name="test")
    async with _client(analysis, cache=cache, model_version=lambda: version) as client:
        first = await client.post("/v1/analyses", json=_week())
        again = await client.post("/v1/analyses", json=_week())
        queued = await client.post("/v1/analyses", params={"async": "true"}, json=_week())
        polled = await _poll_until_finished(client, queued.headers["location"])
        assert analysis.calls == 1

        version = "1.1.0"
        after_upgrade = await client.post("/v1/analyses", json=_week())

    assert first.json() == again.json() == polled["result"] == after_upgrade.json()
    assert queued.status_code == 202
    assert analysis.calls == 2


async def test_an_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/analyses/0123456789abcdef")

    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


async def test_openapi_documents_the_mirror_and_the_inference_protocol(
    model: EmbeddingInferenceModel,
) -> None:
    async with _client(CountingAnalysis(), inference_server=OpenInferenceServer([model])) as client:
        spec = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")

    assert {"/v1/analyses", "/v1/analyses/{job_id}", "/v2/health/ready", "/v2/models/{name}/infer"} <= set(
        spec["paths"]
    )
    assert docs.status_code == 200


# --- JobRegistry ---------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_registry_refuses_work_when_every_slot_is_running() -> None:
    registry = JobRegistry(max_jobs=2)
    release = asyncio.Event()

    async def blocked() -> Mapping[str, Any]:
        await release.wait()
        return {}

    registry.submit(blocked)
    registry.submit(blocked)
    with pytest.raises(ResourceExhaustedError):
        registry.submit(blocked)
    release.set()
    await registry.close()


async def test_registry_makes_room_by_dropping_the_oldest_finished_job() -> None:
    registry = JobRegistry(max_jobs=2)
    oldest = registry.completed({"n": 1})
    newer = registry.completed({"n": 2})

    newest = registry.completed({"n": 3})

    assert len(registry) == 2
    assert registry.get(newer.id).result == {"n": 2}
    assert registry.get(newest.id).status is JobStatus.DONE
    with pytest.raises(NotFoundError):
        registry.get(oldest.id)


async def test_registry_forgets_finished_jobs_after_their_ttl() -> None:
    clock = FakeClock()
    registry = JobRegistry(ttl_seconds=60, clock=clock)
    job = registry.completed({"n": 1})

    clock.now += 59
    assert registry.get(job.id).status is JobStatus.DONE
    clock.now += 1
    with pytest.raises(NotFoundError):
        registry.get(job.id)


async def test_the_app_serves_inside_the_service_runtime_next_to_its_ops_routes(
    model: EmbeddingInferenceModel,
) -> None:
    settings = ActigraphySettings(http_host="127.0.0.1", http_port=free_port())
    app = create_app(
        CountingAnalysis(), model_version=lambda: "1.0.0", inference_server=OpenInferenceServer([model])
    )
    runtime = ServiceRuntime(settings=settings, http_routes=[Mount("", app=app)])

    async with (
        running_service(runtime),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}") as client,
    ):
        healthz = await client.get("/healthz")
        analysis = await client.post("/v1/analyses", json=_week())
        ready = await client.get("/v2/health/ready")

    assert healthz.json()["service"] == "pat"
    assert analysis.status_code == 200
    assert ready.json() == {"ready": True}
