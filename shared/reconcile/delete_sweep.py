"""Delete detection: the delete logs, the id sweep, and rows a complete read did not return.

- **Delete logs** (incremental by ``deletedDateTime``, one watermark per log):
  ``DeletedTicketLogs`` names deleted tickets, which are marked deleted as the log says. Ticket
  notes have no log of their own: ``DeletedTicketActivityLogs`` (a note, attachment or time
  entry deleted from a ticket) and ``DeletedTicketLogs`` (the ticket went, its notes with it)
  name *tickets*, so their notes in the mirror are confirmed with an ``in`` query and those not
  returned are deleted.
- **Id sweep** for entities without a log: every id (``IncludeFields: ["id"]``, paged by id);
  any failure aborts the whole sweep; mirror ids not returned are candidates, checked by the
  mass-delete guard, confirmed with an ``in`` query, then deleted.
- **Unseen rows** of a resync or full sweep: the same guard and confirmation.

The decisions are :mod:`shared.reconcile.delete_guard` (pure); this module reads and applies.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.autotask import F, Query, parse_timestamp
from shared.db import guarded, session
from shared.entities import EntitySpec, by_rest_name
from shared.logging import get_logger
from shared.metrics import SWEEP_MASS_DELETE_REFUSED
from shared.mirror.store import live_ids
from shared.reconcile import delete_guard, watermarks
from shared.reconcile.context import MassDeleteRefused, SweepContext

log = get_logger(__name__)

FIRST_LOOKBACK = timedelta(days=30)
"""How far back a delete log is read the first time, when no backfill gave a starting point."""


@dataclass(frozen=True, slots=True)
class DeleteLog:
    """A log that names deleted rows of an entity (``parent`` False) or their parents."""

    name: str
    id_field: str
    parent: bool


def delete_logs(spec: EntitySpec) -> list[DeleteLog]:
    """The logs that tell about deletes of ``spec``."""
    logs = []
    if spec.delete_log and spec.delete_log_id_field:
        logs.append(DeleteLog(spec.delete_log, spec.delete_log_id_field, parent=False))
    if spec.child_of is not None:
        parent = by_rest_name(spec.child_of.parent)
        # The activity log's typeID values are undocumented (autotask-api.md §6): every row
        # names a parent whose mirrored children are then confirmed.
        if parent.activity_delete_log and parent.activity_delete_log_id_field:
            logs.append(
                DeleteLog(
                    parent.activity_delete_log, parent.activity_delete_log_id_field, parent=True
                )
            )
        if parent.delete_log and parent.delete_log_id_field:
            logs.append(DeleteLog(parent.delete_log, parent.delete_log_id_field, parent=True))
    return logs


# --- delete logs ----------------------------------------------------------------------------
async def read_delete_logs(ctx: SweepContext) -> None:
    for entry in delete_logs(ctx.entity):
        await _read_log(ctx, entry)


async def _read_log(ctx: SweepContext, entry: DeleteLog) -> None:
    kind = watermarks.delete_log_kind(entry.name)
    async with session(ctx.pool, f"read the watermark of {entry.name}") as db:
        state = await watermarks.read(db, ctx.connection, ctx.entity.rest_name, kind)
    walk_started = datetime.now(UTC)
    low = (state.watermark or walk_started - FIRST_LOOKBACK) - ctx.policy.overlap
    query = Query.where(F("deletedDateTime").gte(low)).limit(ctx.policy.page_size)
    highest: datetime | None = None
    named = 0
    async for page, started in ctx.pages(query, entity=entry.name):
        ids: set[int] = set()
        stamps: list[datetime] = []
        for row in page.items:
            value = row.get(entry.id_field)
            if isinstance(value, int) and not isinstance(value, bool):
                ids.add(value)
            stamp = _stamp(row.get("deletedDateTime"))
            if stamp is not None:
                stamps.append(stamp)
        at = max(stamps) if stamps else started
        named += len(ids)
        if entry.parent:
            await _children_of(ctx, ids, at=at)
        elif ids:
            await ctx.delete(ids, at=at, source="delete_log")
        if stamps:
            highest = max(highest, at) if highest else at
    if highest is not None:
        async with session(ctx.pool, f"advance the watermark of {entry.name}") as db:
            await watermarks.advance(
                db, ctx.connection, ctx.entity.rest_name, kind, min(highest, walk_started)
            )
    ctx.detail[entry.name] = named


async def _children_of(ctx: SweepContext, parents: Collection[int], *, at: datetime) -> None:
    """Delete the mirror's rows of ``ctx.entity`` under ``parents`` that Autotask no longer
    returns (their parent lost activities, or went)."""
    if not parents or ctx.entity.child_of is None:
        return
    field = ctx.entity.child_of.parent_id_field
    async with session(ctx.pool, f"read the {ctx.entity.rest_name} of deleted parents") as db:
        records = await guarded(
            db.fetch(
                f"SELECT id FROM {ctx.entity.mirror_table} WHERE connection = $1 "  # noqa: S608 - registry names
                "AND autotask_sync_bigint(entity ->> $2) = ANY($3::bigint[]) "
                "AND deleted_at IS NULL AND out_of_scope_at IS NULL",
                ctx.connection,
                field,
                sorted(parents),
            ),
            f"read the {ctx.entity.rest_name} of deleted parents",
        )
    mirrored = [record["id"] for record in records]
    if not mirrored:
        return
    started = datetime.now(UTC)
    present = await ctx.fetch(mirrored, include_fields=["id"])
    gone = delete_guard.confirmed(candidates=mirrored, still_there=present)
    if gone:
        await ctx.delete(gone, at=max(at, started), source="delete_log")


def _stamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


# --- the id sweep ---------------------------------------------------------------------------
async def id_sweep(ctx: SweepContext) -> None:
    """Every id of the entity; delete (guarded, confirmed) the mirror's rows not among them.

    An exception on any page propagates before anything is deleted: a partial read proves
    nothing.
    """
    seen: set[int] = set()
    ctx.progress.started(what="every id", total=None)
    query = Query.all().include("id").limit(ctx.policy.page_size)
    async for page, _started in ctx.pages(query):
        seen.update(i for row in page.items if isinstance(i := row.get("id"), int))
        await ctx.page_done(rows=len(page.items))
    async with session(ctx.pool, f"read the mirror's {ctx.entity.rest_name} ids") as db:
        live = await live_ids(db, ctx.entity, ctx.connection)
    ctx.detail["ids_seen"] = len(seen)
    await delete_missing(
        ctx, live=len(live), candidates=delete_guard.candidates(live=live, seen=seen)
    )


async def delete_missing(ctx: SweepContext, *, live: int, candidates: Collection[int]) -> None:
    """Guard, confirm and delete ``candidates`` (mirror rows a complete read did not return)."""
    ctx.detail["candidates"] = len(candidates)
    refusal = delete_guard.check(
        complete=True,
        live=live,
        candidates=len(candidates),
        policy=ctx.policy.deletes,
        what=f"{ctx.entity.rest_name} rows",
    )
    if refusal is not None:
        SWEEP_MASS_DELETE_REFUSED.labels(ctx.connection, ctx.entity.rest_name).inc()
        ctx.detail.update(refused=refusal.reason, live=live, share=round(refusal.share, 4))
        log.error(
            "mass delete refused",
            connection=ctx.connection,
            entity=ctx.entity.rest_name,
            mode=ctx.mode,
            candidates=refusal.candidates,
            live=refusal.live,
            share=round(refusal.share, 4),
            allowed=ctx.policy.deletes.max_share,
        )
        raise MassDeleteRefused(refusal.reason)
    if not candidates:
        return
    started = datetime.now(UTC)
    present = await ctx.fetch(candidates, include_fields=["id"])
    gone = delete_guard.confirmed(candidates=candidates, still_there=present)
    ctx.detail["confirmed_gone"] = len(gone)
    if gone:
        await ctx.delete(gone, at=started, source="id_sweep")


__all__ = ["DeleteLog", "delete_logs", "delete_missing", "id_sweep"]
