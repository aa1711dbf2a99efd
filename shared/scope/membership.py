"""Which fetched entities are inside their connection's sync scope (the worker and the sweeps
apply the same rule).

Each registry entry says how it is judged (``EntitySpec.scope``):

- :class:`~shared.entities.OwnFields`: on its own fields, by a section of the scope
  (:mod:`shared.scope.rules`), e.g. tickets and companies;
- :class:`~shared.entities.FollowsParent`: by its parent, e.g. contacts by their company, ticket
  notes by their ticket. When the parent's scope is restricted, the parent must be live in the
  mirror; a parent not mirrored yet (created in the same moment) makes the child wait for the
  next sweep rather than enter unfiltered;
- :class:`~shared.entities.Unscoped`: every row is in scope.

An entity that cannot be classified (an unknown parent or scope section) is a ConfigError naming
it: letting its rows through would mirror what the scope keeps out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.db import Pool, session
from shared.entities import EntitySpec, FollowsParent, OwnFields, Unscoped, find_rest_name
from shared.errors import ConfigError
from shared.integers import parse_int
from shared.scope.rules import RowFilter, SyncScope


async def judge(
    pool: Pool,
    connection: str,
    entity: EntitySpec,
    rows: Mapping[int, Mapping[str, Any]],
    scope: SyncScope,
) -> dict[int, bool]:
    """``id -> in scope`` for ``rows`` of ``entity``; ConfigError when ``entity`` cannot be
    classified."""
    rule = entity.scope
    if isinstance(rule, OwnFields):
        row_filter = _own_filter(entity, rule, scope)
        return {i: row_filter.admits(row) for i, row in rows.items()}
    deciding = deciding_filter(entity, scope)
    if deciding is None or not deciding.restricted:
        return dict.fromkeys(rows, True)
    assert isinstance(rule, FollowsParent)  # deciding_filter returned a filter for no other rule
    parent = _parent(entity, rule)
    field_name = rule.parent_id_field
    # ``is not None``: id 0 is a real parent (Companies/0 is the tenant's own company).
    parent_ids = {
        parent_id
        for row in rows.values()
        if (parent_id := parse_int(row.get(field_name), minimum=0)) is not None
    }
    async with session(pool, f"read which {parent.rest_name} are in scope") as db:
        records = await db.fetch(
            f"SELECT id FROM {parent.mirror_table} WHERE connection = $1 "  # noqa: S608 - registry name
            "AND id = ANY($2::bigint[]) AND deleted_at IS NULL AND out_of_scope_at IS NULL",
            connection,
            sorted(parent_ids),
        )
    live = {record["id"] for record in records}
    return {i: parse_int(row.get(field_name), minimum=0) in live for i, row in rows.items()}


def deciding_filter(entity: EntitySpec, scope: SyncScope) -> RowFilter | None:
    """The scope section that decides rows of ``entity``: its own, or the one of the ancestor it
    follows; None when no section applies (every row is in scope). ConfigError when ``entity``
    (or an ancestor) cannot be classified."""
    seen: list[str] = []
    current = entity
    while True:
        if current.rest_name in seen:
            chain = " -> ".join([*seen, current.rest_name])
            raise _unclassified(entity, f"its scope parents form a cycle ({chain})")
        seen.append(current.rest_name)
        rule = current.scope
        if isinstance(rule, OwnFields):
            return _own_filter(entity, rule, scope)
        if isinstance(rule, Unscoped):
            return None
        if isinstance(rule, FollowsParent):
            current = _parent(entity, rule)
            continue
        raise _unclassified(
            entity,
            f"{current.rest_name}.scope is {rule!r}, not OwnFields, FollowsParent or Unscoped",
        )


def _own_filter(entity: EntitySpec, rule: OwnFields, scope: SyncScope) -> RowFilter:
    try:
        return scope.row_filter(rule.filter)
    except KeyError:
        sections = ", ".join(SyncScope.filter_sections())
        raise _unclassified(
            entity, f"the scope has no filter section {rule.filter!r} (it has {sections})"
        ) from None


def _parent(entity: EntitySpec, rule: FollowsParent) -> EntitySpec:
    parent = find_rest_name(rule.parent)
    if parent is None:
        raise _unclassified(entity, f"its scope parent {rule.parent!r} is not a registry entity")
    return parent


def _unclassified(entity: EntitySpec, why: str) -> ConfigError:
    return ConfigError(
        f"cannot judge {entity.rest_name} against the sync scope: {why}; fix its scope "
        "in the entity registry (shared/entities.py)"
    )


__all__ = ["deciding_filter", "judge"]
