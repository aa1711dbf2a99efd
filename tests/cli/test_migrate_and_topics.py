"""``autotask-sync migrate`` and ``autotask-sync topics`` as an operator runs them."""

from __future__ import annotations

import json

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shared.db import discover
from tests.helpers.processes import run_cli

pytestmark = pytest.mark.integration


async def test_migrate_applies_once_then_reports_up_to_date(fresh_database: str) -> None:
    first = await run_cli("migrate", env={"DATABASE_URL": fresh_database})
    assert first.code == 0, first.err
    assert f"applied {len(discover())} migration(s)" in first.out
    again = await run_cli("migrate", env={"DATABASE_URL": fresh_database})
    assert (again.code, again.out.strip()) == (0, "database is up to date")
    conn = await asyncpg.connect(fresh_database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(discover())
    finally:
        await conn.close()


async def test_migrate_against_unreachable_database_fails_without_the_password() -> None:
    result = await run_cli(
        "migrate", env={"DATABASE_URL": "postgresql://sync:hunter2-secret@127.0.0.1:1/nothing"}
    )
    assert result.code == 2
    assert "could not connect to PostgreSQL at postgresql://127.0.0.1:1/nothing" in result.err
    assert "hunter2-secret" not in result.output


async def test_topics_ensure_creates_what_list_declares(kafka_bootstrap: str, unique: str) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "AUTOTASK_SYNC_TOPIC_PREFIX": f"c{unique}"}
    listed = await run_cli("topics", "list", env=env)
    assert listed.code == 0, listed.err
    declared = {json.loads(line)["name"] for line in listed.out.splitlines()}
    assert f"c{unique}.callouts.v1" in declared
    assert f"c{unique}.tickets.v1" in declared

    created = await run_cli("topics", "ensure", "--partitions", "2", env=env)
    assert created.code == 0, created.err
    assert f"created {len(declared)} of {len(declared)}" in created.out
    again = await run_cli("topics", "ensure", env=env)
    assert again.out.strip() == f"created 0 of {len(declared)} topic(s)"

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    assert declared <= existing
