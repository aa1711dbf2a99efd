"""A consumer loop with explicit backpressure and commit-after-durable (arroyo's model).

:class:`StreamConsumer` fetches messages and hands each to a :class:`Sink`; the sink reports
messages *finished* once everything derived from them is durable (rows committed, events
acknowledged). Offsets are committed only up to the contiguous finished prefix of each partition
(:class:`~shared.kafka.offsets.OffsetTracker`), so a crash means redelivery, never loss
(architecture.md rule 3).

Backpressure: when more than ``max_in_flight`` messages are handed out and not finished, every
assigned partition is paused (the loop keeps polling, so the group membership stays alive) and
resumed once the sink catches up; nothing sleeps. Commits happen every ``commit_interval``, when
partitions are revoked and at stop.

Rebalances. aiokafka (0.14) only has the eager protocol: every rebalance revokes *all* of a
member's partitions, runs ``on_partitions_revoked`` (heartbeats go on meanwhile, so the session
timeout does not bound it), and only then sends JoinGroup. The broker waits for every member's
JoinGroup for the group's *rebalance timeout* and then removes those that have not sent one: a
member whose revoke outlasts it is evicted, its commits refused and all its unfinished work
redelivered. So a revoke here is bounded by ``revoke_wait`` + ``revoke_commit_wait``, which the
caller keeps well inside the rebalance timeout (the worker checks its settings at start): it asks
the sink to start the revoked partitions' buffered work at once (:meth:`Sink.flush`), waits at
most ``revoke_wait`` for their in-flight messages, commits what finished and forgets them. Work
that could not finish in time is left for the next owner (at-least-once; consumers deduplicate
on ``ce_id``). A member that is evicted all the same is counted in
``autotask_sync_consumer_evictions_total``; each revoke's duration in
``autotask_sync_consumer_revoke_seconds``.

aiokafka errors are translated into :class:`~shared.errors.KafkaError` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    IllegalStateError,
    UnknownMemberIdError,
)
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.structs import OffsetAndMetadata

from shared.errors import KafkaError
from shared.kafka.offsets import OffsetTracker
from shared.logging import get_logger
from shared.metrics import CONSUMER_EVICTIONS, CONSUMER_REVOKE_SECONDS
from shared.runtime.runner import until_stopped

log = get_logger(__name__)

LAG_POSITION_WAIT = timedelta(seconds=2)
"""How long :meth:`StreamConsumer.lag` waits for a partition's position."""

Record: TypeAlias = Any
"""An aiokafka ``ConsumerRecord`` (aiokafka ships no type information)."""

Committed = Callable[[Mapping[TopicPartition, int]], None]
"""Told the offsets the broker accepted in a commit (never called for an empty one)."""
Revoked = Callable[[Collection[TopicPartition]], None]
"""Told the partitions this member no longer owns, once their revoke is done."""


class Sink(Protocol):
    """Where the loop puts messages; it calls :meth:`StreamConsumer.finished` when durable."""

    def accept(self, message: Record) -> None:
        """Take one message (buffer it, start work); must not block."""
        ...

    def flush(self, partitions: Collection[TopicPartition]) -> None:
        """``partitions`` are being revoked: start the work of their buffered messages now
        instead of when it would be due; must not block."""
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
    revoke_wait: timedelta = timedelta(seconds=5)
    """How long a revoke waits for in-flight messages of the partitions it loses."""
    revoke_commit_wait: timedelta = timedelta(seconds=2)
    """How long a revoke waits for its commit after that (the broker is slow or away)."""
    drain_wait: timedelta = timedelta(seconds=15)
    """How long a stop waits for in-flight messages before the last commit."""


class StreamConsumer:
    """Runs one aiokafka consumer (manual commits) into a sink. See the module docstring.

    ``on_commit`` is told what each successful commit moved (the worker counts it as progress);
    ``on_revoke`` which partitions this member no longer owns (their metrics go)."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        config: ConsumerConfig | None = None,
        *,
        on_commit: Committed | None = None,
        on_revoke: Revoked | None = None,
    ) -> None:
        self._consumer = consumer
        self.config = config or ConsumerConfig()
        self._on_commit = on_commit
        self._on_revoke = on_revoke
        self._tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self._paused = False
        self._progress = asyncio.Event()
        self._last_commit = time.monotonic()
        self._sink: Sink | None = None
        self._revokes = 0
        """Revokes begun so far: a poll that saw this change hands out nothing."""
        self._revoking: set[TopicPartition] = set()
        """Partitions revoked since the last assignment."""
        self._eviction_counted = False
        """This membership's eviction is counted already (a refused commit, then the revoke
        aiokafka runs before it joins again, are one eviction)."""

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
        """Messages of the partitions this member owns handed out and not finished."""
        return self._tracker.in_flight()

    @property
    def paused(self) -> bool:
        return self._paused

    def owned(self) -> set[TopicPartition]:
        """The partitions this member owns now: assigned, and not being revoked (between the
        start of a revoke and the next assignment aiokafka still lists the old partitions)."""
        return set(self._consumer.assignment()) - self._revoking

    async def lag(self) -> dict[TopicPartition, int]:
        """Messages behind the end of each partition this member owns, for those whose end and
        position are known (the end comes with fetches; a position not known within
        ``LAG_POSITION_WAIT``, while Kafka is away, is left out)."""

        async def behind(partition: TopicPartition) -> int | None:
            if partition not in self._consumer.assignment():
                return None  # revoked meanwhile
            highwater = self._consumer.highwater(partition)
            if highwater is None:
                return None
            try:
                position = await asyncio.wait_for(
                    self._consumer.position(partition), LAG_POSITION_WAIT.total_seconds()
                )
            except (AIOKafkaError, TimeoutError):
                return None
            return max(0, int(highwater) - int(position))

        partitions = sorted(self.owned())
        measured = await asyncio.gather(*(behind(tp) for tp in partitions))
        owned = self.owned()  # a revoke may have begun while positions were read
        return {
            tp: lag
            for tp, lag in zip(partitions, measured, strict=True)
            if lag is not None and tp in owned
        }

    def rebalance_listener(self) -> ConsumerRebalanceListener:
        """Pass to ``consumer.subscribe(listener=...)`` so revokes commit what is finished."""
        return _Rebalance(self)

    # --- the loop --------------------------------------------------------------------------
    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then drain within the budget and commit. Nothing is
        handed to ``sink`` once ``stop`` is set, not even what a poll under way returns."""
        self._sink = sink
        try:
            while not stop.is_set():
                batches = await self._poll(stop)
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
        except CommitFailedError as exc:
            if isinstance(exc.__cause__, UnknownMemberIdError | IllegalGenerationError):
                self._evicted("a commit was refused: the group no longer knows this member")
            else:
                # A rebalance is under way: the revoke that follows commits again.
                log.warning("commit refused during a rebalance", error=str(exc))
            return {}
        except IllegalStateError as exc:
            # A rebalance took the partitions: their new owner resumes from the last commit.
            log.warning("commit refused during a rebalance", error=str(exc))
            return {}
        except AIOKafkaError as exc:
            raise KafkaError(f"could not commit consumer offsets: {exc!r}") from exc
        self._tracker.committed(offsets)
        if self._on_commit is not None:
            self._on_commit(offsets)
        return offsets

    async def _poll(self, stop: asyncio.Event) -> dict[TopicPartition, list[Record]]:
        """One poll, given up as soon as ``stop`` is set (what it returned is not taken: its
        partitions resume from their committed offsets); after a rebalance during the poll,
        only the records of partitions this member owns now."""
        revokes = self._revokes
        # A poll waits for a rebalance to end, however long: stop does not.
        polling = await until_stopped(
            self._consumer.getmany(
                timeout_ms=int(self.config.poll_timeout.total_seconds() * 1000),
                max_records=self.config.fetch_max,
            ),
            stop,
        )
        if polling.cancelled():
            return {}
        try:
            result: dict[TopicPartition, list[Record]] = polling.result()
        except AIOKafkaError as exc:
            raise KafkaError(f"could not fetch messages: {exc!r}") from exc
        if stop.is_set():
            return {}
        if revokes != self._revokes:
            # A rebalance ran during the poll: keep what belongs to partitions owned now (their
            # position has moved past these records, so dropping them would skip them until
            # the next rebalance); a partition lost, or being revoked, is resumed from its
            # committed offset by whoever owns it next.
            owned = self.owned()
            return {tp: records for tp, records in result.items() if tp in owned}
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
        self, budget: timedelta, partitions: Collection[TopicPartition] | None = None
    ) -> int:
        """Wait until nothing (of ``partitions``) is in flight, or the budget is spent; returns
        how many are still in flight."""
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
        left = pending()
        if left:
            log.warning(
                "stopped waiting for in-flight messages; they will be redelivered",
                in_flight=left,
                waited_s=budget.total_seconds(),
            )
        return left

    # --- rebalances ------------------------------------------------------------------------
    async def _revoked(self, partitions: set[TopicPartition]) -> None:
        self._revokes += 1
        self._revoking |= partitions
        started = time.monotonic()
        left = 0
        committed: dict[TopicPartition, int] = {}
        try:
            if _member_lost(self._consumer):
                # The group removed this member before the revoke (missed heartbeats, or too
                # long without a poll): the partitions are someone else's already, and a commit
                # would be refused. Unfinished work is redelivered to the new owner.
                self._evicted("the group removed this member before its partitions were revoked")
                left = sum(self._tracker.in_flight(tp) for tp in partitions)
            else:
                if self._sink is not None:
                    self._sink.flush(partitions)
                left = await self._drain(self.config.revoke_wait, partitions)
                committed = await self._commit_within(self.config.revoke_commit_wait)
        finally:
            self._tracker.forget(partitions)
            if self._paused:
                self._paused = False  # the new assignment starts unpaused
            elapsed = time.monotonic() - started
            CONSUMER_REVOKE_SECONDS.observe(elapsed)
            if self._on_revoke is not None:
                self._on_revoke(partitions)
        log.info(
            "partitions revoked",
            partitions=len(partitions),
            committed=len(committed),
            left_in_flight=left,
            seconds=round(elapsed, 3),
        )

    async def _commit_within(self, budget: timedelta) -> dict[TopicPartition, int]:
        """:meth:`commit`, given up after ``budget`` (aiokafka retries a commit while the
        coordinator is away without end; a revoke cannot wait that long)."""
        try:
            async with asyncio.timeout(budget.total_seconds()):
                return await self.commit()
        except TimeoutError:
            log.warning(
                "revoke commit not answered in time; unfinished work will be redelivered",
                waited_s=budget.total_seconds(),
            )
        except KafkaError as exc:
            log.warning("revoke commit failed; work will be redelivered", error=str(exc))
        return {}

    def _assigned(self) -> None:
        self._revoking = set()
        self._eviction_counted = False  # a new membership

    def _evicted(self, why: str) -> None:
        if self._eviction_counted:
            return
        self._eviction_counted = True
        CONSUMER_EVICTIONS.inc()
        log.error(
            "evicted from the consumer group; unfinished work is redelivered to the next owner",
            reason=why,
            in_flight=self._tracker.in_flight(),
        )


def _member_lost(consumer: AIOKafkaConsumer) -> bool:
    """Whether aiokafka has dropped this member's id: it does so when the coordinator answers
    a heartbeat, commit or join with "unknown member" or "illegal generation" (the member was
    removed from the group), or when it left the group after ``max_poll_interval_ms`` without a
    poll; it then revokes everything and joins as a new member. aiokafka exposes no public
    signal for this, hence its coordinator's state (``""`` is the protocol's unknown member)."""
    coordinator = getattr(consumer, "_coordinator", None)
    return coordinator is not None and getattr(coordinator, "member_id", None) == ""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: StreamConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            await self._owner._revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._owner._assigned()


__all__ = [
    "LAG_POSITION_WAIT",
    "Committed",
    "ConsumerConfig",
    "Record",
    "Revoked",
    "Sink",
    "StreamConsumer",
]
