"""Ids a fetch did not return: recorded for the sweep, never treated as deleted.

Autotask sometimes does not return an entity a callout just announced (read-after-write lag, or
the API user may not see it). The worker retries, then records the id here; the next sweep of the
entity reads it again and clears it (architecture.md rule 5: absence is not deletion).
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.db.pool import DbSession, guarded


async def record(
    db: DbSession, connection: str, entity: str, ids: Iterable[int], *, reason: str
) -> None:
    """Remember ``ids`` (again: the attempt count grows)."""
    wanted = sorted(set(ids))
    if not wanted:
        return
    await guarded(
        db.execute(
            "INSERT INTO unresolved_ids (connection, entity, id, reason) "
            "SELECT $1, $2, unnest($3::bigint[]), $4 "
            "ON CONFLICT (connection, entity, id) DO UPDATE SET "
            "attempts = unresolved_ids.attempts + 1, last_tried = now(), reason = excluded.reason",
            connection,
            entity,
            wanted,
            reason,
        ),
        f"record {len(wanted)} unresolved {entity} ids",
    )


async def pending(db: DbSession, connection: str, entity: str, *, limit: int = 5_000) -> list[int]:
    """The unresolved ids of one connection and entity, oldest first."""
    rows = await guarded(
        db.fetch(
            "SELECT id FROM unresolved_ids WHERE connection = $1 AND entity = $2 "
            "ORDER BY first_seen, id LIMIT $3",
            connection,
            entity,
            limit,
        ),
        f"read the unresolved {entity} ids",
    )
    return [row["id"] for row in rows]


async def resolve(db: DbSession, connection: str, entity: str, ids: Iterable[int]) -> int:
    """Forget ``ids`` (a sweep read them, or confirmed them deleted); returns how many."""
    wanted = sorted(set(ids))
    if not wanted:
        return 0
    status = await guarded(
        db.execute(
            "DELETE FROM unresolved_ids WHERE connection = $1 AND entity = $2 "
            "AND id = ANY($3::bigint[])",
            connection,
            entity,
            wanted,
        ),
        f"clear {len(wanted)} unresolved {entity} ids",
    )
    return int(str(status).rsplit(" ", 1)[-1])


async def count(db: DbSession, connection: str | None = None) -> dict[tuple[str, str], int]:
    """Unresolved ids per (connection, entity)."""
    rows = await guarded(
        db.fetch(
            "SELECT connection, entity, count(*) AS n FROM unresolved_ids "
            "WHERE $1::text IS NULL OR connection = $1 GROUP BY 1, 2",
            connection,
        ),
        "count the unresolved ids",
    )
    return {(row["connection"], row["entity"]): row["n"] for row in rows}


__all__ = ["count", "pending", "record", "resolve"]
