"""A consumer loop with explicit backpressure and commit-after-durable (arroyo's model).

:class:`StreamConsumer` fetches messages and hands each to a :class:`Sink`; the sink reports
messages *finished* once everything derived from them is durable (rows committed, events
acknowledged). Offsets are committed only up to the contiguous finished prefix of each partition
(:class:`~shared.kafka.offsets.OffsetTracker`), so a crash means redelivery, never loss
(architecture.md rule 3).

Backpressure: when more than ``max_in_flight`` messages are handed out and not finished, every
assigned partition is paused (the loop keeps polling, so the group membership stays alive) and
resumed once the sink catches up; nothing sleeps. Commits happen every ``commit_interval``, when
partitions are revoked (after waiting a bounded time for their in-flight messages) and at stop.

aiokafka errors are translated into :class:`~shared.errors.KafkaError` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.structs import OffsetAndMetadata

from shared.errors import KafkaError
from shared.kafka.offsets import OffsetTracker
from shared.logging import get_logger

log = get_logger(__name__)

Record: TypeAlias = Any
"""An aiokafka ``ConsumerRecord`` (aiokafka ships no type information)."""


class Sink(Protocol):
    """Where the loop puts messages; it calls :meth:`StreamConsumer.finished` when durable."""

    def accept(self, message: Record) -> None:
        """Take one message (buffer it, start work); must not block."""
        ...


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """Tuning of the loop."""

    max_in_flight: int = 5_000
    """Messages handed out and not finished before partitions are paused."""
    fetch_max: int = 500
    """Messages per poll."""
    poll_timeout: timedelta = timedelta(milliseconds=200)
    commit_interval: timedelta = timedelta(seconds=1)
    revoke_wait: timedelta = timedelta(seconds=15)
    """How long a revoke waits for in-flight messages of the partitions it loses."""
    drain_wait: timedelta = timedelta(seconds=15)
    """How long a stop waits for in-flight messages before the last commit."""


class StreamConsumer:
    """Runs one aiokafka consumer (manual commits) into a sink. See the module docstring."""

    def __init__(self, consumer: AIOKafkaConsumer, config: ConsumerConfig | None = None) -> None:
        self._consumer = consumer
        self.config = config or ConsumerConfig()
        self._tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self._paused = False
        self._progress = asyncio.Event()
        self._last_commit = time.monotonic()

    # --- what the sink calls ------------------------------------------------------------------
    def finished(self, messages: Iterable[Record]) -> None:
        """``messages`` are durable downstream: their offsets may be committed."""
        by_partition: dict[TopicPartition, list[int]] = {}
        for message in messages:
            by_partition.setdefault(TopicPartition(message.topic, message.partition), []).append(
                message.offset
            )
        for partition, offsets in by_partition.items():
            self._tracker.finished(partition, offsets)
        self._progress.set()

    @property
    def in_flight(self) -> int:
        return self._tracker.in_flight()

    @property
    def paused(self) -> bool:
        return self._paused

    def rebalance_listener(self) -> ConsumerRebalanceListener:
        """Pass to ``consumer.subscribe(listener=...)`` so revokes commit what is finished."""
        return _Rebalance(self)

    # --- the loop --------------------------------------------------------------------------
    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then drain within the budget and commit."""
        try:
            while not stop.is_set():
                batches = await self._poll()
                for partition, records in batches.items():
                    self._tracker.started(partition, (r.offset for r in records))
                    for record in records:
                        sink.accept(record)
                self._apply_backpressure()
                if (
                    time.monotonic() - self._last_commit
                    >= self.config.commit_interval.total_seconds()
                ):
                    await self.commit()
        finally:
            await self._drain(self.config.drain_wait)
            await self.commit()

    async def commit(self) -> dict[TopicPartition, int]:
        """Commit the contiguous finished offsets; returns what was committed."""
        self._last_commit = time.monotonic()
        offsets = self._tracker.committable()
        if not offsets:
            return {}
        assigned = self._consumer.assignment()
        offsets = {tp: o for tp, o in offsets.items() if tp in assigned}
        if not offsets:
            return {}
        try:
            await self._consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance took the partitions: their new owner resumes from the last commit.
            log.warning("commit refused during a rebalance", error=str(exc))
            return {}
        except AIOKafkaError as exc:
            raise KafkaError(f"could not commit consumer offsets: {exc!r}") from exc
        self._tracker.committed(offsets)
        return offsets

    async def _poll(self) -> dict[TopicPartition, list[Record]]:
        try:
            result: dict[TopicPartition, list[Record]] = await self._consumer.getmany(
                timeout_ms=int(self.config.poll_timeout.total_seconds() * 1000),
                max_records=self.config.fetch_max,
            )
        except AIOKafkaError as exc:
            raise KafkaError(f"could not fetch messages: {exc!r}") from exc
        return result

    def _apply_backpressure(self) -> None:
        assigned = self._consumer.assignment()
        if not assigned:
            return
        busy = self._tracker.in_flight() >= self.config.max_in_flight
        if busy and not self._paused:
            self._consumer.pause(*assigned)
            self._paused = True
            log.info("consumer paused: downstream is behind", in_flight=self._tracker.in_flight())
        elif not busy and self._paused:
            self._consumer.resume(*assigned)
            self._paused = False
            log.info("consumer resumed", in_flight=self._tracker.in_flight())

    async def _drain(
        self, budget: timedelta, partitions: set[TopicPartition] | None = None
    ) -> None:
        """Wait until nothing (of ``partitions``) is in flight, or the budget is spent."""
        deadline = time.monotonic() + budget.total_seconds()

        def pending() -> int:
            if partitions is None:
                return self._tracker.in_flight()
            return sum(self._tracker.in_flight(tp) for tp in partitions)

        while pending() and time.monotonic() < deadline:
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._progress.wait(), max(0.01, deadline - time.monotonic())
                )
        if pending():
            log.warning(
                "stopped waiting for in-flight messages; they will be redelivered",
                in_flight=pending(),
            )

    async def _revoked(self, partitions: set[TopicPartition]) -> None:
        await self._drain(self.config.revoke_wait, partitions)
        await self.commit()
        self._tracker.forget(partitions)
        if self._paused:
            self._paused = False  # the new assignment starts unpaused


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: StreamConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            await self._owner._revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


__all__ = ["ConsumerConfig", "Record", "Sink", "StreamConsumer"]
