"""Which fetched entities are inside their connection's sync scope (the worker and the sweeps
apply the same rule).

Tickets and companies are judged on their own fields (:mod:`shared.scope.rules`). Contacts,
configuration items and contracts follow their company, ticket notes their ticket: when the
parent's scope is restricted, the parent must be live in the mirror. A parent not mirrored yet
(created in the same moment) makes the child wait for the next sweep rather than enter
unfiltered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from shared.db.pool import guarded
from shared.entities import (
    COMPANIES,
    CONFIGURATION_ITEMS,
    CONTACTS,
    CONTRACTS,
    TICKET_NOTES,
    TICKETS,
    EntitySpec,
)
from shared.scope.rules import SyncScope

# child entity -> (parent entity, the child's field holding the parent id)
_FOLLOWS: dict[str, tuple[EntitySpec, str]] = {
    CONTACTS.rest_name: (COMPANIES, "companyID"),
    CONFIGURATION_ITEMS.rest_name: (COMPANIES, "companyID"),
    CONTRACTS.rest_name: (COMPANIES, "companyID"),
    TICKET_NOTES.rest_name: (TICKETS, "ticketID"),
}


async def judge(
    pool: asyncpg.Pool,
    connection: str,
    entity: EntitySpec,
    rows: Mapping[int, Mapping[str, Any]],
    scope: SyncScope,
) -> dict[int, bool]:
    """``id -> in scope`` for ``rows`` of ``entity``."""
    if entity.rest_name == TICKETS.rest_name:
        return {i: scope.tickets.admits(row) for i, row in rows.items()}
    if entity.rest_name == COMPANIES.rest_name:
        return {i: scope.companies.admits(row) for i, row in rows.items()}
    follows = _FOLLOWS.get(entity.rest_name)
    if follows is None:
        return dict.fromkeys(rows, True)
    parent, field_name = follows
    restricted = scope.tickets.restricted if parent is TICKETS else scope.companies.restricted
    if not restricted:
        return dict.fromkeys(rows, True)
    parent_ids = {parent_id for row in rows.values() if (parent_id := _as_int(row.get(field_name)))}
    async with pool.acquire() as db:
        records = await guarded(
            db.fetch(
                f"SELECT id FROM {parent.table} WHERE connection = $1 "  # noqa: S608 - registry name
                "AND id = ANY($2::bigint[]) AND deleted_at IS NULL AND out_of_scope_at IS NULL",
                connection,
                sorted(parent_ids),
            ),
            f"read which {parent.rest_name} are in scope",
        )
    live = {record["id"] for record in records}
    return {i: _as_int(row.get(field_name)) in live for i, row in rows.items()}


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


__all__ = ["judge"]
