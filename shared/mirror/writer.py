"""Applying what Autotask says to the mirror *and* downstream: the one path for every writer.

The worker (callouts) and the reconciler (sweeps, backfills, delete detection) both end here:
snapshots and deletes go through the monotonic upsert (:mod:`shared.mirror.store`), and every row
that really changed becomes a change event on ``autotask.<entity>.v1`` (a tombstone after each
removal), produced and acknowledged before the call returns. Nothing is published for unchanged,
stale or never-in-scope entities. What a backfill or resync (origin ``backfill``) creates or
updates is published as a snapshot (``op`` ``r``), what webhooks and sweeps change as ``c`` / ``u``
(:mod:`shared.messages.change` says how consumers tell them apart).

Order of durability: the write and its events are one unit. The upsert runs in a transaction
that stays open until Kafka has acknowledged every event, and only then commits. A crash (or a
Kafka failure) before the commit rolls the rows back, so the redone work finds the same changes
and publishes them again; a crash after it finds the events already on the broker. Downstream
delivery is therefore at least once for every change that reached the mirror, and events carry
a stable ``ce_id`` for the duplicates (the row's ``change_seq`` rolls back with it, so the redone
change counts the same). (Committing the rows first lost the events of a worker
killed between the commit and the acknowledgement: the redelivered callout found nothing to
change. The fault suite's worker-kill scenario caught it.) The transaction's advisory locks on
the ids are held through the publish, so two writers of one entity also publish in order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from shared.db import Pool, transaction
from shared.entities import EntitySpec
from shared.kafka import OutgoingMessage, produce_many
from shared.kafka.producer import AnyProducer
from shared.messages.change import (
    ChangeEvent,
    Op,
    Origin,
    ValueFormat,
    encode_change,
    tombstone,
)
from shared.messages.topics import Topics
from shared.metrics import MIRROR_WRITES
from shared.mirror import store as mirror
from shared.mirror.store import RowChange, Snapshot


@dataclass
class Applied:
    """What one call did: outcomes counted, and the changes published."""

    outcomes: Counter[str] = field(default_factory=Counter)
    published: int = 0
    changes: list[RowChange] = field(default_factory=list)

    def merge(self, other: Applied) -> None:
        self.outcomes.update(other.outcomes)
        self.published += other.published
        self.changes.extend(other.changes)

    @property
    def changed(self) -> int:
        """Rows whose content or visibility really changed (created, updated, deleted, left)."""
        return sum(1 for change in self.changes if change.op is not None)


class Mirror:
    """Writes to the mirror and publishes the resulting change events."""

    def __init__(
        self,
        pool: Pool,
        producer: AnyProducer,
        topics: Topics,
        *,
        value_format: ValueFormat = "json",
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._topics = topics
        self._value_format = value_format

    async def apply_snapshots(
        self,
        connection: str,
        entity: EntitySpec,
        snapshots: Sequence[Snapshot],
        *,
        origin: Origin,
    ) -> Applied:
        """Upsert ``snapshots`` and publish what changed."""
        if not snapshots:
            return Applied()
        async with transaction(self._pool, f"write {entity.rest_name} to the mirror") as db:
            changes = await mirror.upsert(db, entity, connection, snapshots, origin=origin)
            return await self._publish(connection, entity, changes, origin=origin)

    async def apply_deletes(
        self,
        connection: str,
        entity: EntitySpec,
        ids: Iterable[int],
        *,
        at: datetime,
        origin: Origin,
        sequences: dict[int, int] | None = None,
    ) -> Applied:
        """Soft-delete ``ids`` as of ``at`` and publish a delete plus tombstone for each row
        downstream still held."""
        wanted = list(ids)
        if not wanted:
            return Applied()
        async with transaction(self._pool, f"mark {entity.rest_name} deleted") as db:
            changes = await mirror.mark_deleted(
                db, entity, connection, wanted, at=at, origin=origin
            )
            if sequences:
                changes = [replace(c, callout_sequence=sequences.get(c.id)) for c in changes]
            return await self._publish(connection, entity, changes, origin=origin)

    async def apply_out_of_scope(
        self, connection: str, entity: EntitySpec, ids: Iterable[int], *, origin: Origin
    ) -> Applied:
        """Mark the live rows among ``ids`` out of scope as the mirror holds them, and publish
        each one's out-of-scope delete and tombstone."""
        wanted = list(ids)
        if not wanted:
            return Applied()
        async with transaction(self._pool, f"mark {entity.rest_name} out of scope") as db:
            changes = await mirror.mark_out_of_scope(db, entity, connection, wanted, origin=origin)
            return await self._publish(connection, entity, changes, origin=origin)

    async def _publish(
        self, connection: str, entity: EntitySpec, changes: list[RowChange], *, origin: Origin
    ) -> Applied:
        applied = Applied(changes=changes)
        applied.outcomes.update(change.outcome for change in changes)
        for outcome, count in applied.outcomes.items():
            MIRROR_WRITES.labels(connection, entity.rest_name, origin, outcome).inc(count)
        topic = self._topics.changes(entity)
        now = datetime.now(UTC)
        messages: list[OutgoingMessage] = []
        for change in changes:
            if change.op is None:
                continue
            event = ChangeEvent(
                connection=connection,
                entity=entity,
                id=change.id,
                op=_published_op(change.op, origin),
                before=change.before,
                after=change.after,
                version=change.version,
                origin=origin,
                at=now,
                callout_sequence=change.callout_sequence,
                reason=change.reason,
                change_seq=change.change_seq,
            )
            key, value, headers = encode_change(event, value_format=self._value_format)
            messages.append(OutgoingMessage(key, value, headers))
            if event.op == "d":
                key, _none, headers = tombstone(event, value_format=self._value_format)
                messages.append(OutgoingMessage(key, None, headers))
        # Enqueued in order (a delete before its tombstone), acknowledged together: the caller
        # is done only when every one is on the broker.
        await produce_many(self._producer, topic, messages)
        applied.published = len(messages)
        return applied


def _published_op(op: Op, origin: Origin) -> Op:
    """A backfill or resync reads every row: what it creates or updates is a snapshot (``r``),
    not a change someone made; its removals stay ``d``."""
    return "r" if origin == "backfill" and op != "d" else op


__all__ = ["Applied", "Mirror"]
