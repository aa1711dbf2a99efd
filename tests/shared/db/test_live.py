"""A live table follows changes through NOTIFY, and keeps its snapshot when PostgreSQL goes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from shared.db.live import LiveTable
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.integration


async def _names(db: asyncpg.Connection) -> list[str]:
    return [row["name"] for row in await db.fetch("SELECT name FROM connections")]


async def _insert(dsn: str, name: str) -> None:
    db = await asyncpg.connect(dsn)
    try:
        await db.execute(
            "INSERT INTO connections (name, username, secret_encrypted, "
            "integration_code_encrypted) VALUES ($1, 'u', '\\x00', '\\x00')",
            name,
        )
    finally:
        await db.close()


async def test_a_change_is_seen_within_moments_not_at_the_reload(migrated_database: str):
    table = LiveTable(
        name="connections",
        dsn=migrated_database,
        channel="autotask_sync_connections",
        load=_names,
        reload_interval=timedelta(minutes=10),  # only NOTIFY can explain a quick update
    )
    seen: list[list[str]] = []
    table.subscribe(seen.append)
    async with table:
        assert table.value == []
        await _insert(migrated_database, "acme")
        # NOTIFY: the reload is 10 minutes off.
        await eventually(lambda: table.value == ["acme"], within=timedelta(seconds=30))
    assert seen[0] == []
    assert seen[-1] == ["acme"]


async def test_the_snapshot_survives_postgresql_going_away(database_url: str, migrated_database):
    await _insert(migrated_database, "kept")
    table = LiveTable(
        name="connections",
        dsn=migrated_database,
        channel="autotask_sync_connections",
        load=_names,
        reload_interval=timedelta(milliseconds=200),
    )
    async with table:
        assert table.value == ["kept"]
        name = migrated_database.rpartition("/")[2]
        admin = await asyncpg.connect(database_url)
        try:  # the database disappears under the listener
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        await asyncio.sleep(1.0)  # several failed reloads
        assert table.value == ["kept"]
        assert table.age is not None
        assert table.age > 0.5
