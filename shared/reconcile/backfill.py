"""Complete reads: the backfill (first load or on request), the resync and the full sweep.

All three read every row, ``id > cursor`` in id order at 500 a page (100,000 tickets: 200 pages,
one ``count`` for the progress total), and store the cursor after each durable page, so a read
killed half-way resumes after the last durable id without re-reading what was done.

- ``backfill`` applies with origin ``backfill``; a first load also starts the incremental and
  delete-log watermarks at the read's start (so changes made while it ran are swept), and a
  finished backfill is recorded and announced on the control topic (``BackfillFinished``);
- ``resync`` ("clear and resync") first marks the mirror's live rows for rebuild, backfills, and
  deletes the marked rows no page returned, once confirmed by an ``in`` query and within the
  mass-delete guard; the upsert publishes change events only for what really changed;
- ``full`` (``sweep --full``) does the same with origin ``sweep``: a quick sync that re-reads
  everything and repairs it.

Backfill and resync apply with origin ``backfill`` (:attr:`SweepContext.origin`): each row they
create or update is published as a snapshot (``op`` ``r``), not as a change, a row found
unchanged publishes nothing, and the rows a resync deletes are ``d`` like any delete
(:mod:`shared.messages.change`). ``full`` publishes ``c`` / ``u``, as sweeps do.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shared.autotask import F, Query
from shared.db import session
from shared.metrics import BACKFILL_PROGRESS_RATIO
from shared.mirror.store import live_ids
from shared.reconcile import delete_sweep, watermarks
from shared.reconcile.context import PRIORITY, SweepContext

_KIND = watermarks.BACKFILL


async def complete_read(ctx: SweepContext, *, restart: bool = False) -> None:
    """Read every row of ``ctx.entity`` for ``ctx.mode`` (backfill, resync or full), resuming
    an unfinished read of the same mode unless ``restart``."""
    spec, connection, mode = ctx.entity, ctx.connection, ctx.mode
    rebuilding = mode in ("resync", "full")
    async with session(ctx.pool, "start the complete read") as db:
        state = await watermarks.read(db, connection, spec.rest_name, _KIND)
        first_load = state.completed_at is None
        resume = state.walking and state.walk_mode == mode and not restart
        if resume:
            assert state.walk_started_at is not None
            started, cursor = state.walk_started_at, state.id_cursor
        else:
            started, cursor = datetime.now(UTC), None
            await watermarks.start_walk(
                db, connection, spec.rest_name, _KIND, started_at=started, mode=mode
            )
            if rebuilding:
                ctx.detail["marked"] = await watermarks.mark_rebuild(db, spec, connection)
            else:
                await watermarks.clear_rebuild(db, spec, connection)
    ctx.detail.update(resumed_after=cursor, read_started=started.isoformat())
    query = Query.where(F("id").gt(cursor)) if cursor is not None else Query.all()
    total = await ctx.client.count(spec.rest_name, query, priority=PRIORITY)
    ctx.counted(calls=1)
    ctx.detail["total"] = total
    ctx.progress.started(
        what="every row" if cursor is None else f"rows after id {cursor}", total=total
    )
    done = 0
    async for page, page_started in ctx.pages(query.limit(ctx.policy.page_size)):
        rows = page.items
        await ctx.apply(rows, fetched_at=page_started)
        ids = [i for row in rows if isinstance(i := row.get("id"), int)]
        async with session(ctx.pool, "record a page of the complete read") as db:
            if rebuilding and ids:
                await watermarks.seen(db, spec, connection, ids)
            if ids:
                await watermarks.walked(db, connection, spec.rest_name, _KIND, id_cursor=max(ids))
        done += len(rows)
        if total:
            BACKFILL_PROGRESS_RATIO.labels(connection, spec.rest_name).set(min(1.0, done / total))
        await ctx.page_done(rows=len(rows))
    if rebuilding:
        async with session(ctx.pool, "find the rows the complete read did not return") as db:
            unseen = await watermarks.unseen(db, spec, connection)
            live = await live_ids(db, spec, connection)
        await delete_sweep.delete_missing(ctx, live=len(live), candidates=unseen)
    finished = datetime.now(UTC)
    async with session(ctx.pool, "finish the complete read") as db:
        async with db.transaction():
            await watermarks.finish_walk(
                db, connection, spec.rest_name, _KIND, completed_at=finished
            )
            if rebuilding:
                await watermarks.clear_rebuild(db, spec, connection)
        if first_load:
            await _start_sweeps_from(ctx, started)
    BACKFILL_PROGRESS_RATIO.labels(connection, spec.rest_name).set(1.0)


async def _start_sweeps_from(ctx: SweepContext, started: datetime) -> None:
    """After a first load, incremental sweeps and delete logs cover what changed since it began
    (watermarks only move forward: existing ones stay)."""
    kinds = [watermarks.INCREMENTAL]
    kinds += [watermarks.delete_log_kind(log.name) for log in delete_sweep.delete_logs(ctx.entity)]
    async with session(ctx.pool, "start the sweeps' watermarks") as db:
        for kind in kinds:
            current = await watermarks.read(db, ctx.connection, ctx.entity.rest_name, kind)
            if current.watermark is None:
                await watermarks.advance(db, ctx.connection, ctx.entity.rest_name, kind, started)


__all__ = ["complete_read"]
