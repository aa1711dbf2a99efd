"""One run in progress: its collaborators, its counts, and the one way it writes to the mirror.

Every page a run reads goes through :meth:`SweepContext.apply`: scope judged as the worker judges it
(:mod:`shared.scope.membership`), then :meth:`shared.mirror.writer.Mirror.apply_snapshots`, the same
monotonic upsert and change-event path the worker uses. Rows whose content really changed are
counted as *repaired* for every mode but a first-load backfill: what a sweep had to change is what
the webhooks missed. Rows outside the scope are counted as such (``out_of_scope``), never as
unchanged or deleted. Counts are stored on the run after each durable page, so a run that dies shows
how far it got.

Children follow what a page did to their parents (:mod:`shared.scope.follow`): those of parents
that left the scope leave with them; those of parents that entered it are read, except in the
reads that load the children entity themselves anyway (a first load, a scope reconciliation).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.autotask import AutotaskClient, Entity, Page, Priority, Query
from shared.db import Pool, session
from shared.entities import EntitySpec
from shared.errors import SyncError
from shared.messages.change import Origin
from shared.metrics import SWEEP_API_CALLS, SWEEP_DELETED, SWEEP_PAGES, SWEEP_REPAIRED
from shared.mirror.store import Snapshot
from shared.mirror.writer import Applied, Mirror
from shared.reconcile import runs
from shared.reconcile.due import Mode
from shared.reconcile.progress import Progress
from shared.reconcile.settings import SweepPolicy
from shared.scope.follow import Family, follow
from shared.scope.membership import judge
from shared.scope.rules import SyncScope

PRIORITY = Priority.SWEEP
"""Every reconciliation call yields to webhook-driven fetches and pauses above 90% usage."""


class Interrupted(SyncError):
    """The process is stopping: the run ends after its last durable page (and resumes where
    its mode can)."""

    retriable = True


class MassDeleteRefused(SyncError):
    """The mass-delete guard refused a detection; the run is aborted, nothing deleted."""


@dataclass
class SweepContext:
    """A run of ``mode`` over one connection's ``entity``."""

    connection: str
    entity: EntitySpec
    mode: Mode
    client: AutotaskClient
    scope: SyncScope
    pool: Pool
    mirror: Mirror
    policy: SweepPolicy
    progress: Progress
    run: runs.Run
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    counts: runs.Counts = field(default_factory=runs.Counts)
    detail: dict[str, object] = field(default_factory=dict)
    children: Counter[str] = field(default_factory=Counter)
    """Rows of child entities that entered or left the scope with this run's rows."""

    @property
    def repairs(self) -> bool:
        """Whether changes count as repaired (every mode but the first load)."""
        return self.mode != "backfill"

    @property
    def origin(self) -> Origin:
        return "backfill" if self.mode in ("backfill", "resync") else "sweep"

    @property
    def family(self) -> Family:
        """What the children of this run's rows need to follow them."""
        return Family(
            pool=self.pool,
            mirror=self.mirror,
            client=self.client,
            connection=self.connection,
            scope=self.scope,
            priority=PRIORITY,
        )

    # --- reading ---------------------------------------------------------------------------
    async def pages(
        self, query: Query, *, entity: str | None = None
    ) -> AsyncIterator[tuple[Page, datetime]]:
        """Pages of ``query`` at sweep priority, each with the time its request started (the
        snapshot time of its rows); each page counts as a call."""
        walk = self.client.query_pages(entity or self.entity.rest_name, query, priority=PRIORITY)
        try:
            while True:
                started = datetime.now(UTC)
                try:
                    page = await anext(walk)
                except StopAsyncIteration:
                    return
                self.counted(calls=1, pages=1)
                yield page, started
        finally:
            close = getattr(walk, "aclose", None)
            if close is not None:
                await close()

    async def fetch(self, ids: Iterable[int], *, include_fields: Sequence[str] = ()) -> set[int]:
        """Which of ``ids`` Autotask returns (``in`` queries; the confirmation of deletes)."""
        wanted = sorted(set(ids))
        if not wanted:
            return set()
        batch = await self.client.fetch_by_ids(
            self.entity.rest_name, wanted, include_fields=include_fields, priority=PRIORITY
        )
        self.counted(calls=batch.calls)
        return set(batch.found)

    def counted(self, *, calls: int = 0, pages: int = 0) -> None:
        self.counts.api_calls += calls
        self.counts.pages += pages
        labels = (self.connection, self.entity.rest_name, self.mode)
        if calls:
            SWEEP_API_CALLS.labels(*labels).inc(calls)
        if pages:
            SWEEP_PAGES.labels(*labels).inc(pages)

    # --- writing ---------------------------------------------------------------------------
    async def apply(
        self, rows: Sequence[Entity], *, fetched_at: datetime, origin: Origin | None = None
    ) -> Applied:
        """Judge scope and upsert ``rows`` (read at ``fetched_at``); counts what happened."""
        by_id = {row["id"]: row for row in rows if isinstance(row.get("id"), int)}
        self.counts.fetched += len(by_id)
        if not by_id:  # id-truthiness: ok a dict of rows by id: empty means no rows
            return Applied()
        in_scope = await judge(self.pool, self.connection, self.entity, by_id, self.scope)
        snapshots = [
            Snapshot(id=i, entity=row, fetched_at=fetched_at, in_scope=in_scope[i])
            for i, row in by_id.items()
        ]
        applied = await self.mirror.apply_snapshots(
            self.connection, self.entity, snapshots, origin=origin or self.origin
        )
        self._count(applied, outside={i for i, inside in in_scope.items() if not inside})
        await self._follow(applied, origin or self.origin)
        return applied

    async def leave(self, ids: Iterable[int]) -> Applied:
        """Mark the live rows among ``ids`` out of scope, as the mirror holds them (a scope that
        narrowed); their children follow."""
        applied = await self.mirror.apply_out_of_scope(
            self.connection, self.entity, ids, origin=self.origin
        )
        self._count(applied)
        await self._follow(applied, self.origin)
        return applied

    async def _follow(self, applied: Applied, origin: Origin) -> None:
        read_entered = self.mode not in ("backfill", "scope")
        followed = await follow(
            self.family, self.entity, applied, origin=origin, read_entered=read_entered
        )
        if followed.calls:
            self.counted(calls=followed.calls)
        if followed.entered or followed.left:
            self.children.update(entered=followed.entered, left=followed.left)
            self.detail["children"] = dict(self.children)

    async def delete(self, ids: Iterable[int], *, at: datetime, source: str) -> Applied:
        """Mark ``ids`` deleted (publishing a delete and tombstone for each live one)."""
        applied = await self.mirror.apply_deletes(
            self.connection, self.entity, ids, at=at, origin="sweep"
        )
        self._count(applied)
        deleted = applied.outcomes.get("deleted", 0)
        if deleted:
            SWEEP_DELETED.labels(self.connection, self.entity.rest_name, source).inc(deleted)
        return applied

    def _count(self, applied: Applied, *, outside: Collection[int] = ()) -> None:
        """Count each row by what happened to it. A row outside the scope (``outside``: read
        and judged out) counts as out of scope whatever the mirror did with it: it left the
        scope now, or stayed out of the mirror. It is neither unchanged nor deleted."""
        counts = self.counts
        for change in applied.changes:
            if change.id in outside or change.outcome in ("out_of_scope", "out_of_scope_skipped"):
                counts.out_of_scope += 1
            elif change.outcome == "created":
                counts.created += 1
            elif change.outcome == "updated":
                counts.updated += 1
            elif change.outcome == "deleted":
                counts.deleted += 1
            else:
                counts.unchanged += 1
        if self.repairs and applied.changed:
            self.counts.repaired += applied.changed
            SWEEP_REPAIRED.labels(self.connection, self.entity.rest_name).inc(applied.changed)

    async def page_done(self, *, rows: int) -> None:
        """A page is durable: store the counts, report progress, stop if asked to."""
        async with session(self.pool, "store the run's progress") as db:
            await runs.progress(db, self.run.id, self.counts)
        self.progress.advanced(rows=rows, pages=1)
        if self.stop.is_set():
            raise Interrupted(
                f"{self.mode} of {self.entity.rest_name} for {self.connection!r} interrupted "
                "by shutdown"
            )


__all__ = ["PRIORITY", "Interrupted", "MassDeleteRefused", "SweepContext"]
