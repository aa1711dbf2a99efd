"""Reading a consumer group from outside: members, lag, and a bounded read of what waits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.kafka import OutgoingMessage, make_consumer, make_producer, produce_many
from shared.kafka.admin import GroupInspector
from tests.helpers.pipeline import create_topics
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.integration


async def test_the_lag_its_members_and_a_read_of_the_backlog_that_stops_at_the_limit(
    kafka_bootstrap, unique
):
    topics = await create_topics(kafka_bootstrap, f"g{unique}", partitions=3)
    topic, group = topics.callouts, f"group-{unique}"
    producer = make_producer(kafka_bootstrap, client_id="test")
    await producer.start()
    try:
        messages = [OutgoingMessage(f"k{i}".encode(), f"v{i}".encode()) for i in range(60)]
        await produce_many(producer, topic, messages)
    finally:
        await producer.stop()

    member = make_consumer(kafka_bootstrap, topic, group_id=group, client_id="test-member")
    await member.start()
    try:

        async def some_read() -> bool:
            return bool(await member.getmany(timeout_ms=500))

        await eventually(some_read, within=timedelta(seconds=30), what="a member reading")
        await member.commit(dict.fromkeys(member.assignment(), 5))  # 5 done per partition
        async with GroupInspector(kafka_bootstrap, group, topic) as inspector:
            lag = await inspector.lag()
            assert lag.members == 1
            assert [p.committed for p in lag.partitions] == [5, 5, 5]
            assert lag.total == 60 - 15
            waiting = await inspector.waiting(lag, limit=9, within=timedelta(seconds=10))
            assert await inspector.committed() == {0: 5, 1: 5, 2: 5}
    finally:
        await member.stop()
    # The limit is shared among the partitions, each read from the group's committed offset.
    assert sorted((r.partition, r.offset) for r in waiting) == [
        (p, o) for p in range(3) for o in range(5, 8)
    ]


async def test_a_group_nobody_joined_and_a_topic_that_does_not_exist(kafka_bootstrap, unique):
    topics = await create_topics(kafka_bootstrap, f"g{unique}", partitions=1)
    async with GroupInspector(kafka_bootstrap, f"nobody-{unique}", topics.callouts) as inspector:
        lag = await inspector.lag()
        assert (lag.members, lag.total, [p.committed for p in lag.partitions]) == (0, 0, [None])
    async with GroupInspector(kafka_bootstrap, f"nobody-{unique}", f"no-{unique}") as inspector:
        assert (await inspector.lag()).partitions == ()
