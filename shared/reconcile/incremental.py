"""The incremental sweep: what changed since the watermark, plus deletes and unresolved ids.

One run of an entity:

1. reads ``lastModified >= watermark - overlap`` OR'ed with the creation stamp (a new row may
   have no modified stamp yet) and the activity stamp (a ticket's ``lastActivityDate`` moves
   when a note is added), paged at 500 in id order, each page applied through the one upsert
   (origin ``sweep``). A catch-up reads from the start of the gap when that is older;
2. reads the delete logs the entity has (:mod:`shared.reconcile.delete_sweep`);
3. fetches the ids the worker recorded as unresolved and resolves them.

The watermark advances once every page of the walk is durable, to the highest stamp read but
never past the walk's start: pages come in id order, not stamp order, so a watermark taken from
an early page would skip an older stamp on a later one, and a row changed while the walk ran
may sit on a page already read. A crash re-reads the window (harmless: the upsert is
idempotent). Entities without a last-modified field (Resources) are read whole.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shared.autotask import F, Query, or_
from shared.db import session
from shared.metrics import SWEEP_WATERMARK_LAG_SECONDS
from shared.mirror.store import version_of
from shared.reconcile import delete_sweep, unresolved, watermarks
from shared.reconcile.context import PRIORITY, SweepContext


async def sweep(ctx: SweepContext, *, since: datetime | None = None) -> None:
    """One incremental (or catch-up from ``since``) sweep of ``ctx.entity``."""
    if ctx.entity.last_modified_field is None:
        await read_whole(ctx)
    else:
        await _walk_window(ctx, since)
    await delete_sweep.read_delete_logs(ctx)
    await resolve_unresolved(ctx)


async def read_whole(ctx: SweepContext) -> None:
    """Every row, paged by id (entities without a last-modified field are small)."""
    ctx.progress.started(what="every row", total=None)
    async for page, started in ctx.pages(Query.all().limit(ctx.policy.page_size)):
        await ctx.apply(page.items, fetched_at=started)
        await ctx.page_done(rows=len(page.items))


async def _walk_window(ctx: SweepContext, since: datetime | None) -> None:
    spec = ctx.entity
    assert spec.last_modified_field is not None
    async with session(ctx.pool, "read the sweep's watermark") as db:
        state = await watermarks.read(db, ctx.connection, spec.rest_name, watermarks.INCREMENTAL)
    walk_started = datetime.now(UTC)
    mark = state.watermark
    if mark is None:
        # No first load recorded (backfills are off): sweeps cover what changes from now on.
        async with session(ctx.pool, "start the sweep's watermark") as db:
            await watermarks.advance(
                db, ctx.connection, spec.rest_name, watermarks.INCREMENTAL, walk_started
            )
        ctx.detail["watermark"] = "started now (no backfill)"
        if since is None:
            return
        mark = walk_started
    low = (min(mark, since) if since is not None else mark) - ctx.policy.overlap
    fields = [spec.last_modified_field, spec.create_field, spec.activity_field]
    conditions = [F(name).gte(low) for name in dict.fromkeys(f for f in fields if f)]
    condition = conditions[0] if len(conditions) == 1 else or_(*conditions)
    ctx.detail["from"] = low.isoformat()
    ctx.progress.started(what=f"changed since {low.isoformat()}", total=None)
    highest: datetime | None = None
    query = Query.where(condition).limit(ctx.policy.page_size)
    async for page, started in ctx.pages(query):
        await ctx.apply(page.items, fetched_at=started)
        stamps = [v for row in page.items if (v := version_of(spec, row)) is not None]
        if stamps:
            highest = max(highest, *stamps) if highest else max(stamps)
        await ctx.page_done(rows=len(page.items))
    if highest is not None:
        async with session(ctx.pool, "advance the sweep's watermark") as db:
            await watermarks.advance(
                db,
                ctx.connection,
                spec.rest_name,
                watermarks.INCREMENTAL,
                min(highest, walk_started),
            )
        mark = max(mark, min(highest, walk_started))
    ctx.detail["watermark"] = mark.isoformat()
    SWEEP_WATERMARK_LAG_SECONDS.labels(ctx.connection, spec.rest_name).set(
        max(0.0, (datetime.now(UTC) - mark).total_seconds())
    )


async def resolve_unresolved(ctx: SweepContext) -> None:
    """Read the ids the worker could not fetch; apply what comes back and forget them all.

    An id still not returned is not deleted here (absence is not deletion): the delete log or
    the id sweep decides that, with their guards.
    """
    name = ctx.entity.rest_name
    async with session(ctx.pool, "read the unresolved ids") as db:
        pending = await unresolved.pending(db, ctx.connection, name)
    if not pending:
        return
    started = datetime.now(UTC)
    batch = await ctx.client.fetch_by_ids(name, pending, priority=PRIORITY)
    ctx.counted(calls=batch.calls)
    await ctx.apply(list(batch.found.values()), fetched_at=started)
    async with session(ctx.pool, "forget the unresolved ids") as db:
        await unresolved.resolve(db, ctx.connection, name, pending)
    ctx.detail["unresolved"] = {"read": len(batch.found), "not_returned": len(batch.missing)}


__all__ = ["read_whole", "resolve_unresolved", "sweep"]
