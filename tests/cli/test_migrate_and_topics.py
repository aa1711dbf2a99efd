"""``autotask-sync migrate`` and ``autotask-sync topics`` as an operator runs them."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shared.db import discover

pytestmark = pytest.mark.integration


async def _cli(*args: str, **env: str) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTASK_SYNC_")}
    clean.pop("DATABASE_URL", None)
    clean.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", *args,
        env={**clean, "AUTOTASK_SYNC_LOG_FORMAT": "json", **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_migrate_applies_once_then_reports_up_to_date(fresh_database: str) -> None:
    code, out, err = await _cli("migrate", DATABASE_URL=fresh_database)
    assert code == 0, err
    assert f"applied {len(discover())} migration(s)" in out
    code, out, _ = await _cli("migrate", DATABASE_URL=fresh_database)
    assert (code, out.strip()) == (0, "database is up to date")
    conn = await asyncpg.connect(fresh_database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(discover())
    finally:
        await conn.close()


async def test_migrate_against_unreachable_database_fails_without_the_password() -> None:
    code, out, err = await _cli(
        "migrate", DATABASE_URL="postgresql://sync:hunter2-secret@127.0.0.1:1/nothing"
    )
    assert code == 2
    assert "could not connect to PostgreSQL at postgresql://127.0.0.1:1/nothing" in err
    assert "hunter2-secret" not in out + err


async def test_topics_ensure_creates_what_list_declares(kafka_bootstrap: str, unique: str) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "AUTOTASK_SYNC_TOPIC_PREFIX": f"c{unique}"}
    code, out, err = await _cli("topics", "list", **env)
    assert code == 0, err
    declared = {json.loads(line)["name"] for line in out.splitlines()}
    assert f"c{unique}.callouts.v1" in declared
    assert f"c{unique}.tickets.v1" in declared

    code, out, err = await _cli("topics", "ensure", "--partitions", "2", **env)
    assert code == 0, err
    assert f"created {len(declared)} of {len(declared)}" in out
    code, out, _ = await _cli("topics", "ensure", **env)
    assert out.strip() == f"created 0 of {len(declared)} topic(s)"

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    assert declared <= existing
