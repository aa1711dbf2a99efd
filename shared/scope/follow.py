"""Children follow their parent across the scope's boundary.

Contacts, configuration items and contracts are in scope while their company is, ticket notes
while their ticket is (:class:`~shared.entities.FollowsParent`). When the parent's boundary is
restricted (:mod:`shared.scope.boundary`), a parent's move decides its children:

- a parent that **left** the mirror's live set (out of scope now) takes its live children with
  it: they are marked out of scope as the mirror holds them and their out-of-scope events
  published; no API call;
- a parent that **entered** it (created, or back in scope: a ticket moved into an included
  queue) brings the children Autotask already holds: they are read by parent id (``in``
  queries, one per 400 parents and child entity) and applied, judged like any other row.

The worker and the sweeps call :func:`follow` with what their write did. Reads that load the
children entity themselves (a first load, a scope reconciliation) pass ``read_entered=False``:
the children's own read brings them, so they are not read twice. Grandchildren follow their
parent the same way, recursively.

An unrestricted boundary needs none of this: every child is in scope whatever its parent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.autotask import AutotaskClient, F, Priority, Query
from shared.db import Pool, session
from shared.entities import REGISTRY, EntitySpec, FollowsParent
from shared.messages.change import Origin
from shared.mirror.store import Snapshot, live_children
from shared.mirror.writer import Applied, Mirror
from shared.scope.boundary import boundary
from shared.scope.membership import judge
from shared.scope.rules import SyncScope

PARENTS_PER_QUERY = 400
"""Parent ids in one ``in`` query of their children (Autotask allows 500 conditions)."""


@dataclass
class Followed:
    """What following a write did to the children, over every generation."""

    applied: Applied = field(default_factory=Applied)
    calls: int = 0
    entered: int = 0
    left: int = 0


@dataclass(frozen=True, slots=True)
class Family:
    """What a write of one entity's rows needs to make its children follow."""

    pool: Pool
    mirror: Mirror
    client: AutotaskClient
    connection: str
    scope: SyncScope
    priority: Priority


def children_of(parent: EntitySpec) -> list[EntitySpec]:
    """Registry entities judged by ``parent`` (FollowsParent), in registry order."""
    return [
        spec
        for spec in REGISTRY
        if isinstance(spec.scope, FollowsParent) and spec.scope.parent == parent.rest_name
    ]


async def follow(
    family: Family,
    parent: EntitySpec,
    applied: Applied,
    *,
    origin: Origin,
    read_entered: bool = True,
) -> Followed:
    """Make the children of the rows ``applied`` moved across the boundary follow them."""
    done = Followed()
    entered = sorted({c.id for c in applied.changes if c.outcome == "created"})
    left = sorted({c.id for c in applied.changes if c.outcome == "out_of_scope"})
    if not entered and not left:
        return done
    for child in children_of(parent):
        if not boundary(child, family.scope).restricted:
            continue
        rule = child.scope
        assert isinstance(rule, FollowsParent)
        if left:
            what = f"read the {child.rest_name} of parents that left"
            async with session(family.pool, what) as db:
                ids = await live_children(db, child, family.connection, rule.parent_id_field, left)
            marked = await family.mirror.apply_out_of_scope(
                family.connection, child, ids, origin=origin
            )
            done.left += len(marked.changes)
            await _next_generation(family, child, marked, done, origin, read_entered)
        if entered and read_entered:
            loaded = await _load_children(family, child, rule, entered, origin, done)
            await _next_generation(family, child, loaded, done, origin, read_entered)
    return done


async def _load_children(
    family: Family,
    child: EntitySpec,
    rule: FollowsParent,
    parents: Sequence[int],
    origin: Origin,
    done: Followed,
) -> Applied:
    loaded = Applied()
    for start in range(0, len(parents), PARENTS_PER_QUERY):
        batch = parents[start : start + PARENTS_PER_QUERY]
        query = Query.where(F(rule.parent_id_field).in_(batch)).limit(500)
        pages = family.client.query_pages(child.rest_name, query, priority=family.priority)
        while True:
            fetched_at = datetime.now(UTC)
            try:
                page = await anext(pages)
            except StopAsyncIteration:
                break
            done.calls += 1
            rows = {row["id"]: row for row in page.items if isinstance(row.get("id"), int)}
            if not rows:
                continue
            in_scope = await judge(family.pool, family.connection, child, rows, family.scope)
            snapshots = [
                Snapshot(id=i, entity=row, fetched_at=fetched_at, in_scope=in_scope[i])
                for i, row in rows.items()
            ]
            applied = await family.mirror.apply_snapshots(
                family.connection, child, snapshots, origin=origin
            )
            done.entered += sum(1 for c in applied.changes if c.outcome == "created")
            loaded.merge(applied)
    return loaded


async def _next_generation(
    family: Family,
    child: EntitySpec,
    applied: Applied,
    done: Followed,
    origin: Origin,
    read_entered: bool,
) -> None:
    done.applied.merge(applied)
    if not children_of(child):
        return
    deeper = await follow(family, child, applied, origin=origin, read_entered=read_entered)
    done.applied.merge(deeper.applied)
    done.calls += deeper.calls
    done.entered += deeper.entered
    done.left += deeper.left


__all__ = ["PARENTS_PER_QUERY", "Family", "Followed", "children_of", "follow"]
