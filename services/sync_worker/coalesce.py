"""Coalescing: many callouts for the same entities become one batched fetch (pure, no I/O).

Callouts are bucketed by (connection, entity). A bucket opens with its first callout and is due
when its window has passed or it holds ``max_ids`` distinct ids (a callout for one more id then
opens the next bucket: no fetch unit names more than ``max_ids`` ids); when due it becomes a
:class:`Unit`: the ids to fetch once each (however many callouts named them) and the ids to mark
deleted (a Delete callout needs no fetch, and wins over any other callout for that id: Autotask
never reuses ids).

The window adapts to the connection's API budget (:class:`WindowPolicy`): short while usage is
low, so changes arrive fast; wider as usage climbs past 50% and 75%, so a busy tenant spends fewer
calls per change instead of reaching its limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.entities import EntitySpec


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    """The coalescing window for a given share of the hourly API budget used."""

    low: timedelta = timedelta(milliseconds=250)
    medium: timedelta = timedelta(seconds=2)
    high: timedelta = timedelta(seconds=10)
    medium_at: float = 0.5
    high_at: float = 0.75

    def window(self, usage: float | None) -> timedelta:
        """``usage`` is 0..1 (None: unknown, treated as low)."""
        if usage is None or usage < self.medium_at:
            return self.low
        if usage < self.high_at:
            return self.medium
        return self.high


@dataclass(frozen=True, slots=True)
class Item:
    """One callout waiting in a bucket; ``message`` is opaque here (the consumer's record)."""

    message: Any
    id: int
    delete: bool
    received_at: datetime
    sequence: int | None = None


@dataclass
class Unit:
    """The work one bucket became."""

    connection: str
    entity: EntitySpec
    messages: list[Any] = field(default_factory=list)
    fetch_ids: list[int] = field(default_factory=list)
    delete_at: dict[int, datetime] = field(default_factory=dict)
    """Ids to mark deleted, with when the Delete callout arrived."""
    sequences: dict[int, int] = field(default_factory=dict)
    """The highest callout sequence number seen per id."""
    earliest: dict[int, datetime] = field(default_factory=dict)
    """When the first callout for each id arrived (end-to-end latency starts there)."""

    @property
    def callouts(self) -> int:
        return len(self.messages)


@dataclass
class _Bucket:
    opened: float
    items: list[Item] = field(default_factory=list)
    ids: set[int] = field(default_factory=set)


WindowFor = Callable[[str], timedelta]


class Coalescer:
    """Buckets of callouts per (connection, entity); see the module docstring."""

    def __init__(self, *, max_ids: int = 500) -> None:
        self._max_ids = max_ids
        self._buckets: dict[tuple[str, str], tuple[EntitySpec, _Bucket]] = {}
        self._full: list[Unit] = []  # buckets closed by their size, not yet taken

    def add(self, connection: str, entity: EntitySpec, item: Item, *, now: float) -> None:
        """Put ``item`` in its bucket; ``now`` is monotonic seconds."""
        key = (connection, entity.rest_name)
        ids = self._buckets[key][1].ids if key in self._buckets else set()
        if len(ids) >= self._max_ids and item.id not in ids:  # full: this id opens the next one
            self._full.append(self._take(key))
        if key not in self._buckets:
            self._buckets[key] = (entity, _Bucket(opened=now))
        bucket = self._buckets[key][1]
        bucket.items.append(item)
        bucket.ids.add(item.id)

    def due(self, *, now: float, window_for: WindowFor) -> list[Unit]:
        """Take the buckets whose window passed or that are full."""
        ready = [
            key
            for key, (_entity, bucket) in self._buckets.items()
            if len(bucket.ids) >= self._max_ids
            or now - bucket.opened >= window_for(key[0]).total_seconds()
        ]
        full, self._full = self._full, []
        return full + [self._take(key) for key in ready]

    def next_due(self, *, now: float, window_for: WindowFor) -> float | None:
        """Seconds until the next bucket is due (0 if one is), None when all are empty."""
        if self._full:
            return 0.0
        waits = [
            max(0.0, bucket.opened + window_for(key[0]).total_seconds() - now)
            for key, (_entity, bucket) in self._buckets.items()
        ]
        return min(waits) if waits else None

    def flush(self, holding: Callable[[Any], bool] | None = None) -> list[Unit]:
        """Take every bucket now (shutdown), or only those holding a message for which
        ``holding`` is true (a revoke: the buckets with messages of the revoked partitions;
        the rest keep their window). Full buckets are due anyway and always taken."""
        full, self._full = self._full, []
        keys = [
            key
            for key, (_entity, bucket) in self._buckets.items()
            if holding is None or any(holding(item.message) for item in bucket.items)
        ]
        return full + [self._take(key) for key in keys]

    @property
    def waiting(self) -> int:
        """Callouts in buckets."""
        open_ = sum(len(bucket.items) for _entity, bucket in self._buckets.values())
        return open_ + sum(unit.callouts for unit in self._full)

    def _take(self, key: tuple[str, str]) -> Unit:
        entity, bucket = self._buckets.pop(key)
        unit = Unit(connection=key[0], entity=entity)
        for item in bucket.items:
            unit.messages.append(item.message)
            if item.sequence is not None:
                unit.sequences[item.id] = max(item.sequence, unit.sequences.get(item.id, -1))
            first = unit.earliest.get(item.id)
            if first is None or item.received_at < first:
                unit.earliest[item.id] = item.received_at
            if item.delete:
                at = unit.delete_at.get(item.id)
                unit.delete_at[item.id] = (
                    item.received_at if at is None else max(at, item.received_at)
                )
        unit.fetch_ids = list(
            dict.fromkeys(i.id for i in bucket.items if i.id not in unit.delete_at)
        )
        return unit


__all__ = ["Coalescer", "Item", "Unit", "WindowPolicy"]
