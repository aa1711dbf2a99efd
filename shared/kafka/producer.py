"""The project's Kafka producer: one idempotent producer at a time, replaced when the broker no
longer accepts its state.

An idempotent producer numbers the batches it sends to each partition, and the broker takes only
the next number. aiokafka uses a batch's numbers up when it hands the batch to the network and
never gives them back, so a batch that never reaches the log leaves a gap: one that expired in
the producer (no partition leader known for longer than the request timeout: a broker that
reported its partitions leaderless as it shut down and stayed away that long) or one the broker
refused (too large). Every later batch to that partition is then answered
``OutOfOrderSequenceNumber``, and aiokafka keeps the producer: every send fails until the
process restarts (aiokafka issue #1017). A producer id the broker no longer knows or has fenced
(``UnknownProducerId``, ``InvalidProducerEpoch``, ``ProducerFenced``) is as final.

:class:`Producer` owns the current ``AIOKafkaProducer`` (its factory is ``make_producer`` with
the process's settings). When an answer says the broker no longer accepts its state
(:func:`shared.kafka.errors.is_state_lost`), it

1. hands no new send to that producer: sends wait (at most ``replace_wait``) for the next one;
2. closes it, and waits until Kafka has answered every send it still holds (to the broken
   partitions they fail at once, the others are delivered when Kafka is reachable; an idempotent
   producer never gives up on a request it sent). Only an answer proves a message did not land:
   a send failed without one (a close budget running out) may still be appended later, after the
   new producer's messages, and an older state would then be the last of its key. So the wait is
   bounded only by ``drain_budget`` (5 minutes: Kafka away that long), after which what is left
   is failed with a warning; while Kafka is away the new producer could not send anyway;
3. starts a fresh producer (a new producer id, numbering from zero), trying again with back-off
   while Kafka is away,

counted in ``autotask_sync_kafka_producer_replaced_total{reason}`` and logged once. The sends that
failed reach their callers as :class:`~shared.kafka.errors.ProducerStateLost` (through
:func:`~shared.kafka.errors.translate`), a retriable :class:`~shared.errors.KafkaError`: the
callers' retry paths (the worker's unit retries, the gateway's spool and drainer) send them again,
on the new producer. Delivery stays at least once; consumers deduplicate by ``ce_id``.

:attr:`Producer.unacknowledged` counts the sends under way (queued, not answered yet) and
:meth:`Producer.on_acknowledged` hears of each answer of Kafka's (an acknowledgement, or a
refusal for good): the producer's :class:`~shared.runtime.progress.Progress` (sends that wait and
are never answered stall it). A send that failed is not work the producer still holds: its
caller sends it again (and is stalled itself if that never works: the worker's consumer, the
gateway's spool), or has it stored for later.
``send`` returns aiokafka's future, and raises aiokafka's errors, like ``AIOKafkaProducer.send``;
:func:`shared.kafka.factory.produce` and :func:`~shared.kafka.factory.produce_many` translate them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeAlias

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from aiokafka.errors import KafkaError as AIOKafkaError

from shared.errors import KafkaError
from shared.kafka.errors import ProducerStateLost, is_retriable, is_state_lost, kafka_errors
from shared.kafka.factory import start_client
from shared.kafka.security import KafkaClientConfig
from shared.logging import get_logger
from shared.metrics import KAFKA_PRODUCER_REPLACED
from shared.runtime.backoff import Backoff, Retry

log = get_logger(__name__)

ProducerFactory = Callable[[], AIOKafkaProducer]
"""Makes a producer, not started (``make_producer`` with the process's settings)."""

REPLACE_WAIT = timedelta(seconds=5)
"""How long a send waits for the new producer before it fails (retriably)."""
CLOSE_BUDGET = timedelta(seconds=10)
"""How long the producer may take to finish the sends it holds when the process stops."""
DRAIN_BUDGET = timedelta(minutes=5)
"""How long a replaced producer's sends may wait for Kafka's answer before they are failed
(see the module docstring: a send failed without an answer may still land)."""
START_BACKOFF = Backoff(first=timedelta(milliseconds=500), cap=timedelta(seconds=10))
"""Waits between attempts to start a replacement while Kafka cannot be reached."""
_ABANDON_BUDGET = timedelta(seconds=2)


class Producer:
    """The process's idempotent producer, replaced when the broker no longer accepts its state
    (see the module docstring). Not started until :meth:`start`."""

    def __init__(
        self,
        factory: ProducerFactory,
        kafka: KafkaClientConfig | str,
        *,
        name: str = "producer",
        replace_wait: timedelta = REPLACE_WAIT,
        close_budget: timedelta = CLOSE_BUDGET,
        drain_budget: timedelta = DRAIN_BUDGET,
        backoff: Backoff = START_BACKOFF,
    ) -> None:
        self._factory = factory
        self._kafka = kafka
        self.name = name
        self._replace_wait = replace_wait.total_seconds()
        self._close_budget = close_budget
        self._drain_budget = drain_budget
        self._backoff = backoff
        self._current: AIOKafkaProducer | None = None
        self._generation = 0
        self._ready = asyncio.Event()
        """Set while there is a current producer (and once closed, to wake the waiting sends)."""
        self._closing = asyncio.Event()
        self._replacing: asyncio.Task[None] | None = None
        self._unacknowledged = 0
        self._listeners: list[Callable[[], None]] = []
        self.replacements = 0
        """How many times the producer was replaced."""

    # --- life -------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        """Whether a producer is there to take sends (False before the start, while one is
        replaced, and after the stop)."""
        return self._current is not None

    async def start(self) -> None:
        """Start the first producer. KafkaError when it cannot connect (why, in one line naming
        the setting to fix; retriable when waiting can help). Does nothing once started."""
        if self._closing.is_set():
            raise KafkaError(f"the Kafka {self.name} is closed")
        if self._current is not None or self._replacing is not None:
            return
        self._install(await self._open())

    async def stop(self, budget: timedelta | None = None) -> None:
        """Close the producer, flushing what it holds for at most ``budget`` (default
        ``close_budget``); a replacement under way is abandoned. Idempotent."""
        self._closing.set()
        self._ready.set()  # sends waiting for a replacement learn there will be none
        budget = budget or self._close_budget
        replacing, self._replacing = self._replacing, None
        if replacing is not None:
            await asyncio.wait({replacing}, timeout=budget.total_seconds())
            replacing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await replacing
        current, self._current = self._current, None
        if current is not None:
            await close_within(current, budget)

    # --- sending ----------------------------------------------------------------------------
    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        """Queue one message; returns the future of its acknowledgement (aiokafka's, resolving
        to the record's metadata or failing with aiokafka's error). Raises aiokafka's error when
        the producer refuses the message at once, KafkaError when there is no producer."""
        producer, generation = await self._usable()
        self._unacknowledged += 1
        try:
            ack: asyncio.Future[Any] = await producer.send(
                topic, value=value, key=key, headers=list(headers) if headers else None
            )
        except BaseException as exc:
            self._unacknowledged -= 1
            if isinstance(exc, AIOKafkaError) and is_state_lost(exc):
                self._lost(generation, exc)
            raise
        ack.add_done_callback(functools.partial(self._answered, generation))
        return ack

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Any:
        """:meth:`send` and wait for the acknowledgement; returns the record's metadata."""
        return await (await self.send(topic, value=value, key=key, headers=headers))

    async def partitions_for(self, topic: str) -> set[int]:
        """The topic's partitions (fetching its metadata if need be)."""
        producer, _ = await self._usable()
        with kafka_errors(f"read the metadata of {topic}"):
            partitions: set[int] = await producer.partitions_for(topic)
        return partitions

    async def ping(self) -> None:
        """A metadata round trip to the cluster (readiness); KafkaError when it fails."""
        producer = self._current
        if producer is None:
            raise KafkaError(f"the Kafka {self.name} is not connected")
        with kafka_errors("fetch the cluster's metadata"):
            await producer.client.fetch_all_metadata()

    # --- progress ---------------------------------------------------------------------------
    @property
    def unacknowledged(self) -> int:
        """Sends under way: queued and not answered yet (0 when idle)."""
        return self._unacknowledged

    def on_acknowledged(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` on every answer of Kafka's to a send (an acknowledgement, or a
        refusal for good)."""
        self._listeners.append(listener)

    # --- the current producer and its replacement -------------------------------------------
    async def _usable(self) -> tuple[AIOKafkaProducer, int]:
        if self._current is None and self._replacing is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), self._replace_wait)
        current = self._current
        if current is not None:
            return current, self._generation
        if self._closing.is_set():
            raise KafkaError(f"the Kafka {self.name} is closed")
        if self._replacing is not None:
            raise ProducerStateLost(
                f"the Kafka {self.name} is being replaced and was not ready within "
                f"{self._replace_wait:g} s; send again"
            )
        raise KafkaError(f"the Kafka {self.name} is not connected")

    def _answered(self, generation: int, ack: asyncio.Future[Any]) -> None:
        self._unacknowledged -= 1
        if ack.cancelled():
            return
        error = ack.exception()
        if error is None or not is_retriable(error):  # Kafka answered: the producer moves
            for listener in self._listeners:
                listener()
        elif is_state_lost(error):
            self._lost(generation, error)

    def _lost(self, generation: int, error: BaseException) -> None:
        """The broker refused producer ``generation``'s state: replace it, once."""
        old = self._current
        if old is None or generation != self._generation or self._closing.is_set():
            return  # an older producer's send, or a replacement already under way
        self._current = None
        self._ready.clear()
        reason = type(error).__name__
        self.replacements += 1
        KAFKA_PRODUCER_REPLACED.labels(reason).inc()
        log.warning(
            "Kafka no longer accepts the producer's idempotence state; replacing the producer "
            "(the sends that failed are sent again)",
            producer=self.name,
            reason=reason,
        )
        self._replacing = asyncio.get_running_loop().create_task(
            self._replace(old, reason), name=f"replace-kafka-{self.name}"
        )

    async def _replace(self, old: AIOKafkaProducer, reason: str) -> None:
        await close_within(old, self._drain_budget)
        retry = Retry(self._backoff)
        while not self._closing.is_set():
            try:
                producer = await self._open()
            except Exception as exc:  # KafkaError, or anything else: the process needs one
                delay = retry.failed()
                log.warning(
                    "could not start the new Kafka producer yet; retrying",
                    producer=self.name,
                    error=str(exc),
                    retry_in_s=round(delay, 2),
                )
                await retry.wait(delay, self._closing)
                continue
            if self._closing.is_set():
                await close_within(producer, self._close_budget)
                return
            self._install(producer)
            self._replacing = None
            log.info("Kafka producer replaced", producer=self.name, reason=reason)
            return

    async def _open(self) -> AIOKafkaProducer:
        producer = self._factory()
        try:
            await start_client(producer, self._kafka, what=f"start the Kafka {self.name}")
        except BaseException:
            await close_within(producer, _ABANDON_BUDGET)
            raise
        return producer

    def _install(self, producer: AIOKafkaProducer) -> None:
        self._current = producer
        self._generation += 1
        self._ready.set()


async def close_within(producer: AIOKafkaProducer, budget: timedelta) -> None:
    """Stop ``producer``: the sends it holds get ``budget`` to be acknowledged, then the rest
    fail (their futures say so) and its connections close. Never raises for Kafka trouble.

    aiokafka's ``stop`` waits for every held send however long Kafka is away, and cancelling it
    leaves the producer's tasks and connections running; so after ``budget`` what is left is
    failed, which lets ``stop`` finish."""
    stopping = asyncio.ensure_future(producer.stop())
    try:
        await asyncio.wait_for(asyncio.shield(stopping), budget.total_seconds())
        return
    except TimeoutError:
        log.warning(
            "Kafka did not acknowledge what the producer held in time; failing it",
            budget_s=budget.total_seconds(),
        )
    except (AIOKafkaError, OSError) as exc:
        log.warning("the Kafka producer did not stop cleanly", error=repr(exc))
        return
    except asyncio.CancelledError:
        _abandon(producer)
        raise
    _abandon(producer)
    try:
        await asyncio.wait_for(stopping, _ABANDON_BUDGET.total_seconds())
    except (TimeoutError, AIOKafkaError, OSError) as exc:
        log.warning("the Kafka producer did not stop cleanly", error=repr(exc))
        with contextlib.suppress(AIOKafkaError, OSError):
            await producer.client.close()


def _abandon(producer: AIOKafkaProducer) -> None:
    """Fail every send ``producer`` still holds (aiokafka has no public way to)."""
    accumulator = getattr(producer, "_message_accumulator", None)
    if accumulator is not None:
        accumulator.fail_all(
            KafkaConnectionError("the producer was closed before Kafka acknowledged")
        )


AnyProducer: TypeAlias = Producer | AIOKafkaProducer
"""What :func:`~shared.kafka.factory.produce` and ``produce_many`` send with: a service's
:class:`Producer`, or a bare producer a command-line run starts for itself."""

__all__ = [
    "CLOSE_BUDGET",
    "DRAIN_BUDGET",
    "REPLACE_WAIT",
    "AnyProducer",
    "Producer",
    "ProducerFactory",
    "close_within",
]
