"""Migrations against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from shared.db.migrate import MIGRATIONS_DIR, apply_migrations, discover
from shared.errors import MigrationError

pytestmark = pytest.mark.integration

STATE_TABLES = {
    "connections",
    "webhook_registrations",
    "sweep_watermarks",
    "sync_runs",
    "callout_spool",
    "schema_migrations",
}


async def _tables(db: asyncpg.Connection) -> set[str]:
    rows = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def test_applies_state_tables_and_they_hold_data(fresh_database: str) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        applied = await apply_migrations(conn)
        assert [m.version for m in applied] == [m.version for m in discover()]
        assert await _tables(conn) >= STATE_TABLES

        await conn.execute(
            "INSERT INTO webhook_registrations (registration_id, connection, entity, "
            "secret_current) VALUES ($1, 'acme', 'Tickets', $2)",
            "r" * 20,
            b"\x01\x02",
        )
        row = await conn.fetchrow("SELECT * FROM webhook_registrations")
        assert (row["connection"], row["entity"], row["state"]) == ("acme", "Tickets", "pending")
        # One live registration per connection and entity.
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO webhook_registrations (registration_id, connection, entity, "
                "secret_current) VALUES ($1, 'acme', 'Tickets', $2)",
                "s" * 20,
                b"\x01",
            )
    finally:
        await conn.close()


async def test_applying_twice_is_a_no_op(fresh_database: str) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        await apply_migrations(conn)
        before = await conn.fetch("SELECT version, checksum, applied_at FROM schema_migrations")
        assert await apply_migrations(conn) == []
        after = await conn.fetch("SELECT version, checksum, applied_at FROM schema_migrations")
        assert before == after
    finally:
        await conn.close()


async def test_concurrent_runners_apply_each_migration_once(fresh_database: str) -> None:
    conns = [await asyncpg.connect(fresh_database) for _ in range(3)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        assert sorted(len(r) for r in results) == [0, 0, len(discover())]
    finally:
        for c in conns:
            await c.close()


async def test_edited_migration_is_refused(fresh_database: str, tmp_path: Path) -> None:
    for path in MIGRATIONS_DIR.glob("*.sql"):
        shutil.copy(path, tmp_path / path.name)
    conn = await asyncpg.connect(fresh_database)
    try:
        await apply_migrations(conn, tmp_path)
        first = sorted(tmp_path.glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited\n")
        with pytest.raises(MigrationError, match="was changed after it was applied"):
            await apply_migrations(conn, tmp_path)
    finally:
        await conn.close()


async def test_broken_migration_rolls_back_and_names_the_file(
    fresh_database: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE a (id int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE b (id int); SELECT * FROM nope;")
    conn = await asyncpg.connect(fresh_database)
    try:
        with pytest.raises(MigrationError, match="0002_broken"):
            await apply_migrations(conn, tmp_path)
        tables = await _tables(conn)
        assert "a" in tables
        assert "b" not in tables  # the failed file left nothing behind
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        assert versions == [1]
    finally:
        await conn.close()
