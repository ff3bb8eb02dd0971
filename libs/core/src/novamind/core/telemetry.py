"""OpenTelemetry tracing and Prometheus metrics bootstrap.

Traces: one global tracer provider per process, named after the service; spans are exported over
OTLP/gRPC when ``NOVAMIND_OTLP_ENDPOINT`` is set, and otherwise still created so trace ids reach
the logs and travel in gRPC metadata and Kafka headers (W3C Trace Context).

Metrics: the process-wide Prometheus registry, served on ``/metrics`` by the ops HTTP server.
Label values never carry PHI: service, method, topic, dependency and status code only.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest

#: Histogram buckets for request and handler latencies (seconds): 1 ms to 30 s.
LATENCY_BUCKETS_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

SERVICE_INFO = Gauge("novamind_service_info", "Service identity", ["service", "version"])

_provider: TracerProvider | None = None


def configure_tracing(service: str, *, otlp_endpoint: str = "", version: str = "0.1.0") -> TracerProvider:
    """Install the global tracer provider for ``service`` (idempotent within a process)."""
    global _provider
    if _provider is not None:
        return _provider
    provider = TracerProvider(resource=Resource.create({"service.name": service, "service.version": version}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True))
        )
    trace.set_tracer_provider(provider)
    SERVICE_INFO.labels(service=service, version=version).set(1)
    _provider = provider
    return provider


def shutdown_tracing() -> None:
    """Flush and stop span export (called on graceful shutdown)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def metrics_payload() -> tuple[bytes, str]:
    """The Prometheus exposition of the process registry and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
