"""The project's Kafka factories against a real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.entities import TICKETS
from shared.kafka import ensure_topics, make_consumer, make_producer, produce
from shared.messages.topics import Topics, TopicSpec
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.integration


async def _produce_numbers(bootstrap: str, topic: str, count: int) -> None:
    """Send b"0", b"1", ... under one key, each acknowledged before the next."""
    producer = make_producer(bootstrap, client_id="test")
    await producer.start()
    try:
        for n in range(count):
            await produce(producer, topic, key=b"k", value=str(n).encode())
    finally:
        await producer.stop()


@asynccontextmanager
async def _consumer(bootstrap: str, topic: str, group: str, **options) -> AsyncIterator:
    consumer = make_consumer(bootstrap, topic, group_id=group, client_id="test", **options)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def _consume(consumer, count: int):
    records = []

    async def enough() -> bool:
        batch = await consumer.getmany(timeout_ms=500)
        for messages in batch.values():
            records.extend(messages)
        return len(records) >= count

    await eventually(enough, within=timedelta(seconds=20), what=f"{count} records consumed")
    return records


async def test_keyed_message_with_headers_round_trips(kafka_bootstrap: str, unique: str) -> None:
    topic = f"test.roundtrip.{unique}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 3)])
    producer = make_producer(kafka_bootstrap, client_id="test")
    await producer.start()
    try:
        sent = []
        for n in range(6):
            key = f"acme:Ticket:{n % 2}".encode()
            sent.append(
                await produce(
                    producer,
                    topic,
                    key=key,
                    value=f"v{n}".encode(),
                    headers=[("connection", b"acme"), ("seq", str(n).encode())],
                )
            )
    finally:
        await producer.stop()

    async with _consumer(kafka_bootstrap, topic, f"g-{unique}") as consumer:
        records = await _consume(consumer, 6)

    by_key: dict[bytes, list] = {}
    for record in records:
        by_key.setdefault(record.key, []).append(record)
    # One key, one partition, in order: the property the callout keys rely on.
    for key, messages in by_key.items():
        assert len({m.partition for m in messages}) == 1, key
        seqs = [int(dict(m.headers)["seq"]) for m in sorted(messages, key=lambda m: m.offset)]
        assert seqs == sorted(seqs)
        assert all(dict(m.headers)["connection"] == b"acme" for m in messages)
    assert sorted(r.value for r in records) == [f"v{n}".encode() for n in range(6)]
    assert {(r.partition, r.offset) for r in records} == set(sent)


async def test_restarted_consumer_resumes_at_committed_offset(
    kafka_bootstrap: str, unique: str
) -> None:
    topic, group = f"test.resume.{unique}", f"g-{unique}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)])
    await _produce_numbers(kafka_bootstrap, topic, 10)

    async with _consumer(kafka_bootstrap, topic, group, max_poll_records=4) as first:
        processed = (await _consume(first, 4))[:4]
        # Commit exactly what was processed; anything fetched beyond it must come back.
        last = processed[-1]
        await first.commit({TopicPartition(topic, last.partition): last.offset + 1})

    async with _consumer(kafka_bootstrap, topic, group) as second:
        rest = await _consume(second, 6)
    assert [r.value for r in processed] == [b"0", b"1", b"2", b"3"]
    assert [r.value for r in rest] == [str(n).encode() for n in range(4, 10)]


async def test_uncommitted_messages_are_redelivered(kafka_bootstrap: str, unique: str) -> None:
    topic, group = f"test.redeliver.{unique}", f"g-{unique}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)])
    await _produce_numbers(kafka_bootstrap, topic, 3)
    for _attempt in range(2):  # a crash before commit: both consumers see all three
        async with _consumer(kafka_bootstrap, topic, group) as consumer:
            records = await _consume(consumer, 3)
        assert [r.value for r in records] == [b"0", b"1", b"2"]


async def test_ensure_topics_creates_declared_topics_once(
    kafka_bootstrap: str, unique: str
) -> None:
    topics = Topics(prefix=f"t{unique}", partitions=2)
    specs = topics.declarations([TICKETS])
    created = await ensure_topics(kafka_bootstrap, specs)
    assert sorted(created) == sorted(s.name for s in specs)
    assert await ensure_topics(kafka_bootstrap, specs) == []  # idempotent

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topics.changes(TICKETS), topics.callouts])
        partitions = {t["topic"]: len(t["partitions"]) for t in described}
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topics.changes(TICKETS))]
        )
    finally:
        await admin.close()
    assert partitions == {topics.changes(TICKETS): 2, topics.callouts: 2}
    entries = {e[0]: e[1] for e in configs[0].resources[0][4]}
    assert entries["cleanup.policy"] == "compact"
    assert topics.changes(TICKETS) == f"t{unique}.tickets.v1"
