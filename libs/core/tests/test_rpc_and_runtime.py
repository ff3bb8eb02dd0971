"""gRPC helpers and the service runtime over real loopback servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from typing import Any, ClassVar

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace

from novamind.api.common.v1 import common_pb2
from novamind.api.forecasting.v1 import forecasting_pb2, forecasting_pb2_grpc
from novamind.core.config import ServiceSettings
from novamind.core.errors import DeadlineExceededError, NotImplementedYetError, ValidationError
from novamind.core.resilience import CircuitBreakers, RetryPolicy, deadline_scope, time_remaining
from novamind.core.rpc import ServiceClient, open_channel
from novamind.core.service import GrpcService, ServiceRuntime
from novamind.core.telemetry import configure_tracing
from novamind.devtools.net import free_port
from novamind.devtools.pytest_plugin import running_service

FORECASTING = forecasting_pb2.DESCRIPTOR.services_by_name["ForecastingService"].full_name


class _Settings(ServiceSettings):
    service_name: ClassVar[str] = "probe"


class ProbeServicer(forecasting_pb2_grpc.ForecastingServiceServicer):
    """Forecast behaves according to the request's horizon, and records what the server saw."""

    def __init__(self) -> None:
        self.seen_deadlines: list[float | None] = []
        self.seen_trace_ids: list[int] = []
        self.release = asyncio.Event()

    async def Forecast(self, request, context):  # type: ignore[no-untyped-def]
        self.seen_deadlines.append(time_remaining())
        self.seen_trace_ids.append(trace.get_current_span().get_span_context().trace_id)
        if request.horizon_days == 99:
            raise ValidationError("horizon above the maximum of 30 days", field="horizon_days")
        if request.horizon_days == 77:
            await self.release.wait()
        if request.horizon_days == 55:
            await asyncio.sleep(5)
        return forecasting_pb2.ForecastResponse()


def probe_runtime(servicer: ProbeServicer, **options: Any) -> ServiceRuntime:
    """A runtime serving ``servicer`` as ForecastingService on free loopback ports."""
    settings = _Settings(
        grpc_host="127.0.0.1", grpc_port=free_port(), http_host="127.0.0.1", http_port=free_port()
    )
    register = partial(forecasting_pb2_grpc.add_ForecastingServiceServicer_to_server, servicer)
    return ServiceRuntime(settings=settings, grpc_services=[GrpcService(FORECASTING, register)], **options)


@pytest.fixture
async def running() -> AsyncIterator[tuple[ServiceRuntime, ProbeServicer, dict[str, bool]]]:
    servicer = ProbeServicer()
    flags = {"ready": True}

    async def model_loaded() -> None:
        if not flags["ready"]:
            raise RuntimeError("model weights missing")

    runtime = probe_runtime(
        servicer, readiness_checks={"model": model_loaded}, readiness_interval_seconds=0.05
    )
    async with running_service(runtime):
        yield runtime, servicer, flags


def _client(
    runtime: ServiceRuntime,
) -> tuple[grpc.aio.Channel, ServiceClient, forecasting_pb2_grpc.ForecastingServiceStub]:
    channel = open_channel(f"127.0.0.1:{runtime.settings.grpc_port}")
    client = ServiceClient(
        "forecasting",
        channel,
        breakers=CircuitBreakers(),
        retry_policy=RetryPolicy(max_attempts=2, initial_backoff=0.01),
    )
    return channel, client, forecasting_pb2_grpc.ForecastingServiceStub(channel)


async def test_taxonomy_errors_cross_the_wire_with_their_detail(running) -> None:  # type: ignore[no-untyped-def]
    runtime, _, _ = running
    channel, client, stub = _client(runtime)
    async with channel:
        with pytest.raises(ValidationError) as caught:
            await client.call(stub.Forecast, forecasting_pb2.ForecastRequest(horizon_days=99))
        assert caught.value.field == "horizon_days"
        assert caught.value.service == "probe"
        assert "maximum of 30 days" in caught.value.message

        with pytest.raises(grpc.aio.AioRpcError) as raw:
            await stub.Forecast(forecasting_pb2.ForecastRequest(horizon_days=99))
        assert raw.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_unserved_contract_rpcs_answer_not_implemented(running) -> None:  # type: ignore[no-untyped-def]
    runtime, _, _ = running
    channel, client, stub = _client(runtime)
    async with channel:
        with pytest.raises(NotImplementedYetError):
            await client.call(stub.Backtest, forecasting_pb2.BacktestRequest())


async def test_callers_deadline_and_trace_reach_the_server(running) -> None:  # type: ignore[no-untyped-def]
    runtime, servicer, _ = running
    configure_tracing("probe-client")
    channel, client, stub = _client(runtime)
    tracer = trace.get_tracer("test")
    async with channel:
        with tracer.start_as_current_span("caller") as span, deadline_scope(0.8):
            await client.call(stub.Forecast, forecasting_pb2.ForecastRequest(horizon_days=7))
        assert servicer.seen_deadlines[-1] is not None and 0 < servicer.seen_deadlines[-1] <= 0.8
        assert servicer.seen_trace_ids[-1] == span.get_span_context().trace_id

        with deadline_scope(0.3), pytest.raises(DeadlineExceededError):
            await client.call(stub.Forecast, forecasting_pb2.ForecastRequest(horizon_days=55))


async def test_health_follows_readiness(running) -> None:  # type: ignore[no-untyped-def]
    runtime, _, flags = running
    port = runtime.settings.grpc_port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def status() -> int:
            return (await health.Check(health_pb2.HealthCheckRequest(service=FORECASTING))).status

        assert await status() == health_pb2.HealthCheckResponse.SERVING
        flags["ready"] = False
        async with asyncio.timeout(5):
            while await status() != health_pb2.HealthCheckResponse.NOT_SERVING:
                await asyncio.sleep(0.02)
    async with httpx.AsyncClient() as client:
        ready = await client.get(f"http://127.0.0.1:{runtime.settings.http_port}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["model"] == "model weights missing"
        metrics = await client.get(f"http://127.0.0.1:{runtime.settings.http_port}/metrics")
        assert "novamind_grpc_server_handled_total" in metrics.text


async def test_stop_drains_in_flight_requests() -> None:
    servicer = ProbeServicer()
    runtime = probe_runtime(servicer)
    task = asyncio.create_task(runtime.run())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.settings.grpc_port}") as channel:
        stub = forecasting_pb2_grpc.ForecastingServiceStub(channel)
        await stub.Forecast(forecasting_pb2.ForecastRequest(horizon_days=1), wait_for_ready=True, timeout=10)

        async def slow_call() -> forecasting_pb2.ForecastResponse:
            return await stub.Forecast(forecasting_pb2.ForecastRequest(horizon_days=77), timeout=10)

        in_flight = asyncio.create_task(slow_call())
        async with asyncio.timeout(5):
            while len(servicer.seen_deadlines) < 2:
                await asyncio.sleep(0.01)
        runtime.request_stop()
        # Wait until the server refuses new calls: shutdown is under way with one call in flight.
        async with asyncio.timeout(5):
            while True:
                try:
                    await stub.Forecast(forecasting_pb2.ForecastRequest(horizon_days=1), timeout=0.5)
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
                    break
                await asyncio.sleep(0.01)
        assert not in_flight.done()
        servicer.release.set()
        response = await in_flight
        assert isinstance(response, forecasting_pb2.ForecastResponse)
    await asyncio.wait_for(task, 15)


def test_error_detail_message_is_the_shared_contract() -> None:
    assert {f.name for f in common_pb2.ErrorDetail.DESCRIPTOR.fields} >= {
        "code",
        "message",
        "service",
        "field",
        "retryable",
    }


async def test_handlers_that_abort_with_their_own_status_keep_it(running) -> None:  # type: ignore[no-untyped-def]
    runtime, _, _ = running
    async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.settings.grpc_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="no.such.Service")
            )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
