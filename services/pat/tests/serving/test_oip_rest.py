"""The Open Inference Protocol v2 over REST (JSON tensors), and its result cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest_asyncio
from fastapi import FastAPI

from novamind.core.cache import InProcessCache
from novamind.pat.serving.model import EmbeddingInferenceModel
from novamind.pat.serving.oip import OpenInferenceServer, oip_router

MODEL = "pat-test"


def _app(server: OpenInferenceServer) -> FastAPI:
    app = FastAPI()
    app.include_router(oip_router(server))
    return app


@pytest_asyncio.fixture
async def client(model: EmbeddingInferenceModel) -> AsyncIterator[httpx.AsyncClient]:
    app = _app(OpenInferenceServer([model], name="novamind-pat", version="0.1.0"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pat") as c:
        yield c


def _infer_body(weeks: np.ndarray, **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "week", "shape": list(weeks.shape), "datatype": "FP32", "data": weeks.ravel().tolist()}
        ],
        **extra,
    }


async def test_health_and_server_metadata(client: httpx.AsyncClient) -> None:
    live = await client.get("/v2/health/live")
    ready = await client.get("/v2/health/ready")
    metadata = await client.get("/v2")

    assert (live.status_code, live.json()) == (200, {"live": True})
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    assert metadata.json() == {"name": "novamind-pat", "version": "0.1.0", "extensions": []}


async def test_model_metadata_and_readiness(client: httpx.AsyncClient) -> None:
    metadata = await client.get(f"/v2/models/{MODEL}")
    versioned = await client.get(f"/v2/models/{MODEL}/versions/1.0.0")
    ready = await client.get(f"/v2/models/{MODEL}/ready")

    assert metadata.status_code == 200
    assert metadata.json() == versioned.json()
    assert metadata.json()["inputs"] == [{"name": "week", "datatype": "FP32", "shape": [-1, 10080]}]
    assert [o["name"] for o in metadata.json()["outputs"]] == ["embedding", "explanation"]
    assert (ready.status_code, ready.json()) == (200, {"name": MODEL, "ready": True})


async def test_not_ready_answers_400_as_the_v2_spec_asks(client: httpx.AsyncClient, embedder: Any) -> None:
    embedder.loaded = False

    server_ready = await client.get("/v2/health/ready")
    model_ready = await client.get(f"/v2/models/{MODEL}/ready")

    assert (server_ready.status_code, server_ready.json()) == (400, {"ready": False})
    assert (model_ready.status_code, model_ready.json()["ready"]) == (400, False)


async def test_infer_returns_json_tensors(
    client: httpx.AsyncClient, weeks: np.ndarray, embedder: Any
) -> None:
    response = await client.post(
        f"/v2/models/{MODEL}/infer", json=_infer_body(weeks, id="abc", outputs=[{"name": "embedding"}])
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == (MODEL, "1.0.0", "abc")
    (embedding,) = body["outputs"]
    assert (embedding["name"], embedding["datatype"], embedding["shape"]) == ("embedding", "FP32", [2, 96])
    got = np.asarray(embedding["data"], dtype=np.float32).reshape(2, 96)
    np.testing.assert_allclose(got[1], embedder.expected(weeks[1])[0], rtol=1e-5, atol=1e-5)


async def test_nested_data_and_null_as_missing_minutes_are_accepted(
    client: httpx.AsyncClient, weeks: np.ndarray, embedder: Any
) -> None:
    week: list[float | None] = weeks[0].tolist()
    week[100:200] = [None] * 100
    body = {"inputs": [{"name": "week", "shape": [1, 10080], "datatype": "FP32", "data": [week]}]}

    response = await client.post(f"/v2/models/{MODEL}/infer", json=body)

    assert response.status_code == 200
    expected = embedder.expected(np.asarray(week, dtype=np.float64))[0]
    np.testing.assert_allclose(response.json()["outputs"][0]["data"], expected, rtol=1e-5, atol=1e-5)


async def test_bad_shape_is_422_with_the_v2_error_body(client: httpx.AsyncClient) -> None:
    body = {"inputs": [{"name": "week", "shape": [1, 60], "datatype": "FP32", "data": [0.0] * 60}]}

    response = await client.post(f"/v2/models/{MODEL}/infer", json=body)

    assert response.status_code == 422
    error = response.json()
    assert error["code"] == "VALIDATION_ERROR"
    assert error["field"] == "inputs[week].shape"
    assert error["error"] == error["message"]


async def test_data_that_do_not_fill_the_shape_are_422(client: httpx.AsyncClient) -> None:
    body = {"inputs": [{"name": "week", "shape": [1, 10080], "datatype": "FP32", "data": [0.0] * 10}]}

    response = await client.post(f"/v2/models/{MODEL}/infer", json=body)

    assert (response.status_code, response.json()["field"]) == (422, "inputs[0].data")


async def test_malformed_request_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v2/models/{MODEL}/infer", json={"inputs": [{"name": "week"}]})

    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert response.json()["field"].startswith("inputs[0].")


async def test_unknown_model_is_404(client: httpx.AsyncClient, weeks: np.ndarray) -> None:
    metadata = await client.get("/v2/models/no-such-model")
    infer = await client.post("/v2/models/no-such-model/infer", json=_infer_body(weeks))

    assert (metadata.status_code, metadata.json()["code"]) == (404, "NOT_FOUND")
    assert infer.status_code == 404


async def test_unloaded_model_refuses_inference_with_503(
    client: httpx.AsyncClient, embedder: Any, weeks: np.ndarray
) -> None:
    embedder.loaded = False

    response = await client.post(f"/v2/models/{MODEL}/infer", json=_infer_body(weeks))

    assert (response.status_code, response.json()["code"]) == (503, "MODEL_NOT_READY")


async def test_repeated_input_is_answered_from_the_cache_until_the_model_version_changes(
    embedder: Any, weeks: np.ndarray
) -> None:
    cache = InProcessCache(name="test")

    def served(version: str) -> httpx.AsyncClient:
        model = EmbeddingInferenceModel(embedder.embed, name=MODEL, version=version)
        app = _app(OpenInferenceServer([model], cache=cache))
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pat")

    async with served("1.0.0") as v1, served("2.0.0") as v2:
        first = await v1.post(f"/v2/models/{MODEL}/infer", json=_infer_body(weeks))
        calls_after_first = embedder.calls
        again = await v1.post(f"/v2/models/{MODEL}/infer", json=_infer_body(weeks))
        calls_after_again = embedder.calls
        new_version = await v2.post(f"/v2/models/{MODEL}/infer", json=_infer_body(weeks))

    assert calls_after_first == 2  # one call per week of the batch
    assert calls_after_again == calls_after_first
    assert embedder.calls == calls_after_first + 2
    assert first.json()["outputs"] == again.json()["outputs"]
    assert new_version.json()["model_version"] == "2.0.0"
