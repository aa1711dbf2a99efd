"""StreamConsumer against a real broker: contiguous commits, pause/resume, commit on revoke and
at stop, rebalances among several members without eviction, and what a failing sink leaves
behind.

Each test owns its topic and consumer group. The sink is driven by the test: it finishes records
when told (in any order), finishes some at once or when their partitions are flushed at a
revoke, or breaks on one. Committed offsets are read back from the broker, and redelivery is
checked with other consumers of the same group.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import REGISTRY

from shared.kafka import ensure_topics, make_consumer, make_producer
from shared.kafka.consumer import ConsumerConfig, Record, StreamConsumer
from shared.messages.topics import TopicSpec
from tests.helpers.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

T = TypeVar("T")

WAIT = 30.0
"""Upper bound on any single wait for the broker or the loop (a hang fails, never blocks)."""
NEVER = timedelta(hours=1)
"""A commit interval that never elapses in a test: only revokes and stops commit."""
REBALANCE_TIMEOUT = timedelta(seconds=20)
"""The group's rebalance timeout in these tests: far above any revoke they make."""


class SinkBroke(Exception):
    """The failure the test sink raises from ``accept``."""


class ControlledSink:
    """A sink the test drives. Records matching ``finish_at_once`` are finished as they arrive,
    the rest are held until :meth:`finish`, or until their partition is flushed at a revoke if
    they match ``finish_on_flush`` (as the worker's pipeline starts their work then and it
    completes); a record matching ``break_on`` makes ``accept`` raise."""

    def __init__(
        self,
        finished: Callable[[Iterable[Record]], None],
        *,
        finish_at_once: Callable[[Record], bool] = lambda _record: False,
        finish_on_flush: Callable[[Record], bool] = lambda _record: False,
        break_on: Callable[[Record], bool] = lambda _record: False,
    ) -> None:
        self._finished = finished
        self._finish_at_once = finish_at_once
        self._finish_on_flush = finish_on_flush
        self._break_on = break_on
        self.accepted: list[Record] = []
        self.held: list[Record] = []
        self.flushed: list[set[int]] = []
        self.most_held = 0
        self._arrived = asyncio.Event()

    def flush(self, partitions: Collection[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        self.flushed.append(numbers)
        done = [r for r in self.held if r.partition in numbers and self._finish_on_flush(r)]
        for record in done:
            self.held.remove(record)
        self._finished(done)

    def accept(self, message: Record) -> None:
        if self._break_on(message):
            raise SinkBroke(f"cannot take offset {message.offset}")
        self.accepted.append(message)
        if self._finish_at_once(message):
            self._finished([message])
        else:
            self.held.append(message)
            self.most_held = max(self.most_held, len(self.held))
        self._arrived.set()

    def finish(self, partition: int, *offsets: int) -> None:
        """Finish the held records of ``partition`` at ``offsets``, in the order given."""
        done = []
        for offset in offsets:
            record = next(r for r in self.held if (r.partition, r.offset) == (partition, offset))
            self.held.remove(record)
            done.append(record)
        self._finished(done)

    def finish_everything(self) -> None:
        done, self.held = self.held, []
        self._finished(done)

    def offsets(self, partition: int | None = None) -> list[int]:
        return [r.offset for r in self.accepted if partition is None or r.partition == partition]

    async def wait_for(self, count: int) -> None:
        """Until at least ``count`` records were accepted in all."""
        async with asyncio.timeout(WAIT):
            while len(self.accepted) < count:
                self._arrived.clear()
                await self._arrived.wait()


class _Signalling(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """The stream's listener, plus an event the test can wait on when a revoke begins."""

    def __init__(self, inner: ConsumerRebalanceListener) -> None:
        self._inner = inner
        self.revoking = asyncio.Event()
        self.assignments: list[set[int]] = []

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            self.revoking.set()
        await self._inner.on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.assignments.append({tp.partition for tp in assigned})
        await self._inner.on_partitions_assigned(assigned)


@dataclass
class Member:
    """One running StreamConsumer of a group, with its sink."""

    consumer: AIOKafkaConsumer
    stream: StreamConsumer
    sink: ControlledSink
    listener: _Signalling
    task: asyncio.Task[None]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    failure_expected: bool = False

    async def halt(self) -> float:
        """Set the stop event and wait for ``run`` to return; the seconds it took."""
        started = time.monotonic()
        self.stop.set()
        async with asyncio.timeout(self.stream.config.drain_wait.total_seconds() + WAIT):
            await asyncio.wait({self.task})
        return time.monotonic() - started


@asynccontextmanager
async def running(
    bootstrap: str,
    topic: str,
    group: str,
    config: ConsumerConfig,
    *,
    finish_at_once: Callable[[Record], bool] = lambda _record: False,
    finish_on_flush: Callable[[Record], bool] = lambda _record: False,
    break_on: Callable[[Record], bool] = lambda _record: False,
    rebalance_timeout: timedelta = REBALANCE_TIMEOUT,
) -> AsyncIterator[Member]:
    """A StreamConsumer subscribed as the sync worker subscribes it, running into a
    :class:`ControlledSink`; stopped (and its outcome checked) at exit."""
    consumer = make_consumer(
        bootstrap,
        group_id=group,
        client_id=f"test-{group}",
        heartbeat_interval_ms=250,
        rebalance_timeout_ms=int(rebalance_timeout.total_seconds() * 1000),
    )
    stream = StreamConsumer(consumer, config)
    sink = ControlledSink(
        stream.finished,
        finish_at_once=finish_at_once,
        finish_on_flush=finish_on_flush,
        break_on=break_on,
    )
    listener = _Signalling(stream.rebalance_listener())
    consumer.subscribe([topic], listener=listener)
    stop = asyncio.Event()

    async def start_and_run() -> None:
        # start() returns only once the group assigned partitions, which (for a joining
        # member) waits for the other members' revokes: the test must stay free meanwhile.
        await consumer.start()
        await stream.run(sink, stop)

    task = asyncio.create_task(start_and_run(), name=f"stream-{group}")
    member = Member(consumer, stream, sink, listener, task, stop)
    try:
        yield member
    finally:
        try:
            await member.halt()
        except TimeoutError:
            task.cancel()
            await asyncio.wait({task})
            raise
        finally:
            await consumer.stop()
        failure = None if task.cancelled() else task.exception()
        if failure is not None and not member.failure_expected:
            raise failure


def _config(**overrides: Any) -> ConsumerConfig:
    options: dict[str, Any] = {
        "poll_timeout": timedelta(milliseconds=50),
        "commit_interval": NEVER,
        "revoke_wait": timedelta(seconds=3),
        "drain_wait": timedelta(seconds=1),
    }
    options.update(overrides)
    return ConsumerConfig(**options)


async def _topic_with_records(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    """Create ``topic`` with one partition per key of ``counts`` and fill each partition with
    that many records (offsets 0..count-1)."""
    await ensure_topics(bootstrap, [TopicSpec(topic, len(counts))], replication_factor=1)
    await _produce(bootstrap, topic, counts)


async def _produce(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    producer = make_producer(bootstrap, client_id="test-producer")
    await producer.start()
    try:
        for partition, count in counts.items():
            for n in range(count):
                await producer.send_and_wait(
                    topic, value=f"{partition}:{n}".encode(), partition=partition
                )
    finally:
        await producer.stop()


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="test-admin")
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def _committed(admin: AIOKafkaAdminClient, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets on ``topic`` as the broker holds them, per partition."""
    offsets = await admin.list_consumer_group_offsets(group)
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if tp.topic == topic and meta.offset >= 0
    }


async def _until_returns(probe: Callable[[], Awaitable[T]], want: T) -> None:
    """Until ``probe`` returns ``want``; fails with the last value after ``WAIT``."""

    async def returns_it() -> bool:
        got = await probe()
        assert got == want, f"still {got!r}, wanted {want!r}"
        return True

    await eventually(
        returns_it,
        within=timedelta(seconds=WAIT),
        interval=timedelta(milliseconds=50),
        what=f"{probe.__name__} to return {want!r}",
    )


# --- commits -----------------------------------------------------------------------------------
async def test_only_the_contiguous_finished_prefix_is_committed(
    kafka_bootstrap: str, unique: str, admin: AIOKafkaAdminClient
) -> None:
    topic, group = f"test.consumer.prefix.{unique}", f"g-{unique}"
    await _topic_with_records(kafka_bootstrap, topic, {0: 6, 1: 3})
    config = _config(commit_interval=timedelta(milliseconds=100))

    def committed() -> Awaitable[dict[int, int]]:
        return _committed(admin, group, topic)

    async with running(
        kafka_bootstrap, topic, group, config, finish_at_once=lambda r: r.partition == 1
    ) as member:
        await member.sink.wait_for(9)
        member.sink.finish(0, 3, 0, 1)  # out of order, with 2 still in flight
        # Partition 1 finished entirely and is committed on its own; partition 0 stops at the gap.
        await _until_returns(committed, {0: 2, 1: 3})
        await asyncio.sleep(1.0)  # ten commit intervals: the gap at 2 still holds 3 back
        assert await committed() == {0: 2, 1: 3}

        member.sink.finish(0, 2)
        await _until_returns(committed, {0: 4, 1: 3})
        assert member.stream.in_flight == 2  # offsets 4 and 5, never finished


# --- backpressure ------------------------------------------------------------------------------
async def test_a_full_sink_pauses_the_partitions_and_finished_work_resumes_them(
    kafka_bootstrap: str, unique: str
) -> None:
    topic, group = f"test.consumer.pause.{unique}", f"g-{unique}"
    await _topic_with_records(kafka_bootstrap, topic, {0: 10})
    config = _config(max_in_flight=3, fetch_max=1)

    async with running(kafka_bootstrap, topic, group, config) as member:
        await member.sink.wait_for(3)
        assert member.stream.paused
        assert member.consumer.paused() == member.consumer.assignment()
        # Seven more records are on the broker and the loop keeps polling every 50 ms; a loop
        # that did not pause would hand them out within milliseconds.
        await asyncio.sleep(1.0)
        assert member.sink.offsets() == [0, 1, 2]

        for handed_out in range(4, 11):
            member.sink.finish(0, member.sink.held[0].offset)
            await member.sink.wait_for(handed_out)  # one slot freed: exactly one more record
            assert len(member.sink.held) == 3

        member.sink.finish_everything()

        async def paused() -> bool:
            return member.stream.paused

        await _until_returns(paused, False)
        assert member.consumer.paused() == set()
        assert member.sink.offsets() == list(range(10))  # each once, in order, none skipped
        assert member.sink.most_held == 3


# --- rebalance ---------------------------------------------------------------------------------
async def test_revoked_partitions_commit_their_finished_work_before_they_move(
    kafka_bootstrap: str, unique: str, admin: AIOKafkaAdminClient
) -> None:
    topic, group = f"test.consumer.revoke.{unique}", f"g-{unique}"
    await _topic_with_records(kafka_bootstrap, topic, {0: 5, 1: 5})
    # Offsets 0-2 finish at once, 3 and 4 are in flight when the second consumer joins.
    async with running(
        kafka_bootstrap, topic, group, _config(), finish_at_once=lambda r: r.offset < 3
    ) as first:
        await first.sink.wait_for(10)
        assert first.listener.assignments == [{0, 1}]
        assert await _committed(admin, group, topic) == {}  # no periodic commit in this test

        async with running(
            kafka_bootstrap, topic, group, _config(), finish_at_once=lambda _r: True
        ) as second:
            async with asyncio.timeout(WAIT):
                await first.listener.revoking.wait()
            # The revoke waits (up to revoke_wait) for in-flight work of what it loses: offset 3
            # finishing now is part of the commit; offset 4 never finishes and must come back.
            await asyncio.sleep(0.3)
            first.sink.finish(0, 3)
            first.sink.finish(1, 3)

            await second.sink.wait_for(1)
            await first.sink.wait_for(11)
            assert first.sink.flushed == [{0, 1}]  # asked to start what it buffered at once
            [kept] = first.listener.assignments[-1]
            [moved] = second.listener.assignments[-1]
            assert {kept, moved} == {0, 1}
            # Only the revoke committed (neither consumer commits periodically here).
            assert await _committed(admin, group, topic) == {0: 4, 1: 4}
            # Delivery is in offset order, so the first record each owner sees is where the
            # revoke's commit left the partition: finished records are not seen again, the
            # unfinished one is.
            assert second.sink.offsets() == [4]
            assert first.sink.offsets(kept) == [0, 1, 2, 3, 4, 4]
            assert first.sink.offsets(moved) == [0, 1, 2, 3, 4]

            first.sink.finish_everything()
            await asyncio.gather(first.halt(), second.halt())


def _evictions() -> float:
    return REGISTRY.get_sample_value("autotask_sync_consumer_evictions_total") or 0.0


def _revokes() -> tuple[float, float]:
    """How many revokes this process made so far, and their total seconds."""
    count = REGISTRY.get_sample_value("autotask_sync_consumer_revoke_seconds_count") or 0.0
    total = REGISTRY.get_sample_value("autotask_sync_consumer_revoke_seconds_sum") or 0.0
    return count, total


async def _assigned_apart(members: list[Member], partitions: int) -> None:
    """Until the members' latest assignments split ``partitions`` between them, each member
    holding some (the rebalance is over)."""

    def split() -> bool:
        latest = [m.listener.assignments[-1] for m in members if m.listener.assignments]
        assert len(latest) == len(members), "not every member has an assignment yet"
        assert all(latest), f"a member holds nothing: {latest}"
        assert sorted(p for a in latest for p in a) == list(range(partitions)), latest
        return True

    await eventually(split, within=timedelta(seconds=WAIT), what="the rebalance to settle")


async def test_members_joining_one_by_one_revoke_at_once_and_lose_nothing(
    kafka_bootstrap: str, unique: str, admin: AIOKafkaAdminClient
) -> None:
    """Three members join a group in turn while the first holds everything in flight. Each
    revoke flushes its partitions (the sink finishes what it buffered) and commits it at once:
    no member is evicted, each record is handed out once, all of it is committed, and the
    revokes take a fraction of their wait."""
    topic, group = f"test.consumer.three.{unique}", f"g-{unique}"
    partitions = 6
    await _topic_with_records(kafka_bootstrap, topic, dict.fromkeys(range(partitions), 10))
    config = _config(revoke_wait=timedelta(seconds=15))
    evictions, (revokes, revoke_seconds) = _evictions(), _revokes()

    async with AsyncExitStack() as stack:

        async def join() -> Member:
            member = await stack.enter_async_context(
                running(kafka_bootstrap, topic, group, config, finish_on_flush=lambda _r: True)
            )
            members.append(member)
            return member

        members: list[Member] = []
        await (await join()).sink.wait_for(60)
        assert await _committed(admin, group, topic) == {}  # all of it in flight
        produced = 10
        for _joining in range(2):
            await join()
            await _assigned_apart(members, partitions)
            await _produce(kafka_bootstrap, topic, dict.fromkeys(range(partitions), 5))
            produced += 5
            await _all_accepted(members, partitions * produced)

        assert _evictions() == evictions
        count, seconds = _revokes()
        made = count - revokes
        assert made >= 3  # the first member at each join, the second at the last
        # A revoke waits up to 15 s for what it loses; flushed, it waits for nothing.
        assert (seconds - revoke_seconds) / made < 5.0
        # What each revoke finished was committed: the second join's commit holds the first
        # ten records of every partition, the third's the next five.
        assert await _committed(admin, group, topic) == dict.fromkeys(range(partitions), 15)

        handed = sorted((r.partition, r.offset) for m in members for r in m.sink.accepted)
        # Everything produced reached a member once: nothing finished came back.
        assert handed == sorted((p, o) for p in range(partitions) for o in range(produced))
        for member in members:
            member.sink.finish_everything()
        await asyncio.gather(*(member.halt() for member in members))
    assert await _committed(admin, group, topic) == dict.fromkeys(range(partitions), produced)
    assert _evictions() == evictions


async def _all_accepted(members: list[Member], count: int) -> None:
    def accepted() -> bool:
        total = sum(len(m.sink.accepted) for m in members)
        assert total == count, f"{total} of {count} records handed out"
        return True

    await eventually(accepted, within=timedelta(seconds=WAIT), what=f"{count} records")


async def test_a_revoke_stops_waiting_at_its_bound_and_the_next_owner_gets_the_rest(
    kafka_bootstrap: str, unique: str, admin: AIOKafkaAdminClient
) -> None:
    """Work that cannot finish within ``revoke_wait`` is left behind: the revoke commits what
    finished and returns at its bound, well inside the rebalance timeout, so the member stays
    in the group; the new owner gets the unfinished records again."""
    topic, group = f"test.consumer.bound.{unique}", f"g-{unique}"
    await _topic_with_records(kafka_bootstrap, topic, {0: 6, 1: 6})
    config = _config(revoke_wait=timedelta(seconds=2))
    evictions, (revokes, revoke_seconds) = _evictions(), _revokes()

    # Offsets 0-2 finish when flushed; 3-5 are stuck (an Autotask outage, say).
    async with running(
        kafka_bootstrap, topic, group, config, finish_on_flush=lambda r: r.offset < 3
    ) as first:
        await first.sink.wait_for(12)
        async with running(
            kafka_bootstrap, topic, group, _config(), finish_at_once=lambda _r: True
        ) as second:
            await _assigned_apart([first, second], 2)
            [moved] = second.listener.assignments[-1]
            await second.sink.wait_for(3)
            assert second.sink.offsets(moved) == [3, 4, 5]  # redelivered: nothing lost
            count, seconds = _revokes()
            assert count == revokes + 1
            # It waited its bound for the stuck records, and not much more.
            assert 2.0 <= seconds - revoke_seconds < REBALANCE_TIMEOUT.total_seconds() / 2
            assert _evictions() == evictions
            committed = await _committed(admin, group, topic)
            assert committed[moved] >= 3
            [kept] = first.listener.assignments[-1]
            assert committed[kept] == 3  # the stuck records are not committed
            first.sink.finish_everything()
            await asyncio.gather(first.halt(), second.halt())


async def test_a_revoke_longer_than_the_rebalance_timeout_is_counted_as_an_eviction(
    kafka_bootstrap: str, unique: str, admin: AIOKafkaAdminClient
) -> None:
    """What the worker's settings check at start prevents, shown here: a member whose revoke
    outlasts the group's rebalance timeout is removed from the group, its commit refused (so
    its finished work comes back too), and the eviction is counted."""
    topic, group = f"test.consumer.evicted.{unique}", f"g-{unique}"
    await _topic_with_records(kafka_bootstrap, topic, {0: 4, 1: 4})
    short = timedelta(seconds=2)
    evictions = _evictions()

    async with running(
        kafka_bootstrap,
        topic,
        group,
        _config(revoke_wait=timedelta(seconds=6)),
        finish_at_once=lambda r: r.offset < 2,
        rebalance_timeout=short,
    ) as slow:
        await slow.sink.wait_for(8)
        async with running(
            kafka_bootstrap,
            topic,
            group,
            _config(),
            finish_at_once=lambda _r: True,
            rebalance_timeout=short,
        ) as other:
            await eventually(
                lambda: _evictions() == evictions + 1,
                within=timedelta(seconds=WAIT),
                what="the slow member's eviction to be counted",
            )
            # Its commit was refused: the other member, alone in the group meanwhile, got
            # everything from the start, what the slow one had finished included.
            await other.sink.wait_for(8)
            assert other.sink.offsets(0)[:4] == other.sink.offsets(1)[:4] == [0, 1, 2, 3]
            slow.sink.finish_everything()
            await asyncio.gather(slow.halt(), other.halt())
    assert _evictions() == evictions + 1  # one eviction, counted once


# --- stop --------------------------------------------------------------------------------------
async def test_stop_waits_for_in_flight_work_and_commits_it(
    kafka_bootstrap: str, unique: str, admin: AIOKafkaAdminClient
) -> None:
    topic, group = f"test.consumer.drain.{unique}", f"g-{unique}"
    await _topic_with_records(kafka_bootstrap, topic, {0: 6})
    config = _config(drain_wait=timedelta(seconds=20))

    async with running(
        kafka_bootstrap, topic, group, config, finish_at_once=lambda r: r.offset < 3
    ) as member:
        await member.sink.wait_for(6)
        member.stop.set()
        await asyncio.sleep(0.3)
        assert not member.task.done()  # draining: offsets 3-5 are still in flight
        member.sink.finish(0, 4, 3)
        await asyncio.sleep(0.1)
        assert not member.task.done()
        member.sink.finish(0, 5)
        # Returns as soon as the last in-flight record finished, not at the end of the budget.
        assert await member.halt() < 10.0
        assert await _committed(admin, group, topic) == {0: 6}

    await _produce(kafka_bootstrap, topic, {0: 1})
    async with running(
        kafka_bootstrap, topic, group, config, finish_at_once=lambda _r: True
    ) as restarted:
        await restarted.sink.wait_for(1)
        assert restarted.sink.offsets() == [6]  # only the new record: nothing finished returns


async def test_stop_gives_up_on_unfinished_work_after_the_drain_budget_and_it_is_redelivered(
    kafka_bootstrap: str, unique: str, admin: AIOKafkaAdminClient
) -> None:
    topic, group = f"test.consumer.budget.{unique}", f"g-{unique}"
    await _topic_with_records(kafka_bootstrap, topic, {0: 6})
    config = _config(drain_wait=timedelta(seconds=1))

    async with running(
        kafka_bootstrap, topic, group, config, finish_at_once=lambda r: r.offset in {0, 1, 2, 4}
    ) as member:
        await member.sink.wait_for(6)
        await member.halt()  # bounded by the budget (halt fails after budget + WAIT)
        assert member.stream.in_flight == 2
        assert await _committed(admin, group, topic) == {0: 3}

    async with running(
        kafka_bootstrap, topic, group, config, finish_at_once=lambda _r: True
    ) as restarted:
        await restarted.sink.wait_for(3)
        # 3 and 5 were never finished; 4 was, but sits above the gap, so it comes back too.
        assert restarted.sink.offsets() == [3, 4, 5]
        await restarted.halt()
    assert await _committed(admin, group, topic) == {0: 6}


# --- a failing sink ----------------------------------------------------------------------------
async def test_a_sink_failure_stops_the_loop_and_loses_nothing(
    kafka_bootstrap: str, unique: str, admin: AIOKafkaAdminClient
) -> None:
    topic, group = f"test.consumer.broken.{unique}", f"g-{unique}"
    await _topic_with_records(kafka_bootstrap, topic, {0: 6})
    config = _config(drain_wait=timedelta(seconds=1))

    async with running(
        kafka_bootstrap,
        topic,
        group,
        config,
        finish_at_once=lambda _r: True,
        break_on=lambda r: r.offset == 3,
    ) as member:
        member.failure_expected = True
        async with asyncio.timeout(WAIT):
            await asyncio.wait({member.task})
        # The sink's own error reaches the caller (the worker stops on it) ...
        with pytest.raises(SinkBroke):
            member.task.result()
        # ... after what finished before it was committed, and nothing past it.
        assert member.sink.offsets() == [0, 1, 2]
        assert await _committed(admin, group, topic) == {0: 3}

    async with running(
        kafka_bootstrap, topic, group, config, finish_at_once=lambda _r: True
    ) as restarted:
        await restarted.sink.wait_for(3)
        assert restarted.sink.offsets() == [3, 4, 5]


async def test_no_record_is_handed_out_after_stop(kafka_bootstrap: str, unique: str) -> None:
    topic, group = f"test.consumer.late.{unique}", f"g-{unique}"
    await _topic_with_records(kafka_bootstrap, topic, {0: 1})
    # A long poll, so the loop is inside it (idle at the end of the partition) when stop is set.
    config = _config(poll_timeout=timedelta(seconds=10))

    async with running(
        kafka_bootstrap, topic, group, config, finish_at_once=lambda _r: True
    ) as member:
        await member.sink.wait_for(1)
        await asyncio.sleep(0.5)
        member.stop.set()
        await _produce(kafka_bootstrap, topic, {0: 1})
        # The poll under way is given up at once, not awaited to the end of its 10 s.
        assert await member.halt() < 5.0
        assert member.sink.offsets() == [0]
