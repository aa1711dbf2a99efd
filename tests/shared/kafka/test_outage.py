"""Kafka away for longer than the producer's request timeout, as operators saw it, in seconds.

The module owns a broker (tests/helpers/servers.py) that it stops and starts; the session's
shared Kafka is never touched.

A single broker reports its partitions leaderless while it shuts down, and a producer sending
then keeps that view for the whole outage. Two things follow:

- a batch that waits longer than the request timeout with no leader known expires in the
  producer with its sequence numbers used up, and once Kafka is back a bare idempotent producer
  fails every send to that partition with OutOfOrderSequenceNumber, for good. That is the
  100 s outage operators saw (the request timeout is 30 s; a 20 s outage recovered by itself);
  the producers here get 2 s, so 5 s away is long;
- a bare aiokafka producer asks for metadata in a loop without pause, a connection attempt each
  time: thousands a second. The project's clients back off (shared/kafka/pacing.py). Measured
  with a :class:`~tests.helpers.tarpit.Tarpit` on the stopped broker's port, which accepts each
  connection and resets it, counting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY

from shared.errors import KafkaError
from shared.kafka import ensure_topics, make_consumer, make_producer, produce
from shared.kafka.producer import Producer, close_within
from shared.kafka.reader import read_to_end
from shared.messages.topics import TopicSpec
from tests.helpers.servers import Broker
from tests.helpers.tarpit import Knocks, Tarpit
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.integration

REQUEST_TIMEOUT_MS = 2_000
"""The producers' request timeout, which is also how long a batch may wait in the producer."""
AWAY = timedelta(seconds=5)
"""Longer than the request timeout, with room: a long outage."""
SEND_EVERY = 0.05
SETTLE = timedelta(seconds=2)
WINDOW = timedelta(seconds=5)
PACED_LIMIT = 5.0
"""Connection attempts a second a paced producer and consumer together may make while Kafka is
away: about one each per broker. Unpaced, the producer alone makes thousands."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    own = Broker(Path(tmp_path_factory.mktemp("broker")))
    own.start()
    try:
        yield own
    finally:
        own.close()


@pytest.fixture
async def topic(broker: Broker, unique: str) -> str:
    await asyncio.to_thread(broker.start)  # a test that failed half-way may have left it down
    name = f"test.outage.{unique}"
    await ensure_topics(broker.bootstrap, [TopicSpec(name, 3)], replication_factor=1)
    return name


@dataclass
class Traffic:
    """A message every 50 ms, keyed over six entities, each sent until acknowledged: again after
    each retriable failure, as the worker's unit retry and the gateway's drainer do, at most
    ``attempts`` times (None: until it is)."""

    send: Callable[[bytes, bytes], Awaitable[object]]
    attempts: int | None = None
    acknowledged: list[bytes] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def sent(self) -> int:
        return len(self._tasks)

    async def run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            self._tasks.append(asyncio.create_task(self._one(f"k{n % 6}".encode(), b"%d" % n)))
            await asyncio.sleep(SEND_EVERY)

    async def _one(self, key: bytes, value: bytes) -> None:
        attempt = 0
        while self.attempts is None or attempt < self.attempts:
            attempt += 1
            try:
                await self.send(key, value)
            except KafkaError as exc:
                self.errors.append(str(exc))
                if not exc.retriable:
                    return
                await asyncio.sleep(0.2)
                continue
            self.acknowledged.append(value)
            return

    async def finish(self, within: timedelta) -> None:
        """Stop sending new messages; wait for those under way."""
        self._stop.set()
        await asyncio.wait_for(asyncio.gather(*self._tasks), within.total_seconds())


@contextlib.asynccontextmanager
async def _flowing(traffic: Traffic) -> AsyncIterator[Traffic]:
    generator = asyncio.create_task(traffic.run())
    try:
        await asyncio.sleep(0.5)  # acknowledged traffic first: the broker knows the producer
        yield traffic
    finally:
        traffic._stop.set()
        await generator


async def _away(broker: Broker) -> None:
    await asyncio.to_thread(broker.stop)
    await asyncio.sleep(AWAY.total_seconds())
    await asyncio.to_thread(broker.start)


def _bare_producer(bootstrap: str) -> AIOKafkaProducer:
    """What every service had: aiokafka's idempotent producer, not paced."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=0,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )


def _replaced() -> float:
    return (
        REGISTRY.get_sample_value(
            "autotask_sync_kafka_producer_replaced_total", {"reason": "OutOfOrderSequenceNumber"}
        )
        or 0.0
    )


async def test_a_bare_producer_fails_every_send_after_a_long_outage(
    broker: Broker, topic: str
) -> None:
    bare = make_producer(
        broker.bootstrap, client_id="test-bare", request_timeout_ms=REQUEST_TIMEOUT_MS
    )
    await bare.start()
    try:

        async def send(key: bytes, value: bytes) -> None:
            await produce(bare, topic, key=key, value=value)

        traffic = Traffic(send, attempts=3)
        async with _flowing(traffic):
            await _away(broker)
            await asyncio.sleep(2)  # Kafka is back
        await traffic.finish(timedelta(seconds=60))
        # Back, Kafka refuses this producer's sends to a partition whose batch expired while
        # it was away (which ones: those whose batch waited in the producer rather than on
        # the wire when the broker stopped), and goes on refusing them: stuck for good.
        stuck = [key for key in _KEYS if await _refused(bare, topic, key)]
        assert stuck, "no partition stuck after the outage: the fault this test shows is gone"
        for _again in range(3):
            for key in stuck:
                assert await _refused(bare, topic, key), f"{key!r} got through after all"
    finally:
        await close_within(bare, timedelta(seconds=5))
    assert len(traffic.acknowledged) < traffic.sent, "some messages never got through"


_KEYS = [f"k{n}".encode() for n in range(6)]
"""The traffic's keys: every partition of the topic gets some."""


async def _refused(producer: AIOKafkaProducer, topic: str, key: bytes) -> bool:
    """Whether Kafka refuses a send of ``key`` as out of sequence (False: it was written)."""
    try:
        await produce(producer, topic, key=key, value=b"after")
    except KafkaError as exc:
        if "OutOfOrderSequenceNumber" not in str(exc):
            raise
        return True
    return False


async def test_after_a_long_outage_the_producer_is_replaced_and_every_message_arrives(
    broker: Broker, topic: str
) -> None:
    replaced = _replaced()
    producer = Producer(
        lambda: make_producer(
            broker.bootstrap, client_id="test-replaced", request_timeout_ms=REQUEST_TIMEOUT_MS
        ),
        broker.bootstrap,
    )
    await producer.start()
    try:

        async def send(key: bytes, value: bytes) -> None:
            await produce(producer, topic, key=key, value=value)

        traffic = Traffic(send)
        async with _flowing(traffic):
            await _away(broker)
            await asyncio.sleep(2)  # Kafka is back, and the traffic goes on
        await traffic.finish(timedelta(seconds=60))
    finally:
        await producer.stop()

    assert len(traffic.acknowledged) == traffic.sent  # every one, after its retries
    assert any("OutOfOrderSequenceNumber" in e for e in traffic.errors)  # the fault happened
    assert producer.replacements >= 1
    assert _replaced() >= replaced + 1
    on_topic = {record.value async for record in read_to_end(broker.bootstrap, topic)}
    assert set(traffic.acknowledged) <= on_topic  # nothing lost (some may be there twice)


async def _knocks(tarpit: Tarpit) -> Knocks:
    """Connection attempts in :data:`WINDOW`, after :data:`SETTLE` (the clients notice first)."""
    await asyncio.sleep(SETTLE.total_seconds())
    tarpit.reset()
    await asyncio.sleep(WINDOW.total_seconds())
    return tarpit.knocks()


async def _attempts_while_away(
    broker: Broker, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer, topic: str
) -> Knocks:
    """Start both, send while the broker stops (so the producer sees the partitions without a
    leader), and count their connection attempts while its port drops every connection."""
    await producer.start()
    await consumer.start()
    pending: list[asyncio.Future[Any]] = []
    stop = asyncio.Event()

    async def traffic() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                pending.append(await producer.send(topic, b"v", key=b"k"))
            await asyncio.sleep(SEND_EVERY)

    async def consume() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                await consumer.getmany(timeout_ms=200)

    tasks = [asyncio.create_task(traffic()), asyncio.create_task(consume())]
    try:
        await eventually(lambda: len(pending) > 5, within=timedelta(seconds=10))
        await asyncio.to_thread(broker.stop)
        with Tarpit(broker.port) as tarpit:
            knocks = await _knocks(tarpit)
        await asyncio.to_thread(broker.start)  # so both can stop cleanly
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await close_within(producer, timedelta(seconds=10))
        await asyncio.wait_for(consumer.stop(), 30)
        for ack in pending:  # answered or failed by now; read so no error goes unretrieved
            if ack.done() and not ack.cancelled():
                ack.exception()
    return knocks


async def test_clients_back_off_while_kafka_is_away(
    broker: Broker, topic: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    paced = await _attempts_while_away(
        broker,
        make_producer(
            broker.bootstrap, client_id="test-paced", request_timeout_ms=REQUEST_TIMEOUT_MS
        ),
        make_consumer(broker.bootstrap, topic, group_id=f"g-{unique}", client_id="test-paced"),
        topic,
    )
    bare = await _attempts_while_away(
        broker,
        _bare_producer(broker.bootstrap),
        AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=f"b-{unique}"),
        topic,
    )
    with capsys.disabled():
        print(f"\nconnection attempts while Kafka is away: paced {paced.summary([])}")
        print(f"connection attempts while Kafka is away: bare {bare.summary([])}")
    assert paced.rate <= PACED_LIMIT
    assert bare.rate > 10 * paced.rate  # what the pacing is for
