"""Purging a connection: everything PostgreSQL keeps for it, and its records downstream.

Offboarding a tenant, or answering a data-deletion request, means forgetting what the sync kept
for the connection. :func:`purge` first disables the connection (running processes stop syncing
it within seconds), then deletes

- the mirror rows of every entity, each only once a tombstone for its key is on the entity's
  change topic: the key of its change events, a null value, ``ce_type
  autotask.<entity>.tombstone`` and ``ce_reason`` ``purged``, so compacted topics drop the key
  and sinks delete the record (docs/consumers.md);
- the rows of every other table the migrations create with a ``connection`` column (sync runs,
  watermarks, unresolved ids, webhook registrations, the API budget, the spool, the scope
  applied, PSA metadata...), found in ``information_schema``: a table a later migration adds is
  purged with no change here;
- the connection's row, last.

Run again after an interruption, it finishes the job. A batch's tombstones are acknowledged
before its rows are deleted, so a row still there always gets its tombstone (a second run
publishes again those of the batch it was cut in, with the same ``ce_id``, which consumers
deduplicate), and the disabled connection row stays until everything else is gone. With the row
gone the data alone is enough to go on: :func:`leftovers` finds it. A row is deleted only if
it did not change since its tombstone was built; one a late writer changed gets a new tombstone
after that change.

Batches of :data:`BATCH` rows (one read, one produce, one delete each) keep memory and
transactions small for a tenant with millions of rows.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.connections import store as rows
from shared.db import DbSession, Pool, discover, guarded, session
from shared.entities import MIRROR_SCHEMA, REGISTRY, EntitySpec
from shared.kafka import OutgoingMessage, produce_many
from shared.kafka.producer import AnyProducer
from shared.messages.change import ChangeEvent, ValueFormat, tombstone
from shared.messages.topics import Topics

BATCH = 1000
"""Rows per read, produce and delete."""
PURGED = b"purged"
"""``ce_reason`` of a purged record's tombstone."""

# {table} is a name from the registry or from PostgreSQL's own catalogue (state_tables), never
# input.
_COUNT = "SELECT count(*) FROM {table} WHERE connection = $1"
_KEYS = "SELECT id, change_seq FROM {table} WHERE connection = $1 ORDER BY id LIMIT $2"
_DELETE_UNCHANGED = (
    "DELETE FROM {table} m USING unnest($2::bigint[], $3::bigint[]) AS k(id, change_seq) "
    "WHERE m.connection = $1 AND m.id = k.id AND m.change_seq = k.change_seq"
)
_DELETE_BATCH = (
    "DELETE FROM {table} WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM {table} WHERE connection = $1 LIMIT $2))"
)
_KEYED_BY_CONNECTION = (
    "SELECT c.table_schema AS schema, c.table_name AS name, CASE WHEN c.table_schema = "
    "current_schema() THEN quote_ident(c.table_name) ELSE quote_ident(c.table_schema) || '.' "
    "|| quote_ident(c.table_name) END AS qualified "
    "FROM information_schema.columns c JOIN information_schema.tables t "
    "USING (table_schema, table_name) "
    "WHERE c.column_name = 'connection' AND t.table_type = 'BASE TABLE' "
    "AND c.table_schema IN (current_schema(), $1) ORDER BY c.table_name"
)
_CREATED_TABLE = re.compile(
    r"\bCREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:\w+\.)?(\w+)", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class TableRows:
    """A connection's rows in one table (as SQL names it) and, for a mirror table, the
    tombstones published for them on its change topic."""

    table: str
    rows: int
    topic: str | None = None
    tombstones: int = 0


@dataclass(frozen=True, slots=True)
class Leftovers:
    """What PostgreSQL holds for a connection besides its row: the tables that have rows."""

    mirror: list[TableRows]
    state: list[TableRows]

    @property
    def mirror_rows(self) -> int:
        return sum(table.rows for table in self.mirror)

    @property
    def state_rows(self) -> int:
        return sum(table.rows for table in self.state)

    def __bool__(self) -> bool:
        return bool(self.mirror or self.state)


async def leftovers(db: DbSession, connection: str) -> Leftovers:
    """The rows ``connection`` has in the mirror and in the state tables."""
    counted: dict[str, int] = {}
    for table in [spec.mirror_table for spec in REGISTRY] + await state_tables(db):
        counted[table] = int(
            await guarded(
                db.fetchval(_COUNT.format(table=table), connection),
                f"count the {table} rows of {connection!r}",
            )
        )
    mirror = {spec.mirror_table for spec in REGISTRY}
    return Leftovers(
        mirror=[TableRows(t, n) for t, n in counted.items() if n and t in mirror],
        state=[TableRows(t, n) for t, n in counted.items() if n and t not in mirror],
    )


async def state_tables(db: DbSession) -> list[str]:
    """Every table the migrations create with a ``connection`` column, the mirror tables
    aside, as SQL names it. Only the project's own tables: a database shared with another
    application keeps that application's rows."""
    created = {name.lower() for m in discover() for name in _CREATED_TABLE.findall(m.sql)}
    found = await guarded(
        db.fetch(_KEYED_BY_CONNECTION, MIRROR_SCHEMA), "find the tables keyed by connection"
    )
    mirror = {spec.table for spec in REGISTRY}
    return [
        row["qualified"]
        for row in found
        if row["name"] in created and not (row["schema"] == MIRROR_SCHEMA and row["name"] in mirror)
    ]


async def purge(
    pool: Pool,
    producer: AnyProducer,
    topics: Topics,
    connection: str,
    *,
    value_format: ValueFormat = "json",
    batch: int = BATCH,
) -> AsyncIterator[TableRows]:
    """Purge ``connection`` (see the module docstring), yielding each table once it is done:
    the mirror tables with their tombstones, the state tables, then ``connections``. Tables
    where nothing was left are not yielded."""
    async with session(pool, f"disable connection {connection!r}") as db:
        await rows.update(db, connection, enabled=False)
        tables = await state_tables(db)
    for spec in REGISTRY:
        mirrored = await _purge_mirror(
            pool, producer, topics, spec, connection, value_format, batch
        )
        if mirrored.tombstones:
            yield mirrored
    for table in tables:
        state = await _purge_state(pool, table, connection, batch)
        if state.rows:
            yield state
    async with session(pool, f"remove connection {connection!r}") as db:
        if await rows.delete(db, connection):
            yield TableRows("connections", 1)


async def _purge_mirror(
    pool: Pool,
    producer: AnyProducer,
    topics: Topics,
    spec: EntitySpec,
    connection: str,
    value_format: ValueFormat,
    batch: int,
) -> TableRows:
    """Tombstone, then delete, ``connection``'s rows of one mirror table, a batch at a time."""
    topic = topics.changes(spec)
    deleted = published = 0
    while True:
        async with session(pool, f"read the {spec.table} rows of {connection!r}") as db:
            keys = await db.fetch(_KEYS.format(table=spec.mirror_table), connection, batch)
        if not keys:
            return TableRows(spec.mirror_table, deleted, topic=topic, tombstones=published)
        at = datetime.now(UTC)
        await produce_many(
            producer,
            topic,
            [
                _tombstone(spec, connection, k["id"], k["change_seq"], at, value_format)
                for k in keys
            ],
        )
        published += len(keys)
        async with session(pool, f"delete the {spec.table} rows of {connection!r}") as db:
            status = await db.execute(
                _DELETE_UNCHANGED.format(table=spec.mirror_table),
                connection,
                [k["id"] for k in keys],
                [k["change_seq"] for k in keys],
            )
        deleted += _affected(status)


async def _purge_state(pool: Pool, table: str, connection: str, batch: int) -> TableRows:
    """Delete ``connection``'s rows of one state table, a batch per statement."""
    deleted = 0
    while True:
        async with session(pool, f"delete the {table} rows of {connection!r}") as db:
            status = await db.execute(_DELETE_BATCH.format(table=table), connection, batch)
        if not _affected(status):
            return TableRows(table, deleted)
        deleted += _affected(status)


def _tombstone(
    spec: EntitySpec,
    connection: str,
    row_id: int,
    change_seq: int,
    at: datetime,
    value_format: ValueFormat,
) -> OutgoingMessage:
    """A purged record's tombstone: a removal's (its key, its CloudEvents context) whose
    ``ce_reason`` says ``purged``. It counts as the row's next change, so its ``ce_id`` differs
    from the key's earlier tombstones and stays the same when a purge is run again."""
    removal = ChangeEvent(
        connection=connection,
        entity=spec,
        id=row_id,
        op="d",
        before=None,
        after=None,
        version=None,
        origin="sweep",  # origin and version go in a value; a tombstone has none
        at=at,
        change_seq=change_seq + 1,
    )
    key, value, headers = tombstone(removal, value_format=value_format)
    return OutgoingMessage(
        key, value, [(name, PURGED if name == "ce_reason" else raw) for name, raw in headers]
    )


def _affected(status: str) -> int:
    """The row count of a command status such as ``DELETE 42``."""
    return int(status.rsplit(" ", 1)[-1])


__all__ = ["BATCH", "PURGED", "Leftovers", "TableRows", "leftovers", "purge", "state_tables"]
