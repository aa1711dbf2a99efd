"""A connection's rows across every table keyed by connection: seeding the state tables a sync
may leave, and counting what is there (the check a purge must pass)."""

from __future__ import annotations

from shared.db import DbSession

# One row per state table; ON CONFLICT: a sync may have written the row already.
_STATE_ROWS = [
    "INSERT INTO webhook_registrations (registration_id, connection, entity, secret_current, "
    "state) VALUES ('r-' || $1 || '-0123456789abcdef', $1, 'Tickets', '\\x00', 'retired')",
    "INSERT INTO sweep_watermarks (connection, entity, kind) VALUES ($1, 'Tickets', 'ids') "
    "ON CONFLICT DO NOTHING",
    "INSERT INTO sync_runs (connection, entity, mode) VALUES ($1, 'Tickets', 'incremental')",
    "INSERT INTO sweep_last_runs (connection, entity, mode, run_id, started_at, status) "
    "VALUES ($1, 'Tickets', 'ids', 1, now(), 'succeeded') ON CONFLICT DO NOTHING",
    "INSERT INTO callout_spool (connection, registration_id, topic, key, value) "
    "VALUES ($1, 'r-0123456789abcdef', 'autotask.callouts.v1', '\\x00', '\\x00')",
    "INSERT INTO spool_rejects (id, connection, registration_id, topic, key, value, "
    "received_at, reason) VALUES ((SELECT coalesce(max(id), 0) + 1 FROM spool_rejects), $1, "
    "'r-0123456789abcdef', 'autotask.callouts.v1', '\\x00', '\\x00', now(), 'too large')",
    "INSERT INTO unresolved_ids (connection, entity, id) VALUES ($1, 'Tickets', 424242)",
    "INSERT INTO mirror_rebuild (connection, entity, id) VALUES ($1, 'Tickets', 424242)",
    "INSERT INTO webhook_provisioning (connection) VALUES ($1) ON CONFLICT DO NOTHING",
    "INSERT INTO provisioner_owed_sweeps (connection, entity, reason) "
    "VALUES ($1, 'Tickets', 'created') ON CONFLICT DO NOTHING",
    "INSERT INTO psa_picklists (connection, entity, field, value, label) "
    "VALUES ($1, 'Tickets', 'status', '5', 'Complete') ON CONFLICT DO NOTHING",
    "INSERT INTO psa_udf_definitions (connection, entity, name, definition) "
    "VALUES ($1, 'Tickets', 'Region', '{}') ON CONFLICT DO NOTHING",
    "INSERT INTO api_slots (connection, endpoint, slot) VALUES ($1, 'Tickets', 1) "
    "ON CONFLICT DO NOTHING",
    "INSERT INTO api_budget (connection) VALUES ($1) ON CONFLICT DO NOTHING",
    "INSERT INTO api_calls (connection, minute) VALUES ($1, date_trunc('minute', now())) "
    "ON CONFLICT DO NOTHING",
    "INSERT INTO connection_health (connection) VALUES ($1) ON CONFLICT DO NOTHING",
    "INSERT INTO sync_scope_applied (connection, entity, scope) VALUES ($1, 'Tickets', '{}') "
    "ON CONFLICT DO NOTHING",
]

_KEYED_BY_CONNECTION = (
    "SELECT quote_ident(c.table_schema) || '.' || quote_ident(c.table_name) AS name "
    "FROM information_schema.columns c JOIN information_schema.tables t "
    "USING (table_schema, table_name) "
    "WHERE c.column_name = 'connection' AND t.table_type = 'BASE TABLE' "
    "AND c.table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
)


async def seed_state_rows(db: DbSession, connection: str) -> None:
    """A row of ``connection`` in every state table the migrations create (at least one)."""
    for statement in _STATE_ROWS:
        await db.execute(statement, connection)


async def rows_by_table(db: DbSession, connection: str) -> dict[str, int]:
    """``connection``'s rows in every table of the database with a ``connection`` column,
    whichever migration made it (zero included), and its ``connections`` row."""
    counts = {}
    for record in await db.fetch(_KEYED_BY_CONNECTION):
        table = record["name"]
        query = f"SELECT count(*) FROM {table} WHERE connection = $1"  # noqa: S608 - catalogue names
        counts[table] = await db.fetchval(query, connection)
    counts["public.connections"] = await db.fetchval(
        "SELECT count(*) FROM connections WHERE name = $1", connection
    )
    return counts
