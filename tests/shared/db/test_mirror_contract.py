"""The mirror as downstream readers get it (docs/consumers.md): the schema ``autotask``, read with
the role ``autotask_reader`` and nothing else, every table and column described, ``_live`` views
without deleted or out-of-scope rows, one type per meaning, UDFs keyed by name."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from shared.db import apply_migrations, connect
from shared.db.migrate import MIGRATIONS_DIR
from shared.entities import CONTACTS, MIRROR_SCHEMA, REGISTRY, TICKETS, EntitySpec
from shared.mirror.store import Snapshot, upsert
from tests.helpers.roles import login_dsn
from tests.helpers.servers import Postgres

pytestmark = pytest.mark.integration

SPECS = pytest.mark.parametrize("spec", REGISTRY, ids=[s.rest_name for s in REGISTRY])
FETCHED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def _relations(db: asyncpg.Connection, schema: str) -> list[str]:
    """Tables and views of ``schema``, qualified."""
    rows = await db.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind IN ('r', 'v') ORDER BY c.relname",
        schema,
    )
    return [f"{schema}.{r['relname']}" for r in rows]


async def test_a_reader_reads_the_mirror_and_none_of_the_services_state(
    migrated_database: str, reader_dsn: str
):
    admin = await connect(migrated_database)
    try:
        mirror = await _relations(admin, MIRROR_SCHEMA)
        state = await _relations(admin, "public")
    finally:
        await admin.close()
    assert {s.mirror_table for s in REGISTRY} | {f"{MIRROR_SCHEMA}.sync_status"} <= set(mirror)
    assert "public.connections" in state  # the credentials
    reader = await connect(reader_dsn)
    try:
        for relation in mirror:
            await reader.fetch(f"SELECT * FROM {relation} LIMIT 1")  # noqa: S608 - catalog names
        refused = []
        for relation in state:
            try:
                await reader.fetch(f"SELECT * FROM {relation} LIMIT 1")  # noqa: S608 - catalog names
            except asyncpg.InsufficientPrivilegeError:
                refused.append(relation)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.execute(f"DELETE FROM {TICKETS.mirror_table}")  # noqa: S608 - registry name
    finally:
        await reader.close()
    assert refused == state


async def test_every_mirror_table_column_and_view_is_described(migrated_database: str):
    db = await connect(migrated_database)
    try:
        rows = await db.fetch(
            "SELECT c.relname, a.attname, col_description(c.oid, a.attnum) AS note "
            "FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r' "
            "AND a.attnum > 0 AND NOT a.attisdropped",
            MIRROR_SCHEMA,
        )
        described = {
            r["relname"]: r["note"]
            for r in await db.fetch(
                "SELECT relname, obj_description(oid, 'pg_class') AS note FROM pg_class "
                "WHERE relnamespace = $1::regnamespace AND relkind IN ('r', 'v')",
                MIRROR_SCHEMA,
            )
        }
    finally:
        await db.close()
    notes = {(r["relname"], r["attname"]): r["note"] for r in rows}
    missing = [f"{table}.{column}" for (table, column), note in notes.items() if not note]
    missing += [relation for relation, note in described.items() if not note]
    for spec in REGISTRY:
        for relation in (spec.table, f"{spec.table}_live", f"{spec.table}_labeled"):
            if relation not in described:
                missing.append(relation)
        for promoted in spec.promoted:
            note = notes.get((spec.table, promoted.column)) or ""
            if not note.startswith(promoted.json_field):
                missing.append(f"{spec.table}.{promoted.column} (about {promoted.json_field})")
    assert missing == []


async def _insert(db: asyncpg.Connection, spec: EntitySpec, entity_id: int, state: str) -> None:
    """A row of connection acme: ``live``, ``deleted`` or ``out`` of scope."""
    await db.execute(
        f"INSERT INTO {spec.mirror_table} (connection, id, entity, fetched_at, content_hash, "  # noqa: S608 - registry name
        "origin, deleted_at, out_of_scope_at) VALUES ('acme', $1, $2, now(), '\\x00', 'sweep', "
        "CASE WHEN $3 THEN now() END, CASE WHEN $4 THEN now() END)",
        entity_id,
        {"id": entity_id},
        state == "deleted",
        state == "out",
    )


async def _sweep(db: asyncpg.Connection, spec: EntitySpec, entities: list[dict]) -> None:
    """``entities`` written for connection acme as a sweep writes them (the one upsert)."""
    await upsert(
        db,
        spec,
        "acme",
        [Snapshot(id=e["id"], entity=e, fetched_at=FETCHED) for e in entities],
        origin="sweep",
    )


@SPECS
async def test_the_live_view_shows_only_rows_that_exist_and_are_in_scope(
    migrated_database: str, reader_dsn: str, spec: EntitySpec
):
    admin = await connect(migrated_database)
    try:
        for entity_id, state in ((1, "live"), (2, "deleted"), (3, "out")):
            await _insert(admin, spec, entity_id, state)
    finally:
        await admin.close()
    reader = await connect(reader_dsn)
    try:
        live = await reader.fetch(f"SELECT id FROM {spec.mirror_table}_live")  # noqa: S608 - registry name
        labeled = await reader.fetch(f"SELECT id FROM {spec.mirror_table}_labeled")  # noqa: S608 - registry name
    finally:
        await reader.close()
    assert [r["id"] for r in live] == [1]
    assert sorted(r["id"] for r in labeled) == [1, 2, 3]


async def test_contacts_is_active_is_boolean_and_the_json_keeps_what_autotask_sent(
    migrated_database: str,
):
    contacts = [{"id": i, "companyID": 7, "isActive": flag} for i, flag in ((1, 1), (2, 0))]
    db = await connect(migrated_database)
    try:
        await _sweep(db, CONTACTS, contacts)
        rows = await db.fetch(
            f"SELECT id, is_active, entity ->> 'isActive' AS sent FROM {CONTACTS.mirror_table} "  # noqa: S608 - registry name
            "ORDER BY id"
        )
    finally:
        await db.close()
    assert [tuple(r) for r in rows] == [(1, True, "1"), (2, False, "0")]


async def test_udfs_are_an_object_keyed_by_name_beside_the_list_autotask_sends(
    migrated_database: str,
):
    sent = [
        {"name": "Customer Impact", "value": "High"},
        {"name": "External Reference", "value": None},
    ]
    tickets = [
        {"id": 1, "title": "With UDFs", "userDefinedFields": sent},
        {"id": 2, "title": "None"},
    ]
    db = await connect(migrated_database)
    try:
        await _sweep(db, TICKETS, tickets)
        rows = await db.fetch(
            f"SELECT udfs, entity -> 'userDefinedFields' AS sent FROM {TICKETS.mirror_table} "  # noqa: S608 - registry name
            "ORDER BY id"
        )
    finally:
        await db.close()
    assert rows[0]["udfs"] == {"Customer Impact": "High", "External Reference": None}
    assert rows[0]["sent"] == sent
    assert rows[1]["udfs"] == {}


async def test_upgrading_keeps_the_rows_their_counters_and_indexes(
    fresh_database: str, tmp_path: Path
):
    """A database mirrored before the schema existed: 0011 moves what it holds."""
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if path.name < "0011":
            shutil.copy(path, tmp_path / path.name)
    db = await connect(fresh_database)
    try:
        await apply_migrations(db, tmp_path)
        await db.execute(
            "INSERT INTO contacts (connection, id, entity, fetched_at, content_hash, origin, "
            "change_seq) VALUES ('acme', 7, $1, now(), '\\x00', 'sweep', 3)",
            {"id": 7, "isActive": 1, "userDefinedFields": [{"name": "Tier", "value": "Gold"}]},
        )
        await apply_migrations(db)
        row = await db.fetchrow(
            f"SELECT change_seq, is_active, udfs FROM {CONTACTS.mirror_table} WHERE id = 7"  # noqa: S608 - registry name
        )
        indexes = {
            r["indexname"]
            for r in await db.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = $2",
                MIRROR_SCHEMA,
                CONTACTS.table,
            )
        }
    finally:
        await db.close()
    assert tuple(row) == (3, True, {"Tier": "Gold"})
    assert {"contacts_pkey", "contacts_company_id", "contacts_is_active"} <= indexes


async def test_migrate_by_a_user_who_may_not_create_roles_leaves_the_role_to_a_dba():
    """Managed PostgreSQL often gives the application a database it owns and no CREATEROLE:
    migrate still succeeds, says what to do, and the documented two steps give readers access.
    On a cluster of its own: whether autotask_reader exists is server-wide state."""
    root = Path(tempfile.mkdtemp(prefix="autotask-sync-roles-pg-"))
    root.chmod(0o755)  # the server runs as an unprivileged user
    cluster = Postgres(root / "cluster")
    await asyncio.to_thread(cluster.start)
    try:
        admin = await connect(cluster.dsn)
        try:
            await admin.execute("CREATE ROLE owner LOGIN NOCREATEROLE")
            await admin.execute("CREATE ROLE reporting LOGIN")
            await admin.execute("CREATE DATABASE mirror OWNER owner")
        finally:
            await admin.close()
        owner = await connect(login_dsn(cluster.dsn, user="owner", database="mirror"))
        warnings: list[str] = []
        owner.add_log_listener(lambda _conn, message: warnings.append(message.message))
        try:
            with capture_logs() as logged:
                await apply_migrations(owner)
                await asyncio.sleep(0)  # log listeners are called soon, not at once
            # The person running migrate sees it too, not only the server's log.
            told = [e["message"] for e in logged if e["event"].startswith("the database warned")]
            assert any("autotask_sync_grant_reader()" in m for m in told), logged
            assert not await owner.fetchval(
                "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = 'autotask_reader')"
            )
            assert any("SELECT autotask_sync_grant_reader()" in w for w in warnings), warnings

            # docs/consumers.md: a DBA makes the role, the owner grants it.
            admin = await connect(login_dsn(cluster.dsn, database="mirror"))
            try:
                await admin.execute("CREATE ROLE autotask_reader NOLOGIN")
                await admin.execute("GRANT autotask_reader TO reporting")
            finally:
                await admin.close()
            assert await owner.fetchval("SELECT autotask_sync_grant_reader()") is True
        finally:
            await owner.close()
        reader = await connect(login_dsn(cluster.dsn, user="reporting", database="mirror"))
        try:
            assert await reader.fetchval(f"SELECT count(*) FROM {TICKETS.mirror_table}_live") == 0  # noqa: S608 - registry name
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.fetch("SELECT * FROM connections")
        finally:
            await reader.close()
    finally:
        await asyncio.to_thread(cluster.close)
