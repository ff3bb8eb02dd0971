"""The process runtime every Novamind service runs in.

One asyncio loop holds the gRPC server (with the standard health protocol and reflection), the
ops HTTP server (``/healthz``, ``/readyz``, ``/metrics`` plus any routes the service adds, such
as the gateway's GraphQL endpoint) and the service's Kafka consumers.

Readiness is re-evaluated periodically and mirrored into the gRPC health status, so Kubernetes
probes, the gateway's ``serviceHealth`` and load balancers all see the same answer.

SIGTERM or SIGINT starts a graceful shutdown: health turns NOT_SERVING, consumers finish their
in-flight record and commit offsets, the gRPC server stops accepting calls and drains in-flight
ones for up to ``shutdown_grace_seconds``, then the HTTP server and the service's own resources
close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
import uvicorn
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from novamind.core.config import ServiceSettings
from novamind.core.logging import configure_logging, safe
from novamind.core.rpc import Authenticator, ServerInterceptor
from novamind.core.telemetry import configure_tracing, metrics_payload, shutdown_tracing

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]
"""Raises (with a PHI-free message) when the service cannot serve; returns when it can."""


class Consumer(Protocol):
    """What the runtime needs of a Kafka consumer runner."""

    async def start(self) -> None: ...

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class GrpcService:
    """A gRPC service to serve: its full name (``package.Service``) and how to register it."""

    full_name: str
    register: Callable[[grpc.aio.Server], None]


@dataclass
class ServiceRuntime:
    """Everything one service process runs; built by the service's composition root."""

    settings: ServiceSettings
    grpc_services: Sequence[GrpcService] = ()
    readiness_checks: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    consumers: Sequence[Consumer] = ()
    http_routes: Sequence[BaseRoute] = ()
    on_startup: Sequence[Callable[[], Awaitable[None]]] = ()
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = ()
    authenticator: Authenticator | None = None
    readiness_interval_seconds: float = 1.0

    def __post_init__(self) -> None:
        self.name = type(self.settings).service_name
        self._stopping = asyncio.Event()
        self._ready = False
        self._readiness: dict[str, str] = {}
        self._health = health_aio.HealthServicer()
        self._grpc_server: grpc.aio.Server | None = None
        self._http_server: uvicorn.Server | None = None
        self.grpc_port: int | None = None

    # ---- readiness -------------------------------------------------------------------------

    async def evaluate_readiness(self) -> bool:
        """Run every readiness check; mirror the result into the gRPC health status."""
        results: dict[str, str] = {}
        for check_name, check in self.readiness_checks.items():
            try:
                await check()
                results[check_name] = "ok"
            except Exception as exc:
                results[check_name] = str(exc) or type(exc).__name__
        ready = all(v == "ok" for v in results.values()) and not self._stopping.is_set()
        if ready != self._ready:
            log.info("readiness changed to %s", ready, extra={"checks": safe(results)})
        self._ready, self._readiness = ready, results
        status = (
            health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *(s.full_name for s in self.grpc_services)):
            await self._health.set(name, status)
        return ready

    async def _readiness_loop(self) -> None:
        while not self._stopping.is_set():
            await self.evaluate_readiness()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.readiness_interval_seconds)

    # ---- HTTP ------------------------------------------------------------------------------

    def http_app(self) -> Starlette:
        async def healthz(_: Request) -> Response:
            return JSONResponse({"status": "ok", "service": self.name})

        async def readyz(_: Request) -> Response:
            ready = await self.evaluate_readiness()
            body = {"ready": ready, "service": self.name, "checks": self._readiness}
            return JSONResponse(body, status_code=200 if ready else 503)

        async def metrics(_: Request) -> Response:
            payload, content_type = metrics_payload()
            return Response(payload, media_type=content_type)

        routes: list[BaseRoute] = [
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            *self.http_routes,
        ]
        return Starlette(routes=routes)

    # ---- lifecycle -------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Begin a graceful shutdown (what SIGTERM does)."""
        self._stopping.set()

    async def _start_grpc(self) -> None:
        if not self.grpc_services:
            return
        s = self.settings
        server = grpc.aio.server(
            interceptors=[ServerInterceptor(self.name, self.authenticator)],
            options=[
                ("grpc.max_receive_message_length", s.max_message_bytes),
                ("grpc.max_send_message_length", s.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        for service in self.grpc_services:
            service.register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        if s.grpc_reflection:
            names = [svc.full_name for svc in self.grpc_services]
            names += [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
            reflection.enable_server_reflection(names, server)
        self.grpc_port = server.add_insecure_port(f"{s.grpc_host}:{s.grpc_port}")
        if self.grpc_port == 0:
            raise OSError(f"cannot bind gRPC port {s.grpc_port}")
        await server.start()
        self._grpc_server = server

    async def _start_http(self) -> asyncio.Task[None]:
        config = uvicorn.Config(
            self.http_app(),
            host=self.settings.http_host,
            port=self.settings.http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="auto",
        )
        server = _EmbeddedUvicorn(config)
        self._http_server = server
        task = asyncio.create_task(server.serve(), name="http")
        while not server.started:
            if task.done():
                task.result()
                raise OSError(f"HTTP server did not start on port {self.settings.http_port}")
            await asyncio.sleep(0.01)
        return task

    async def run(self) -> None:
        """Serve until :meth:`request_stop` or SIGTERM/SIGINT, then shut down gracefully."""
        s = self.settings
        configure_logging(self.name, level=s.log_level, pseudonym_key=s.pseudonym_key.get_secret_value())
        configure_tracing(self.name, otlp_endpoint=s.otlp_endpoint)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)

        tasks: list[asyncio.Task[Any]] = []
        try:
            for hook in self.on_startup:
                await hook()
            await self._start_grpc()
            # Health answers before the ops port opens, so /healthz never precedes a status.
            await self.evaluate_readiness()
            tasks.append(await self._start_http())
            for consumer in self.consumers:
                await consumer.start()
                tasks.append(asyncio.create_task(consumer.run(), name="consumer"))
            tasks.append(asyncio.create_task(self._readiness_loop(), name="readiness"))
            log.info(
                "%s serving",
                safe(self.name),
                extra={"grpc_port": self.grpc_port, "http_port": s.http_port},
            )
            stop_waiter = asyncio.create_task(self._stopping.wait())
            done, _ = await asyncio.wait([stop_waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop_waiter and task.exception() is not None:
                    log.error("%s task failed: %s", safe(task.get_name()), task.exception())
            stop_waiter.cancel()
        finally:
            await self._shutdown(tasks)

    async def _shutdown(self, tasks: list[asyncio.Task[Any]]) -> None:
        log.info("%s shutting down", safe(self.name))
        self._stopping.set()
        grace = self.settings.shutdown_grace_seconds
        await self._health.enter_graceful_shutdown()
        for consumer in self.consumers:
            try:
                await asyncio.wait_for(consumer.stop(), grace)
            except Exception as exc:
                log.error("consumer stop failed: %s", exc)
        if self._grpc_server is not None:
            await self._grpc_server.stop(grace)
        if self._http_server is not None:
            self._http_server.should_exit = True
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, grace)
        for hook in self.on_shutdown:
            try:
                await hook()
            except Exception as exc:
                log.error("shutdown hook failed: %s", exc)
        shutdown_tracing()
        log.info("%s stopped", safe(self.name))


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run_service(build: Callable[[], ServiceRuntime]) -> None:
    """Entry point helper: build the runtime inside the loop and run it to completion."""

    async def main() -> None:
        runtime = build()
        await runtime.run()

    asyncio.run(main())
