"""Where each sweep got to (``sweep_watermarks``), per connection, entity and kind.

Kinds:

- ``incremental``: ``watermark`` is the last-modified high-water mark of the last complete walk
  (the next one reads ``>= watermark - overlap``). A walk in progress keeps its ``id_cursor``
  (rows are paged by id), its start and the highest stamp it made durable, so a crashed walk
  resumes where it stopped instead of starting over;
- ``delete_log:<LogEntity>``: ``watermark`` is the newest ``deletedDateTime`` processed;
- ``backfill``: a complete read (``walk_mode`` backfill, resync or full): ``id_cursor`` is the
  last id made durable, ``walk_started_at`` when the read began, ``completed_at`` when one last
  finished. A first load is owed while no complete read has ever finished.

Watermarks only move forward (``GREATEST``); a row is written only after the rows it accounts for
are durable, so a crash re-reads, it never skips.

A resync or full sweep also keeps the ids it has not seen yet (``mirror_rebuild``): filled with the
mirror's live ids when the read starts, emptied page by page, so what is left at the end (even
after a crash and a resume) is what Autotask did not return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.db.pool import DbSession, guarded
from shared.entities import EntitySpec

INCREMENTAL = "incremental"
BACKFILL = "backfill"


def delete_log_kind(log_entity: str) -> str:
    """The kind of the watermark of one delete log, e.g. ``delete_log:DeletedTicketLogs``."""
    return f"delete_log:{log_entity}"


@dataclass(frozen=True, slots=True)
class Watermark:
    """One row of ``sweep_watermarks`` (all None when there is none yet)."""

    watermark: datetime | None = None
    id_cursor: int | None = None
    walk_started_at: datetime | None = None
    walk_max: datetime | None = None
    walk_mode: str | None = None
    completed_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def walking(self) -> bool:
        """A walk started and did not finish (resume it)."""
        return self.walk_started_at is not None


async def read(db: DbSession, connection: str, entity: str, kind: str) -> Watermark:
    """The stored state, or an empty one."""
    record = await guarded(
        db.fetchrow(
            "SELECT watermark, id_cursor, walk_started_at, walk_max, walk_mode, completed_at, "
            "updated_at FROM sweep_watermarks WHERE connection = $1 AND entity = $2 AND kind = $3",
            connection,
            entity,
            kind,
        ),
        f"read the {kind} watermark of {entity}",
    )
    return Watermark(**dict(record)) if record is not None else Watermark()


async def read_all(db: DbSession, kind: str) -> dict[tuple[str, str], Watermark]:
    """Every row of one kind, by (connection, entity)."""
    records = await guarded(
        db.fetch(
            "SELECT connection, entity, watermark, id_cursor, walk_started_at, walk_max, "
            "walk_mode, completed_at, updated_at FROM sweep_watermarks WHERE kind = $1",
            kind,
        ),
        f"read the {kind} watermarks",
    )
    out = {}
    for record in records:
        values = dict(record)
        key = (values.pop("connection"), values.pop("entity"))
        out[key] = Watermark(**values)
    return out


async def advance(
    db: DbSession, connection: str, entity: str, kind: str, watermark: datetime
) -> None:
    """Move ``watermark`` forward to ``watermark`` (never back)."""
    await guarded(
        db.execute(
            "INSERT INTO sweep_watermarks (connection, entity, kind, watermark) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (connection, entity, kind) DO UPDATE SET "
            "watermark = GREATEST(sweep_watermarks.watermark, excluded.watermark), "
            "updated_at = now()",
            connection,
            entity,
            kind,
            watermark,
        ),
        f"advance the {kind} watermark of {entity}",
    )


async def start_walk(
    db: DbSession,
    connection: str,
    entity: str,
    kind: str,
    *,
    started_at: datetime,
    mode: str | None = None,
) -> None:
    """Begin a walk from the first id (a fresh complete read, or an incremental walk)."""
    await guarded(
        db.execute(
            "INSERT INTO sweep_watermarks (connection, entity, kind, walk_started_at, walk_mode) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (connection, entity, kind) DO UPDATE SET "
            "id_cursor = NULL, walk_started_at = excluded.walk_started_at, walk_max = NULL, "
            "walk_mode = excluded.walk_mode, updated_at = now()",
            connection,
            entity,
            kind,
            started_at,
            mode,
        ),
        f"start a {kind} walk of {entity}",
    )


async def walked(
    db: DbSession,
    connection: str,
    entity: str,
    kind: str,
    *,
    id_cursor: int,
    walk_max: datetime | None = None,
) -> None:
    """A page up to ``id_cursor`` is durable: resume after it."""
    await guarded(
        db.execute(
            "UPDATE sweep_watermarks SET id_cursor = $4, "
            "walk_max = CASE WHEN $5::timestamptz IS NULL THEN walk_max "
            "                ELSE GREATEST(walk_max, $5::timestamptz) END, updated_at = now() "
            "WHERE connection = $1 AND entity = $2 AND kind = $3",
            connection,
            entity,
            kind,
            id_cursor,
            walk_max,
        ),
        f"record the {kind} walk of {entity}",
    )


async def finish_walk(
    db: DbSession,
    connection: str,
    entity: str,
    kind: str,
    *,
    watermark: datetime | None = None,
    completed_at: datetime | None = None,
) -> None:
    """The walk is complete: forget its cursor; advance ``watermark`` and set ``completed_at``
    where given."""
    await guarded(
        db.execute(
            "UPDATE sweep_watermarks SET id_cursor = NULL, walk_started_at = NULL, "
            "walk_max = NULL, "
            "watermark = CASE WHEN $4::timestamptz IS NULL THEN watermark "
            "                 ELSE GREATEST(watermark, $4::timestamptz) END, "
            "completed_at = COALESCE($5, completed_at), updated_at = now() "
            "WHERE connection = $1 AND entity = $2 AND kind = $3",
            connection,
            entity,
            kind,
            watermark,
            completed_at,
        ),
        f"finish the {kind} walk of {entity}",
    )


async def mark_rebuild(db: DbSession, spec: EntitySpec, connection: str) -> int:
    """Note every live row of ``spec`` as not seen yet (dropping older marks); returns how
    many."""
    async with db.transaction():
        await clear_rebuild(db, spec, connection)
        status = await guarded(
            db.execute(
                f"INSERT INTO mirror_rebuild SELECT $1, $2, id FROM {spec.mirror_table} "  # noqa: S608 - registry name
                "WHERE connection = $1 AND deleted_at IS NULL AND out_of_scope_at IS NULL",
                connection,
                spec.rest_name,
            ),
            f"mark the {spec.rest_name} rows for rebuild",
        )
    return int(str(status).rsplit(" ", 1)[-1])


async def seen(db: DbSession, spec: EntitySpec, connection: str, ids: Sequence[int]) -> None:
    """A page returned ``ids``: they are not candidates any more."""
    await guarded(
        db.execute(
            "DELETE FROM mirror_rebuild WHERE connection = $1 AND entity = $2 "
            "AND id = ANY($3::bigint[])",
            connection,
            spec.rest_name,
            list(ids),
        ),
        f"note {len(ids)} {spec.rest_name} rows seen",
    )


async def unseen(db: DbSession, spec: EntitySpec, connection: str) -> list[int]:
    """Marked ids no page returned, still live in the mirror."""
    records = await guarded(
        db.fetch(
            f"SELECT r.id FROM mirror_rebuild r JOIN {spec.mirror_table} t "  # noqa: S608 - registry name
            "ON t.connection = r.connection AND t.id = r.id "
            "WHERE r.connection = $1 AND r.entity = $2 "
            "AND t.deleted_at IS NULL AND t.out_of_scope_at IS NULL ORDER BY r.id",
            connection,
            spec.rest_name,
        ),
        f"read the unseen {spec.rest_name} rows",
    )
    return [record["id"] for record in records]


async def clear_rebuild(db: DbSession, spec: EntitySpec, connection: str) -> None:
    await guarded(
        db.execute(
            "DELETE FROM mirror_rebuild WHERE connection = $1 AND entity = $2",
            connection,
            spec.rest_name,
        ),
        f"clear the rebuild marks of {spec.rest_name}",
    )


__all__ = [
    "BACKFILL",
    "INCREMENTAL",
    "Watermark",
    "advance",
    "clear_rebuild",
    "delete_log_kind",
    "finish_walk",
    "mark_rebuild",
    "read",
    "read_all",
    "seen",
    "start_walk",
    "unseen",
    "walked",
]
