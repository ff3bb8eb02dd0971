"""Kafka record headers: the event envelope, trace context, and the dead-letter annotations.

Kafka headers are an ordered list of ``(name, bytes)`` pairs (:data:`RawHeaders`). Novamind's
headers are UTF-8 text. The payload never goes into a header: headers are logged and traced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter

#: Kafka's own header representation, as aiokafka produces and consumes it.
RawHeaders = list[tuple[str, bytes]]

EVENT_ID = "event-id"
EVENT_TYPE = "event-type"
CONTENT_TYPE = "content-type"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

DLQ_REASON = "dlq-reason"
DLQ_ERROR_CODE = "dlq-error-code"
DLQ_ATTEMPTS = "dlq-attempts"
DLQ_SOURCE_TOPIC = "dlq-source-topic"
DLQ_SOURCE_PARTITION = "dlq-source-partition"
DLQ_SOURCE_OFFSET = "dlq-source-offset"
DLQ_CONSUMER_GROUP = "dlq-consumer-group"
DLQ_FAILED_AT = "dlq-failed-at"

DLQ_HEADERS: frozenset[str] = frozenset(
    {
        DLQ_REASON,
        DLQ_ERROR_CODE,
        DLQ_ATTEMPTS,
        DLQ_SOURCE_TOPIC,
        DLQ_SOURCE_PARTITION,
        DLQ_SOURCE_OFFSET,
        DLQ_CONSUMER_GROUP,
        DLQ_FAILED_AT,
    }
)

JSON_CONTENT_TYPE = "application/json"


def encode_headers(headers: Mapping[str, str]) -> RawHeaders:
    """Text headers as Kafka headers (UTF-8)."""
    return [(name, value.encode("utf-8")) for name, value in headers.items()]


def decode_headers(raw: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Kafka headers as text (invalid UTF-8 is replaced, a repeated name keeps its last value)."""
    return {name: (value or b"").decode("utf-8", errors="replace") for name, value in (raw or ())}


class KafkaHeadersSetter(Setter[RawHeaders]):
    """Writes OpenTelemetry propagation fields into a Kafka header list, replacing old values."""

    def set(self, carrier: RawHeaders, key: str, value: str) -> None:
        carrier[:] = [(name, raw) for name, raw in carrier if name != key]
        carrier.append((key, value.encode("utf-8")))


class KafkaHeadersGetter(Getter[Sequence[tuple[str, bytes | None]]]):
    """Reads OpenTelemetry propagation fields from a Kafka header list."""

    def get(self, carrier: Sequence[tuple[str, bytes | None]], key: str) -> list[str] | None:
        values = [(raw or b"").decode("utf-8", errors="replace") for name, raw in carrier if name == key]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, bytes | None]]) -> list[str]:
        return [name for name, _ in carrier]


_SETTER = KafkaHeadersSetter()
_GETTER = KafkaHeadersGetter()


def inject_trace_context(headers: RawHeaders, context: Context | None = None) -> None:
    """Add the current (or ``context``'s) trace context to ``headers`` via the global propagator."""
    propagate.inject(headers, context=context, setter=_SETTER)


def extract_trace_context(headers: Sequence[tuple[str, bytes | None]] | None) -> Context:
    """The trace context carried by ``headers`` (an empty context when there is none)."""
    return propagate.extract(list(headers or ()), getter=_GETTER)
