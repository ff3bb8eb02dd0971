"""The pat composition root serves its contract with health, and unserved RPCs say so."""

from __future__ import annotations

import grpc
import pytest

from novamind.api.actigraphy.v1 import actigraphy_pb2, actigraphy_pb2_grpc
from novamind.devtools.net import free_port
from novamind.devtools.pytest_plugin import health_status, running_service
from novamind.pat.app import SERVICE_NAME, build_runtime
from novamind.pat.config import ActigraphySettings


async def test_serves_health_and_answers_unserved_rpcs_not_implemented() -> None:
    settings = ActigraphySettings(
        grpc_host="127.0.0.1", grpc_port=free_port(), http_host="127.0.0.1", http_port=free_port()
    )
    async with running_service(build_runtime(settings)):
        assert SERVICE_NAME == "novamind.api.actigraphy.v1.ActigraphyService"
        assert await health_status(settings.grpc_port, SERVICE_NAME) == "SERVING"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await actigraphy_pb2_grpc.ActigraphyServiceStub(channel).Embed(
                    actigraphy_pb2.EmbedRequest(), timeout=5
                )
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert "Embed" in (caught.value.details() or "")
