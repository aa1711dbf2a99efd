"""The one monotonic upsert into the mirror tables, used by the worker and the reconciler alike.

Rules (architecture.md "Delivery semantics" 4 and 5):

- a snapshot is ordered by ``(version, fetched_at)``: the entity's last-modified value, then when
  it was read. A snapshot older than the stored one never overwrites it, so replays, redeliveries
  and races between the webhook path and sweeps are harmless; two writers of one row serialise on
  its row lock and the older one loses whoever commits first;
- an unchanged snapshot (same content hash) writes nothing and produces no change;
- a delete is soft (``deleted_at``) and idempotent. Deleting an id the mirror never had leaves a
  placeholder row, so a snapshot read before the delete that arrives after it cannot bring the
  entity back; only a snapshot read after the delete can (it exists again after all);
- an entity outside the connection's sync scope never enters the mirror; one that leaves it is
  kept with ``out_of_scope_at`` set and reported as removed (reason ``out_of_scope``); one that
  comes back is reported as created;
- every change a row publishes (created, updated, deleted, out of scope, back in scope) adds one
  to its ``change_seq`` in the same statement; unchanged and stale snapshots do not. The change
  events' ids are built from it (:mod:`shared.messages.change`), so a change redone after a
  rollback keeps its id and a row that changes back and forth gets a new one each time.

Each call is one statement (bulk, ``unnest`` of arrays) and returns, per input id, what happened
and the row before and after, which is what change events are built from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

import orjson

from shared.autotask import parse_timestamp
from shared.db.pool import DbSession, guarded
from shared.entities import EntitySpec
from shared.messages.change import Origin, Reason
from shared.records import normalize_record

Outcome = Literal[
    "created",  # a new row (or one back from deletion / out of scope)
    "updated",
    "unchanged",  # same content as stored
    "stale",  # older than stored: skipped
    "out_of_scope",  # left the sync scope now
    "out_of_scope_skipped",  # out of scope and not in the mirror: not stored
    "deleted",
    "already_deleted",
]
_NO_CONTENT = b""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An entity as read from Autotask at ``fetched_at`` (the start of the read)."""

    id: int
    entity: Mapping[str, Any]
    fetched_at: datetime
    in_scope: bool = True
    callout_sequence: int | None = None


@dataclass(frozen=True, slots=True)
class RowChange:
    """What one input id did to its row."""

    id: int
    outcome: Outcome
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    version: datetime | None = None
    callout_sequence: int | None = None
    change_seq: int = 0
    """The row's ``change_seq`` after this change (0 where the call wrote nothing)."""

    @property
    def op(self) -> Literal["c", "u", "d"] | None:
        """The change event this outcome publishes (None: nothing downstream needs)."""
        if self.outcome == "created":
            return "c"
        if self.outcome == "updated":
            return "u"
        if self.outcome in ("deleted", "out_of_scope") and self.before is not None:
            return "d"
        return None

    @property
    def reason(self) -> Reason | None:
        """Why a row left what downstream holds (for ``op`` ``d``)."""
        if self.outcome == "out_of_scope":
            return "out_of_scope"
        if self.outcome == "deleted":
            return "deleted"
        return None


def canonical_json(entity: Mapping[str, Any]) -> bytes:
    """Compact JSON with sorted keys: what is hashed and what is stored (jsonb ignores order).

    orjson: the upsert's own Python time was dominated by encoding (bench/bench_worker.py)."""
    return orjson.dumps(entity, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def content_hash(entity: Mapping[str, Any]) -> bytes:
    """sha256 of the canonical JSON of ``entity``."""
    return hashlib.sha256(canonical_json(entity)).digest()


def version_of(spec: EntitySpec, entity: Mapping[str, Any]) -> datetime | None:
    """The entity's last-modified value, or None (no such field, or not a timestamp)."""
    if spec.last_modified_field is None:
        return None
    value = entity.get(spec.last_modified_field)
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def _latest_per_id(
    snapshots: Iterable[Snapshot], spec: EntitySpec
) -> list[tuple[Snapshot, datetime | None]]:
    """One snapshot per id (a statement may touch each row once): the newest, with its version."""
    best: dict[int, tuple[tuple[datetime | None, datetime], Snapshot]] = {}
    for snapshot in snapshots:
        rank = (version_of(spec, snapshot.entity), snapshot.fetched_at)
        current = best.get(snapshot.id)
        if current is None or _newer(rank, current[0]):
            best[snapshot.id] = (rank, snapshot)
    return [(snapshot, rank[0]) for rank, snapshot in best.values()]


def _newer(left: tuple[datetime | None, datetime], right: tuple[datetime | None, datetime]) -> bool:
    lv, rv = left[0], right[0]
    if lv != rv:
        if lv is None:
            return False
        if rv is None:
            return True
        return lv > rv
    return left[1] > right[1]


# Writers of the same rows are serialised by transaction-scoped advisory locks, one per
# (table, connection, id), taken first and in key order. Row locks would not do: they cover only
# rows that exist, and two batches inserting the same new ids in different orders deadlock.
# Holding the locks, the write's view of the old rows (its ``before``) cannot change under it.
_LOCK = (
    "SELECT count(pg_advisory_xact_lock(k)) "
    "FROM (SELECT k FROM unnest($1::bigint[]) AS k ORDER BY k) AS ordered"
)

_UPSERT = """
WITH input AS (
    SELECT i.id, i.entity::jsonb AS entity, i.version, i.fetched_at, i.content_hash,
           i.callout_sequence, i.in_scope
    FROM unnest($2::bigint[], $3::text[], $4::timestamptz[], $5::timestamptz[],
                $6::bytea[], $7::bigint[], $8::boolean[])
        AS i(id, entity, version, fetched_at, content_hash, callout_sequence, in_scope)
),
old AS (
    SELECT t.id, t.entity, t.content_hash, t.deleted_at, t.out_of_scope_at
    FROM {table} t JOIN input i ON t.connection = $1 AND t.id = i.id
),
written AS (
    INSERT INTO {table} AS t (connection, id, entity, version, fetched_at, content_hash, origin,
                              callout_sequence, out_of_scope_at, change_seq)
    SELECT $1, i.id, i.entity, i.version, i.fetched_at, i.content_hash, $9, i.callout_sequence,
           CASE WHEN i.in_scope THEN NULL ELSE now() END, 1
    FROM input i
    WHERE i.in_scope OR EXISTS (SELECT 1 FROM old o WHERE o.id = i.id)
    ON CONFLICT (connection, id) DO UPDATE SET
        entity = excluded.entity,
        version = excluded.version,
        fetched_at = excluded.fetched_at,
        content_hash = excluded.content_hash,
        origin = excluded.origin,
        callout_sequence = excluded.callout_sequence,
        synced_at = now(),
        deleted_at = NULL,
        out_of_scope_at = CASE WHEN excluded.out_of_scope_at IS NULL THEN NULL
                               ELSE COALESCE(t.out_of_scope_at, excluded.out_of_scope_at) END,
        -- Counted unless the row was and stays out of downstream's view (out of scope, or
        -- deleted and now read out of scope): the one written change that publishes nothing.
        change_seq = t.change_seq
            + CASE WHEN excluded.out_of_scope_at IS NULL
                        OR (t.deleted_at IS NULL AND t.out_of_scope_at IS NULL) THEN 1 ELSE 0 END
    WHERE (COALESCE(t.version, '-infinity'::timestamptz), t.fetched_at)
              < (COALESCE(excluded.version, '-infinity'::timestamptz), excluded.fetched_at)
      AND (t.deleted_at IS NULL OR excluded.fetched_at > t.deleted_at)
      AND (t.content_hash IS DISTINCT FROM excluded.content_hash
           OR t.deleted_at IS NOT NULL
           OR (t.out_of_scope_at IS NULL) <> (excluded.out_of_scope_at IS NULL))
    RETURNING t.id, t.change_seq
)
-- ``before`` is read only where a change event needs it: a row that existed and was written.
SELECT i.id, w.id IS NOT NULL AS written, o.id IS NOT NULL AS existed, w.change_seq,
       CASE WHEN w.id IS NOT NULL THEN o.entity END AS before,
       o.content_hash = i.content_hash AS same,
       o.deleted_at IS NOT NULL AS was_deleted, o.out_of_scope_at IS NOT NULL AS was_out
FROM input i LEFT JOIN written w ON w.id = i.id LEFT JOIN old o ON o.id = i.id
"""


async def upsert(
    db: DbSession,
    spec: EntitySpec,
    connection: str,
    snapshots: Sequence[Snapshot],
    *,
    origin: Origin,
) -> list[RowChange]:
    """Write ``snapshots`` monotonically; returns what each id did (see the module docstring)."""
    # One timestamp form for the stored JSON, its hash and the events (shared/records.py).
    snapshots = [replace(s, entity=normalize_record(spec, s.entity)) for s in snapshots]
    newest = _latest_per_id(snapshots, spec)
    if not newest:
        return []
    latest = [snapshot for snapshot, _version in newest]
    versions = [version for _snapshot, version in newest]
    encoded = [canonical_json(s.entity) for s in latest]
    records = await guarded(
        _locked(
            db,
            _lock_keys(spec, connection, [s.id for s in latest]),
            _UPSERT.format(table=spec.mirror_table),
            connection,
            [s.id for s in latest],
            [text.decode() for text in encoded],
            versions,
            [s.fetched_at for s in latest],
            [hashlib.sha256(text).digest() for text in encoded],
            [s.callout_sequence for s in latest],
            [s.in_scope for s in latest],
            origin,
        ),
        f"write {len(latest)} {spec.rest_name} to the mirror",
    )
    by_id = {s.id: (s, v) for s, v in zip(latest, versions, strict=True)}
    changes = []
    for record in records:
        snapshot, version = by_id[record["id"]]
        changes.append(_classify(record, snapshot, version))
    return changes


def _classify(record: Mapping[str, Any], snapshot: Snapshot, version: datetime | None) -> RowChange:
    before = record["before"]
    common: dict[str, Any] = {
        "id": snapshot.id,
        "version": version,
        "callout_sequence": snapshot.callout_sequence,
        "change_seq": record["change_seq"] or 0,
    }
    was_visible = record["existed"] and not record["was_deleted"] and not record["was_out"]
    if not record["written"]:
        if not record["existed"]:
            return RowChange(outcome="out_of_scope_skipped", **common)
        outcome: Outcome = "unchanged" if record["same"] else "stale"
        return RowChange(outcome=outcome, **common)
    after = dict(snapshot.entity)
    if not snapshot.in_scope:
        if was_visible:
            return RowChange(outcome="out_of_scope", before=before, **common)
        return RowChange(outcome="unchanged", before=before, after=after, **common)
    if was_visible:
        return RowChange(outcome="updated", before=before, after=after, **common)
    return RowChange(outcome="created", after=after, **common)


_DELETE = """
WITH input AS (SELECT DISTINCT unnest($2::bigint[]) AS id),
old AS (
    SELECT t.id, t.entity, t.deleted_at, t.out_of_scope_at
    FROM {table} t JOIN input i ON t.connection = $1 AND t.id = i.id
),
marked AS (
    UPDATE {table} t SET deleted_at = $3, origin = $4, synced_at = now(),
        -- A row out of scope was already removed downstream: its delete publishes nothing.
        change_seq = t.change_seq + CASE WHEN t.out_of_scope_at IS NULL THEN 1 ELSE 0 END
    FROM input i
    WHERE t.connection = $1 AND t.id = i.id AND t.deleted_at IS NULL
    RETURNING t.id, t.change_seq
),
placeholders AS (
    INSERT INTO {table} (connection, id, entity, version, fetched_at, content_hash, origin,
                         deleted_at)
    SELECT $1, i.id, jsonb_build_object('id', i.id), NULL, $3, $5, $4, $3
    FROM input i WHERE NOT EXISTS (SELECT 1 FROM old o WHERE o.id = i.id)
    ON CONFLICT (connection, id) DO NOTHING
    RETURNING id
)
SELECT i.id, o.entity AS before, m.id IS NOT NULL AS marked, m.change_seq,
       o.out_of_scope_at IS NOT NULL AS was_out
FROM input i LEFT JOIN old o ON o.id = i.id LEFT JOIN marked m ON m.id = i.id
"""


async def mark_deleted(
    db: DbSession,
    spec: EntitySpec,
    connection: str,
    ids: Iterable[int],
    *,
    at: datetime,
    origin: Origin,
) -> list[RowChange]:
    """Soft-delete ``ids`` as of ``at``; idempotent. Only a row visible downstream until now
    reports ``deleted`` with its last state (its change event); the rest ``already_deleted``."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    records = await guarded(
        _locked(
            db,
            _lock_keys(spec, connection, wanted),
            _DELETE.format(table=spec.mirror_table),
            connection,
            wanted,
            at,
            origin,
            _NO_CONTENT,
        ),
        f"mark {len(wanted)} {spec.rest_name} deleted",
    )
    changes = []
    for record in records:
        visible = record["marked"] and record["before"] is not None and not record["was_out"]
        changes.append(
            RowChange(
                id=record["id"],
                outcome="deleted" if visible else "already_deleted",
                before=record["before"] if visible else None,
                change_seq=record["change_seq"] or 0,
            )
        )
    return changes


_OUT_OF_SCOPE = """
WITH input AS (SELECT DISTINCT unnest($2::bigint[]) AS id)
UPDATE {table} t SET out_of_scope_at = now(), origin = $3, synced_at = now(),
    change_seq = t.change_seq + 1
FROM input i
WHERE t.connection = $1 AND t.id = i.id AND t.deleted_at IS NULL AND t.out_of_scope_at IS NULL
RETURNING t.id, t.entity AS before, t.version, t.change_seq
"""


async def mark_out_of_scope(
    db: DbSession, spec: EntitySpec, connection: str, ids: Iterable[int], *, origin: Origin
) -> list[RowChange]:
    """Mark the live rows among ``ids`` as outside the sync scope, as the mirror holds them (a
    scope that narrowed, a parent that left): each reports ``out_of_scope`` with its last
    state; ids not live are left alone and not reported."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    records = await guarded(
        _locked(
            db,
            _lock_keys(spec, connection, wanted),
            _OUT_OF_SCOPE.format(table=spec.mirror_table),
            connection,
            wanted,
            origin,
        ),
        f"mark {len(wanted)} {spec.rest_name} out of scope",
    )
    return [
        RowChange(
            id=record["id"],
            outcome="out_of_scope",
            before=record["before"],
            version=record["version"],
            change_seq=record["change_seq"],
        )
        for record in records
    ]


async def live_children(
    db: DbSession, spec: EntitySpec, connection: str, parent_field: str, parents: Iterable[int]
) -> list[int]:
    """Ids of the live rows of ``spec`` whose ``parent_field`` is one of ``parents``."""
    wanted = sorted(set(parents))
    if not wanted:
        return []
    records = await guarded(
        db.fetch(
            f"SELECT id FROM {spec.mirror_table} WHERE connection = $1 "  # noqa: S608 - registry names
            "AND autotask_sync_bigint(entity ->> $2) = ANY($3::bigint[]) "
            "AND deleted_at IS NULL AND out_of_scope_at IS NULL ORDER BY id",
            connection,
            parent_field,
            wanted,
        ),
        f"read the {spec.rest_name} of {len(wanted)} parents",
    )
    return [record["id"] for record in records]


async def live_orphans(
    db: DbSession, spec: EntitySpec, connection: str, parent: EntitySpec, parent_field: str
) -> list[int]:
    """Ids of the live rows of ``spec`` whose parent (``parent_field``, a row of ``parent``)
    is not live in the mirror: deleted, out of scope, never mirrored, or none."""
    records = await guarded(
        db.fetch(
            f"SELECT c.id FROM {spec.mirror_table} c WHERE c.connection = $1 "  # noqa: S608 - registry names
            "AND c.deleted_at IS NULL AND c.out_of_scope_at IS NULL AND NOT EXISTS ("
            f"SELECT 1 FROM {parent.mirror_table} p WHERE p.connection = $1 "
            "AND p.id = autotask_sync_bigint(c.entity ->> $2) "
            "AND p.deleted_at IS NULL AND p.out_of_scope_at IS NULL) ORDER BY c.id",
            connection,
            parent_field,
        ),
        f"read the {spec.rest_name} whose {parent.rest_name} is not mirrored",
    )
    return [record["id"] for record in records]


async def live_rows_after(
    db: DbSession, spec: EntitySpec, connection: str, after: int | None, limit: int
) -> dict[int, Any]:
    """``id -> entity`` of up to ``limit`` live rows with ids above ``after``, in id order (a
    walk over the mirror that never holds more than a page)."""
    records = await guarded(
        db.fetch(
            f"SELECT id, entity FROM {spec.mirror_table} WHERE connection = $1 "  # noqa: S608 - registry name
            "AND deleted_at IS NULL AND out_of_scope_at IS NULL "
            "AND ($2::bigint IS NULL OR id > $2) ORDER BY id LIMIT $3",
            connection,
            after,
            limit,
        ),
        f"read a page of the mirror's {spec.rest_name}",
    )
    return {record["id"]: record["entity"] for record in records}


def _lock_keys(spec: EntitySpec, connection: str, ids: Iterable[int]) -> list[int]:
    """64-bit advisory lock keys for rows (a collision only serialises two writers more)."""
    prefix = f"mirror|{spec.table}|{connection}|".encode()
    return sorted(
        {
            int.from_bytes(
                hashlib.blake2b(prefix + str(i).encode(), digest_size=8).digest(),
                "big",
                signed=True,
            )
            for i in ids
        }
    )


async def _locked(db: DbSession, keys: list[int], statement: str, *args: Any) -> list[Any]:
    async with db.transaction():
        await db.execute(_LOCK, keys)
        return list(await db.fetch(statement, *args))


async def live_ids(db: DbSession, spec: EntitySpec, connection: str) -> set[int]:
    """Ids of the rows neither deleted nor out of scope (what downstream holds)."""
    records = await guarded(
        db.fetch(
            f"SELECT id FROM {spec.mirror_table} WHERE connection = $1 "  # noqa: S608 - registry name
            "AND deleted_at IS NULL AND out_of_scope_at IS NULL",
            connection,
        ),
        f"read the {spec.rest_name} ids of the mirror",
    )
    return {record["id"] for record in records}


async def live_rows(db: DbSession, spec: EntitySpec, connection: str) -> dict[int, Any]:
    """``id -> entity`` of the live rows (for comparisons and reports; mind the size)."""
    records = await guarded(
        db.fetch(
            f"SELECT id, entity FROM {spec.mirror_table} WHERE connection = $1 "  # noqa: S608 - registry name
            "AND deleted_at IS NULL AND out_of_scope_at IS NULL",
            connection,
        ),
        f"read the {spec.rest_name} rows of the mirror",
    )
    return {record["id"]: record["entity"] for record in records}


__all__ = [
    "Outcome",
    "RowChange",
    "Snapshot",
    "content_hash",
    "live_children",
    "live_ids",
    "live_orphans",
    "live_rows",
    "live_rows_after",
    "mark_deleted",
    "mark_out_of_scope",
    "upsert",
    "version_of",
]
