"""The pharmacogenomics composition root serves its contract with health, and unserved RPCs say so."""

from __future__ import annotations

import grpc
import pytest

from novamind.api.pharmacogenomics.v1 import pharmacogenomics_pb2, pharmacogenomics_pb2_grpc
from novamind.devtools.net import free_port
from novamind.devtools.pytest_plugin import health_status, running_service
from novamind.pharmacogenomics.app import SERVICE_NAME, build_runtime
from novamind.pharmacogenomics.config import PharmacogenomicsSettings


async def test_serves_health_and_answers_unserved_rpcs_not_implemented() -> None:
    settings = PharmacogenomicsSettings(
        grpc_host="127.0.0.1", grpc_port=free_port(), http_host="127.0.0.1", http_port=free_port()
    )
    async with running_service(build_runtime(settings)):
        assert SERVICE_NAME == "novamind.api.pharmacogenomics.v1.PharmacogenomicsService"
        assert await health_status(settings.grpc_port, SERVICE_NAME) == "SERVING"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await pharmacogenomics_pb2_grpc.PharmacogenomicsServiceStub(channel).InterpretGenotype(
                    pharmacogenomics_pb2.InterpretGenotypeRequest(), timeout=5
                )
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert "InterpretGenotype" in (caught.value.details() or "")
