"""Asks each back-end service's standard gRPC health service how it is."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from novamind.core.rpc import open_channel
from novamind.gateway.domain.health import ServiceHealthReport, ServingStatus

_STATUS = {
    health_pb2.HealthCheckResponse.SERVING: ServingStatus.SERVING,
    health_pb2.HealthCheckResponse.NOT_SERVING: ServingStatus.NOT_SERVING,
    health_pb2.HealthCheckResponse.UNKNOWN: ServingStatus.UNKNOWN,
    health_pb2.HealthCheckResponse.SERVICE_UNKNOWN: ServingStatus.SERVICE_UNKNOWN,
}


class FleetHealthChecker:
    """Health checks of the back-end services, each bounded by ``timeout`` seconds."""

    def __init__(self, addresses: Mapping[str, str], *, timeout: float) -> None:
        self._addresses = dict(addresses)
        self._timeout = timeout
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _stub(self, service: str) -> health_pb2_grpc.HealthStub:
        channel = self._channels.get(service)
        if channel is None:
            channel = open_channel(self._addresses[service], default_timeout=self._timeout)
            self._channels[service] = channel
        return health_pb2_grpc.HealthStub(channel)

    async def check(self, service: str) -> ServiceHealthReport:
        started = time.perf_counter()
        address = self._addresses[service]
        try:
            response = await self._stub(service).Check(health_pb2.HealthCheckRequest(), timeout=self._timeout)
            status, detail = _STATUS.get(response.status, ServingStatus.UNKNOWN), None
        except grpc.aio.AioRpcError as exc:
            status, detail = ServingStatus.UNREACHABLE, f"{exc.code().name}: no health answer"
        latency_ms = (time.perf_counter() - started) * 1000.0
        return ServiceHealthReport(service, address, status, round(latency_ms, 2), detail)

    async def check_all(self) -> list[ServiceHealthReport]:
        """Every service's report, checked concurrently, in configuration order."""
        return list(await asyncio.gather(*(self.check(name) for name in self._addresses)))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(None)
        self._channels.clear()
