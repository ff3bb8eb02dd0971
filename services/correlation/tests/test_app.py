"""The correlation composition root serves its contract with health, and unserved RPCs say so."""

from __future__ import annotations

import grpc
import pytest

from novamind.api.correlation.v1 import correlation_pb2, correlation_pb2_grpc
from novamind.correlation.app import SERVICE_NAME, build_runtime
from novamind.correlation.config import CorrelationSettings
from novamind.devtools.net import free_port
from novamind.devtools.pytest_plugin import health_status, running_service


async def test_serves_health_and_answers_unserved_rpcs_not_implemented() -> None:
    settings = CorrelationSettings(
        grpc_host="127.0.0.1", grpc_port=free_port(), http_host="127.0.0.1", http_port=free_port()
    )
    async with running_service(build_runtime(settings)):
        assert SERVICE_NAME == "novamind.api.correlation.v1.CorrelationService"
        assert await health_status(settings.grpc_port, SERVICE_NAME) == "SERVING"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await correlation_pb2_grpc.CorrelationServiceStub(channel).AnalyzeCorrelations(
                    correlation_pb2.AnalyzeCorrelationsRequest(), timeout=5
                )
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert "AnalyzeCorrelations" in (caught.value.details() or "")
