"""``autotask-sync migrate`` and ``autotask-sync topics`` as an operator runs them."""

from __future__ import annotations

import json

import asyncpg
import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient

from shared.db import discover
from tests.helpers.processes import run_cli
from tools.dev_infra.kustomize import TOPICS_FILE

pytestmark = pytest.mark.integration


async def test_migrate_applies_once_then_reports_up_to_date(fresh_database: str) -> None:
    # The services' level in the environment (a shared ConfigMap) does not reach a command:
    # it logs at WARNING on stderr unless -v, and its stdout holds only its answer.
    env = {"DATABASE_URL": fresh_database, "AUTOTASK_SYNC_LOG_LEVEL": "INFO"}
    first = await run_cli("migrate", env=env)
    assert first.code == 0, first.err
    assert first.out == f"applied {len(discover())} migration(s)\n"
    assert "applied migration" not in first.err
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
    listed = await run_cli("topics", "list", "--output", "json", env=env)
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


async def test_topics_list_prints_a_table_or_the_kafkatopic_resources_deploy_declares() -> None:
    table = await run_cli("topics", "list")
    assert table.code == 0, table.err
    header, *rows = table.out.splitlines()
    assert header.split() == ["TOPIC", "PARTITIONS", "CONFIG"]
    tickets = next(row.split(maxsplit=2) for row in rows if row.startswith("autotask.tickets.v1"))
    assert tickets[1] == "12"
    assert "cleanup.policy=compact" in tickets[2]

    strimzi = await run_cli("topics", "list", "--output", "kafkatopic", "--replication-factor", "2")
    assert strimzi.code == 0, strimzi.err
    resources = list(yaml.safe_load_all(strimzi.out))
    assert {r["spec"].pop("replicas") for r in resources} == {2}
    # What deploy/k8s/kafka-topics declares (the overlays add the replicas).
    assert resources == list(yaml.safe_load_all(TOPICS_FILE.read_text()))
