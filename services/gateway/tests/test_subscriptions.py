"""twinUpdated over WebSocket (graphql-transport-ws), fed by twin.updated.v1 on the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf import json_format
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from novamind.api.common.v1 import common_pb2
from novamind.api.events.v1 import events_pb2
from novamind.core.errors import ResourceExhaustedError
from novamind.devtools.pytest_plugin import KafkaTopicFactory, wait_for
from novamind.gateway.adapters.twin_updates import TwinUpdatesHub

from .conftest import GatewayFactory, Tokens, new_identifier, pseudonym, wait_subscribed, ws_session

SUBSCRIPTION = """subscription($id: ID!) {
  twinUpdated(patientId: $id) { patientId version previousVersion changedSections causeEventId }
}"""


def twin_updated(patient: str, version: int) -> events_pb2.TwinUpdated:
    return events_pb2.TwinUpdated(
        event_id=str(uuid.uuid4()),
        patient=common_pb2.PatientRef(pseudonym=patient),
        version=version,
        previous_version=version - 1,
        changed_sections=["symptoms"],
        cause_event_id=str(uuid.uuid4()),
    )


async def produce(bootstrap: str, topic: str, *records: tuple[bytes, str]) -> None:
    """Send (value, content type) records with a plain producer, keyed like the twin does."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value, content_type in records:
            await producer.send_and_wait(topic, value, headers=[("content-type", content_type.encode())])
    finally:
        await producer.stop()


def as_json(event: events_pb2.TwinUpdated) -> tuple[bytes, str]:
    return json_format.MessageToJson(event, indent=None).encode(), "application/json"


async def test_subscribers_get_their_patients_updates_only(
    gateway_factory: GatewayFactory,
    kafka_bootstrap: str,
    kafka_topic_factory: KafkaTopicFactory,
    tokens: Tokens,
) -> None:
    topic = await kafka_topic_factory("twin-updated")
    mine, theirs = new_identifier(), new_identifier()
    clinician = tokens.clinician([mine, theirs])
    async with gateway_factory(kafka_bootstrap=kafka_bootstrap, twin_updates_topic=topic) as gateway:
        await wait_for(
            lambda: gateway.gateway.services.hub is not None and gateway.gateway.services.hub.ready.is_set()
        )
        async with (
            ws_session(gateway.ws_url, token=clinician) as first,
            ws_session(gateway.ws_url, header_token=clinician) as second,
        ):
            # Raw identifiers are pseudonymised at the edge here too.
            await first.subscribe("a", SUBSCRIPTION, {"id": mine})
            await second.subscribe("b", SUBSCRIPTION, {"id": pseudonym(theirs)})
            await wait_subscribed(gateway, pseudonym(mine))
            await wait_subscribed(gateway, pseudonym(theirs))

            for_mine = twin_updated(pseudonym(mine), 4)
            for_theirs = twin_updated(pseudonym(theirs), 9)
            await produce(
                kafka_bootstrap,
                topic,
                as_json(for_mine),
                (b"{not json", "application/json"),
                (for_theirs.SerializeToString(), "application/x-protobuf"),
            )

            message = await first.receive()
            assert message == {
                "id": "a",
                "type": "next",
                "payload": {
                    "data": {
                        "twinUpdated": {
                            "patientId": pseudonym(mine),
                            "version": 4,
                            "previousVersion": 3,
                            "changedSections": ["symptoms"],
                            "causeEventId": for_mine.cause_event_id,
                        }
                    }
                },
            }
            # The other subscriber's first message is its own patient's event, not the first one.
            message = await second.receive()
            assert message["id"] == "b"
            assert message["payload"]["data"]["twinUpdated"]["patientId"] == pseudonym(theirs)
            assert message["payload"]["data"]["twinUpdated"]["version"] == 9

            await first.complete("a")
            await wait_for(lambda: gateway.gateway.services.hub.subscriber_count(pseudonym(mine)) == 0)  # type: ignore[union-attr]


async def test_every_replica_sees_every_event(
    gateway_factory: GatewayFactory,
    kafka_bootstrap: str,
    kafka_topic_factory: KafkaTopicFactory,
    tokens: Tokens,
) -> None:
    topic = await kafka_topic_factory("twin-updated")
    patient = pseudonym(new_identifier())
    service = tokens.service()
    async with (
        gateway_factory(kafka_bootstrap=kafka_bootstrap, twin_updates_topic=topic) as one,
        gateway_factory(kafka_bootstrap=kafka_bootstrap, twin_updates_topic=topic) as two,
        ws_session(one.ws_url, token=service) as on_one,
        ws_session(two.ws_url, token=service) as on_two,
    ):
        await on_one.subscribe("1", SUBSCRIPTION, {"id": patient})
        await on_two.subscribe("2", SUBSCRIPTION, {"id": patient})
        await wait_subscribed(one, patient)
        await wait_subscribed(two, patient)
        await produce(kafka_bootstrap, topic, as_json(twin_updated(patient, 2)))
        for session in (on_one, on_two):
            message = await session.receive()
            assert message["payload"]["data"]["twinUpdated"]["version"] == 2


async def test_unauthorised_subscribers_are_refused(
    gateway_factory: GatewayFactory,
    kafka_bootstrap: str,
    kafka_topic_factory: KafkaTopicFactory,
    tokens: Tokens,
) -> None:
    topic = await kafka_topic_factory("twin-updated")
    assigned, unassigned = new_identifier(), new_identifier()
    async with gateway_factory(kafka_bootstrap=kafka_bootstrap, twin_updates_topic=topic) as gateway:
        # A bad token: the connection is closed at connection_init.
        async with connect(gateway.ws_url, subprotocols=["graphql-transport-ws"]) as connection:  # type: ignore[list-item]
            await connection.send(
                '{"type": "connection_init", "payload": {"authorization": "Bearer forged"}}'
            )
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(connection.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403

        # A clinician asking for an unassigned patient, and a caller without a token: FORBIDDEN.
        for token in (tokens.clinician([assigned]), None):
            async with ws_session(gateway.ws_url, token=token) as session:
                await session.subscribe("x", SUBSCRIPTION, {"id": pseudonym(unassigned)})
                message = await session.receive()
                assert message["type"] == "next" and message["payload"]["data"] is None
                assert message["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
                assert (await session.receive())["type"] == "complete"
        assert gateway.gateway.services.hub.subscriber_count() == 0  # type: ignore[union-attr]


async def test_a_slow_subscriber_is_dropped_with_an_error_and_the_others_carry_on() -> None:
    hub = TwinUpdatesHub("127.0.0.1:9", "unused", queue_size=2)
    patient = pseudonym(new_identifier())
    received: list[int] = []
    async with hub.subscribe(patient) as slow, hub.subscribe(patient) as fast:

        async def read_fast() -> None:
            async for event in fast:
                received.append(event.version)

        def has_read(count: int) -> Callable[[], bool]:
            return lambda: len(received) >= count

        reader = asyncio.create_task(read_fast())
        for version in range(1, 6):
            assert hub.publish(twin_updated(patient, version)) >= 1
            await wait_for(has_read(version), what=f"the fast subscriber to read {version}")
        assert received == [1, 2, 3, 4, 5]
        assert hub.subscriber_count(patient) == 1  # the slow one was dropped at its third event
        with pytest.raises(ResourceExhaustedError, match="fell more than 2 events behind"):
            async for _ in slow:
                pass
        reader.cancel()
    assert hub.subscriber_count(patient) == 0
