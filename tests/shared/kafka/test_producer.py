"""The project's producer against a broker that refuses a batch: replaced, and sending again.

A batch the broker refuses (here: larger than the topic's ``max.message.bytes``, smaller than
the producer's own limit) uses up its sequence numbers; a bare idempotent producer then fails
every later send to that partition with OutOfOrderSequenceNumber. The outage that does the same
is in test_outage.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.errors import OutOfOrderSequenceNumber
from prometheus_client import REGISTRY

from shared.errors import KafkaError
from shared.kafka import ensure_topics, make_producer, produce, produce_many
from shared.kafka.errors import DeliveryError, ProducerStateLost
from shared.kafka.factory import OutgoingMessage
from shared.kafka.producer import Producer
from shared.kafka.reader import read_to_end
from shared.messages.topics import TopicSpec

pytestmark = pytest.mark.integration

LIMIT = 2048
"""The topic's ``max.message.bytes``: a 4 KiB message passes the producer and the broker
refuses it."""
TOO_LARGE = b"x" * 4096


@pytest.fixture
async def topic(kafka_bootstrap: str, unique: str) -> str:
    name = f"test.refused.{unique}"
    await ensure_topics(
        kafka_bootstrap,
        [TopicSpec(name, 1, config={"max.message.bytes": str(LIMIT)})],
        replication_factor=1,
    )
    return name


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[Producer]:
    own = Producer(
        lambda: make_producer(kafka_bootstrap, client_id="test-replaced"), kafka_bootstrap
    )
    await own.start()
    try:
        yield own
    finally:
        await own.stop()


def _replaced(reason: str) -> float:
    return (
        REGISTRY.get_sample_value("autotask_sync_kafka_producer_replaced_total", {"reason": reason})
        or 0.0
    )


async def _values(bootstrap: str, topic: str) -> list[bytes]:
    return [record.value or b"" async for record in read_to_end(bootstrap, topic)]


async def _until_acknowledged(producer: Producer, topic: str, value: bytes) -> int:
    """Send as a service's retry path does: again after each retriable failure. Returns how
    many attempts it took."""
    for attempt in range(1, 6):
        try:
            await produce(producer, topic, key=b"k", value=value)
            return attempt
        except KafkaError as exc:
            if not exc.retriable:
                raise
    raise AssertionError(f"{value!r} was not acknowledged in 5 attempts")


async def test_a_bare_producer_stays_out_of_step_after_the_broker_refuses_a_batch(
    kafka_bootstrap: str, topic: str
) -> None:
    bare: AIOKafkaProducer = make_producer(kafka_bootstrap, client_id="test-bare")
    await bare.start()
    try:
        await bare.send_and_wait(topic, b"before", key=b"k")
        with pytest.raises(AIOKafkaError):
            await bare.send_and_wait(topic, TOO_LARGE, key=b"k")
        for n in range(3):  # for good: every later send to the partition
            with pytest.raises(OutOfOrderSequenceNumber):
                await bare.send_and_wait(topic, f"after {n}".encode(), key=b"k")
    finally:
        await bare.stop()
    assert await _values(kafka_bootstrap, topic) == [b"before"]


async def test_after_a_refused_batch_the_producer_is_replaced_and_sends_go_through(
    kafka_bootstrap: str, topic: str, producer: Producer
) -> None:
    replaced = _replaced("OutOfOrderSequenceNumber")
    await produce(producer, topic, key=b"k", value=b"before")
    with pytest.raises(KafkaError) as refused:
        await produce(producer, topic, key=b"k", value=TOO_LARGE)
    assert not refused.value.retriable  # the message itself is refused for good

    with pytest.raises(ProducerStateLost) as lost:  # the send that finds the gap...
        await produce(producer, topic, key=b"k", value=b"after 0")
    assert lost.value.retriable
    assert "OutOfOrderSequenceNumber" in str(lost.value)
    assert await _until_acknowledged(producer, topic, b"after 0") == 1  # ...goes through again
    for n in range(1, 4):
        assert await _until_acknowledged(producer, topic, f"after {n}".encode()) == 1

    assert producer.replacements == 1
    assert _replaced("OutOfOrderSequenceNumber") == replaced + 1
    assert await _values(kafka_bootstrap, topic) == [
        b"before",
        b"after 0",
        b"after 1",
        b"after 2",
        b"after 3",
    ]


async def test_a_pipelined_send_reports_the_lost_state_per_message_and_is_sent_again_whole(
    kafka_bootstrap: str, topic: str, producer: Producer
) -> None:
    await produce(producer, topic, key=b"k", value=b"before")  # the broker knows the producer
    with pytest.raises(KafkaError):
        await produce(producer, topic, key=b"k", value=TOO_LARGE)
    batch = [OutgoingMessage(key=b"k", value=f"m{n}".encode()) for n in range(5)]
    with pytest.raises(DeliveryError) as failed:
        await produce_many(producer, topic, batch)
    assert failed.value.retriable
    assert all(isinstance(e, ProducerStateLost) for e in failed.value.failures.values())

    await produce_many(producer, topic, batch)  # the worker's unit retry, on the new producer
    assert await _values(kafka_bootstrap, topic) == [b"before", *(m.value for m in batch)]


async def test_a_stopped_producer_refuses_sends_with_a_kafka_error(
    kafka_bootstrap: str, topic: str
) -> None:
    own = Producer(
        lambda: make_producer(kafka_bootstrap, client_id="test-stopped"), kafka_bootstrap
    )
    with pytest.raises(KafkaError, match="not connected"):
        await produce(own, topic, key=b"k", value=b"v")
    await own.start()
    await own.stop()
    with pytest.raises(KafkaError, match="closed"):
        await produce(own, topic, key=b"k", value=b"v")
    assert own.unacknowledged == 0
