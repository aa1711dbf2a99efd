"""A scope change is a reconciliation: the mirror is brought to the new boundary by the system.

When a connection's scope draws a different boundary for an entity than the one its mirror
follows (:mod:`shared.scope.applied`, :mod:`shared.scope.boundary`), the schedule starts a run of
mode ``scope`` for the entity, parents before their children (:mod:`shared.reconcile.due`):

- a boundary that only **narrows** lets no row in: the mirror's live rows are judged again,
  page by page, with the new scope, and those it keeps out are marked out of scope and their
  out-of-scope events published. No API call;
- any other move (a queue added, an entity synced again) is a **complete read** of the entity
  with the new scope (``id > cursor``, resumable, budget-aware at sweep priority, progress like
  a full sweep): rows now inside are created, rows now outside marked, rows gone deleted.

Children follow (:mod:`shared.scope.follow`): the rows of a parent that left take their live
children with them at once; the children a parent brings in are read by the children's own
``scope`` run, which the schedule starts once the parent's is done. When the run succeeds, the
scope it applied is recorded; an edit made meanwhile starts another run.
"""

from __future__ import annotations

from shared.db import session
from shared.mirror.store import live_rows_after
from shared.reconcile import backfill
from shared.reconcile.context import SweepContext
from shared.scope import applied as applied_scopes
from shared.scope.boundary import boundary
from shared.scope.membership import judge
from shared.scope.rules import SyncScope


async def reconcile(ctx: SweepContext, *, previous: SyncScope | None, restart: bool) -> None:
    """Bring the mirror of ``ctx.entity`` from ``previous`` (None: not known) to the boundary
    ``ctx.scope`` draws, then record ``ctx.scope`` as applied."""
    new = boundary(ctx.entity, ctx.scope)
    old = boundary(ctx.entity, previous) if previous is not None else None
    narrows = old is not None and new.narrows(old)
    ctx.detail.update(change="narrowed" if narrows else "widened", synced=new.synced)
    if narrows:
        await narrow(ctx)
    else:
        await backfill.complete_read(ctx, restart=restart)
    async with session(ctx.pool, "record the scope the mirror follows") as db:
        await applied_scopes.record(db, ctx.connection, ctx.entity.rest_name, ctx.scope)


async def narrow(ctx: SweepContext) -> None:
    """Judge the mirror's live rows again with ``ctx.scope``; mark those it keeps out (every one
    when the entity is no longer synced)."""
    synced = ctx.scope.syncs(ctx.entity)
    ctx.progress.started(what="the mirror's rows against the new scope", total=None)
    after: int | None = None
    left = 0
    while True:
        async with session(ctx.pool, f"read a page of the mirror's {ctx.entity.rest_name}") as db:
            rows = await live_rows_after(
                db, ctx.entity, ctx.connection, after, ctx.policy.page_size
            )
        if not rows:
            break
        after = max(rows)
        if synced:
            kept = await judge(ctx.pool, ctx.connection, ctx.entity, rows, ctx.scope)
        else:
            kept = dict.fromkeys(rows, False)
        leaving = [i for i, keep in kept.items() if not keep]
        if leaving:
            applied = await ctx.leave(leaving)
            left += applied.outcomes.get("out_of_scope", 0)
        await ctx.page_done(rows=len(rows))
    ctx.detail["left"] = left


__all__ = ["narrow", "reconcile"]
