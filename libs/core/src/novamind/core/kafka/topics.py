"""The fleet's Kafka topics (see "Event bus" in ARCHITECTURE.md) and an idempotent topic creator.

Every topic is keyed by the patient pseudonym and has a dead-letter twin, ``<topic>.dlq``, where
consumers park poison messages. Partition counts here are the development defaults; a cluster's
topics are declared as Strimzi ``KafkaTopic`` resources under ``deploy/``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from novamind.core.errors import ServiceUnavailableError

DEVICE_READINGS = "device.readings.v1"
SYMPTOM_REPORTS = "symptom.reports.v1"
ACTIGRAPHY_ANALYSIS_REQUESTED = "actigraphy.analysis.requested.v1"
ACTIGRAPHY_ANALYSIS_COMPLETED = "actigraphy.analysis.completed.v1"
TWIN_UPDATED = "twin.updated.v1"

DLQ_SUFFIX = ".dlq"


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of ``topic`` (``device.readings.v1`` -> ``device.readings.v1.dlq``)."""
    return f"{topic}{DLQ_SUFFIX}"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create: its name, partition count and replication factor."""

    name: str
    partitions: int = 3
    replication: int = 1


def with_dlq(spec: TopicSpec) -> tuple[TopicSpec, TopicSpec]:
    """``spec`` and its single-partition DLQ (dead letters are rare; order across keys is moot)."""
    return spec, TopicSpec(dlq_topic(spec.name), partitions=1, replication=spec.replication)


#: Every topic of the fleet, each followed by its DLQ.
FLEET_TOPICS: tuple[TopicSpec, ...] = tuple(
    spec
    for name in (
        DEVICE_READINGS,
        SYMPTOM_REPORTS,
        ACTIGRAPHY_ANALYSIS_REQUESTED,
        ACTIGRAPHY_ANALYSIS_COMPLETED,
        TWIN_UPDATED,
    )
    for spec in with_dlq(TopicSpec(name))
)


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec], *, timeout: float = 15.0) -> None:
    """Create the topics in ``specs`` that do not exist yet; existing ones are left as they are.

    ``timeout`` bounds each admin request (seconds). Raises :class:`ServiceUnavailableError` when
    the brokers cannot be reached or refuse to create a topic.
    """
    new_topics = [NewTopic(spec.name, spec.partitions, spec.replication) for spec in specs]
    if not new_topics:
        return
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="novamind-topic-admin",
        request_timeout_ms=int(timeout * 1000),
    )
    try:
        await admin.start()
        response = await admin.create_topics(new_topics, timeout_ms=int(timeout * 1000))
    except TopicAlreadyExistsError:
        return
    except KafkaError as exc:
        raise ServiceUnavailableError(
            f"could not create Kafka topics: {type(exc).__name__}", service="kafka"
        ) from exc
    finally:
        await admin.close()
    failures = [
        f"{topic}: {for_code(code).__name__}"
        for topic, code, *_ in response.topic_errors
        if code not in (0, TopicAlreadyExistsError.errno)
    ]
    if failures:
        raise ServiceUnavailableError(
            f"could not create Kafka topics ({'; '.join(failures)})", service="kafka"
        )
