"""Which offsets may be committed: the contiguous finished prefix of each partition.

A consumer that processes messages concurrently finishes them out of order, but a Kafka commit
says "everything before this offset is done". Committing offset 10 while 7 is still in flight
would lose 7 on a crash, so the tracker only ever offers, per partition, one past the highest
offset below which *everything* it was given is finished (architecture.md rule 3).

Pure and synchronous: the consumer loop feeds it, tests drive it directly.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


@dataclass
class _Partition:
    next_to_commit: int | None = None
    """One past the last contiguous finished offset (None until the first offset is seen)."""
    pending: set[int] = field(default_factory=set)
    """Offsets handed out and not finished yet."""
    finished: list[int] = field(default_factory=list)
    """A heap of finished offsets above ``next_to_commit`` waiting for the gap to close."""
    committed: int | None = None
    """The last value offered and taken by :meth:`OffsetTracker.committed`."""


class OffsetTracker(Generic[P]):
    """Tracks offsets per partition ``P`` (a TopicPartition or any hashable key)."""

    def __init__(self) -> None:
        self._partitions: dict[P, _Partition] = {}

    def started(self, partition: P, offsets: Iterable[int]) -> None:
        """``offsets`` of ``partition`` were handed to processing (in increasing order)."""
        state = self._partitions.setdefault(partition, _Partition())
        for offset in offsets:
            if state.next_to_commit is None:
                state.next_to_commit = offset
            if offset < state.next_to_commit or offset in state.pending:
                continue  # a redelivery of something already tracked
            state.pending.add(offset)

    def finished(self, partition: P, offsets: Iterable[int]) -> None:
        """``offsets`` of ``partition`` are done: everything derived from them is durable."""
        state = self._partitions.get(partition)
        if state is None:
            return
        for offset in offsets:
            if offset in state.pending:
                state.pending.discard(offset)
                heapq.heappush(state.finished, offset)
        self._advance(state)

    def committable(self) -> dict[P, int]:
        """Per partition, the offset to commit now, if it moved since the last commit."""
        ready = {}
        for partition, state in self._partitions.items():
            if state.next_to_commit is not None and state.next_to_commit != state.committed:
                ready[partition] = state.next_to_commit
        return ready

    def committed(self, offsets: dict[P, int]) -> None:
        """The broker accepted a commit of ``offsets`` (what :meth:`committable` offered)."""
        for partition, offset in offsets.items():
            state = self._partitions.get(partition)
            if state is not None:
                state.committed = offset

    def in_flight(self, partition: P | None = None) -> int:
        """Offsets started and not finished (of one partition, or of all)."""
        if partition is not None:
            state = self._partitions.get(partition)
            return len(state.pending) if state else 0
        return sum(len(state.pending) for state in self._partitions.values())

    def forget(self, partitions: Iterable[P]) -> None:
        """Stop tracking ``partitions`` (revoked: another consumer owns them now)."""
        for partition in partitions:
            self._partitions.pop(partition, None)

    def partitions(self) -> list[P]:
        return list(self._partitions)

    @staticmethod
    def _advance(state: _Partition) -> None:
        assert state.next_to_commit is not None
        lowest_pending = min(state.pending) if state.pending else None
        while state.finished:
            lowest = state.finished[0]
            if lowest <= state.next_to_commit:
                heapq.heappop(state.finished)
                if lowest == state.next_to_commit:
                    state.next_to_commit += 1
                continue
            if lowest_pending is not None and lowest_pending < lowest:
                break  # a gap still in flight: wait for it
            # Nothing in flight below: offsets the broker skipped (compaction, transaction
            # markers) are never handed out, so the gap is not ours to wait for.
            state.next_to_commit = lowest


__all__ = ["OffsetTracker"]
