"""Kafka Connect consumes the change topics: the services publish Connect's JSON with schema
(``AUTOTASK_SYNC_CHANGE_VALUE_FORMAT=connect-json``), a Connect worker reads every record of every
change topic with JsonConverter (``schemas.enable=true``), and Debezium's JDBC sink upserts each
entity by the record key into PostgreSQL and deletes what was deleted: the tables it writes hold
exactly the mirror's rows.

backfill, callouts -> worker -> mirror + change topics -> Kafka Connect -> PostgreSQL (the sink)
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest
import pytest_asyncio

from shared.db import connect
from shared.entities import REGISTRY, EntitySpec, webhook_entities
from shared.kafka.admin import consumer_lag
from shared.messages.callout import parse_instant
from shared.mirror.store import live_rows
from tests.e2e.harness import Pipeline, callout_tenant, pipeline_for
from tests.helpers.pipeline import (
    callouts_for,
    produce_callouts,
    read_topic,
    tenant_state,
    wait_for_mirror,
)
from tests.helpers.waiting import eventually
from tools.autotask_sim import run_simulator
from tools.dev_infra.connect import ConnectProcess, start_connect, stop_connect

pytestmark = pytest.mark.e2e

CONNECTION = "acme"
WEBHOOK_ENTITIES = list(webhook_entities())


def jdbc_sink(name: str, topics: Iterable[str], database_url: str) -> dict[str, str]:
    """Debezium's JDBC sink writing each change topic into a table of its own (docs/consumers.md
    shows the same configuration)."""
    url = urlsplit(database_url)
    return {
        "name": name,
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "tasks.max": "1",
        "topics": ",".join(topics),
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
        "connection.url": f"jdbc:postgresql://{url.hostname}:{url.port}{url.path}",
        "connection.username": url.username or "",
        "connection.password": url.password or "",
        "insert.mode": "upsert",
        "primary.key.mode": "record_key",
        "delete.enabled": "true",
        "schema.evolution": "basic",
        "quote.identifiers": "true",
        # An array of structs has no column type in a JDBC sink.
        "field.exclude.list": "userDefinedFields",
    }


@pytest_asyncio.fixture
async def pipeline(migrated_database, kafka_bootstrap, unique, tmp_path) -> AsyncIterator[Pipeline]:
    async with pipeline_for(migrated_database, kafka_bootstrap, unique, tmp_path) as running:
        # The worker and the commands (the backfill) alike.
        running.deployment.extra_env["AUTOTASK_SYNC_CHANGE_VALUE_FORMAT"] = "connect-json"
        yield running


# About 15 s; a first run also fetches Connect and Debezium from Maven Central (about a minute,
# `make jars` does it ahead).
@pytest.mark.timeout(240)
async def test_a_jdbc_sink_fed_by_kafka_connect_holds_the_mirror(
    pipeline: Pipeline, fresh_database: str, unique: str, tmp_path: Path
):
    name = f"sink-{unique}"
    topics = [pipeline.topics.changes(entity) for entity in REGISTRY]
    # The worker's JVM starts while the pipeline fills the topics; the sink follows them live.
    starting = asyncio.create_task(
        asyncio.to_thread(
            start_connect,
            tmp_path / "connect",
            bootstrap_servers=pipeline.bootstrap,
            connectors=[jdbc_sink(name, topics, fresh_database)],
            owned_by_caller=True,
        )
    )
    try:
        await _fill(pipeline)
        ops = await _ops(pipeline.bootstrap, topics)
        assert {"r", "c", "u", "d", None} <= ops.keys(), ops  # every kind of record, tombstones
        worker = await starting
        await eventually(
            lambda: _caught_up(worker, name, pipeline.bootstrap, topics),
            within=timedelta(seconds=90),
            interval=timedelta(milliseconds=500),
            what=f"the connector to commit every record of {len(topics)} change topics",
        )
    finally:
        worker = await starting
        await asyncio.to_thread(stop_connect, worker)
        print(f"--- connect ---\n{worker.log_file.read_text()[-10_000:]}")

    for entity, topic in zip(REGISTRY, topics, strict=True):
        written = await _sink_rows(fresh_database, entity, topic)
        assert written == await _mirror_rows(pipeline.dsn, entity), entity.rest_name


async def _fill(pipeline: Pipeline) -> None:
    """A backfill of every entity (snapshots), then changes the worker applies from callouts
    (creates, updates, deletes with their tombstones), until the mirror equals the tenant."""
    tenant = callout_tenant(41, companies=6, tickets=12).model_copy(update={"contracts": 4})
    async with run_simulator(tenant) as sim:
        await pipeline.connect(CONNECTION, sim)
        pipeline.worker = await pipeline.deployment.start(
            "sync_worker", AUTOTASK_SYNC_SWEEPS_ENABLED="false"
        )
        await pipeline.backfill(CONNECTION, REGISTRY)
        before = tenant_state(sim, WEBHOOK_ENTITIES)
        sim.apply_changes(60, seed=11)
        changes = callouts_for(before, tenant_state(sim, WEBHOOK_ENTITIES))
        await produce_callouts(pipeline.bootstrap, pipeline.topics, CONNECTION, changes)
        await wait_for_mirror(pipeline.dsn, CONNECTION, sim, REGISTRY)


async def _ops(bootstrap: str, topics: Iterable[str]) -> Counter[str | None]:
    """How many records of each ``op`` the topics hold (None: tombstones); every key and value
    is Connect's JSON with schema, as JsonConverter requires."""
    ops: Counter[str | None] = Counter()
    for topic in topics:
        for message in await read_topic(bootstrap, topic):
            key = json.loads(message.key)
            assert key.keys() == {"schema", "payload"}, key
            value = json.loads(message.value) if message.value is not None else None
            assert value is None or value.keys() == {"schema", "payload"}, value
            ops[value["payload"]["op"] if value else None] += 1
    return ops


async def _caught_up(worker: ConnectProcess, name: str, bootstrap: str, topics: list[str]) -> bool:
    """The connector's task runs (a failure fails the test at once, with its trace) and has
    committed every record of every topic."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{worker.url}/connectors/{name}/status") as answer,
    ):
        status = await answer.json()
    failed = [
        task.get("trace", "") for task in status.get("tasks", []) if task["state"] == "FAILED"
    ]
    if failed or status.get("connector", {}).get("state") == "FAILED":
        pytest.fail(f"the connector failed: {status}")
    lags = [await consumer_lag(bootstrap, f"connect-{name}", topic) for topic in topics]
    return all(sum(lag.values()) == 0 for lag in lags)


async def _sink_rows(database_url: str, entity: EntitySpec, topic: str) -> dict[Any, Any]:
    """The rows the sink wrote for ``topic``, by connection and id (Debezium names the table
    after the topic, dots as underscores)."""
    db = await asyncpg.connect(database_url)
    try:
        rows = await db.fetch(f'SELECT * FROM "{topic.replace(".", "_")}"')  # noqa: S608
    except asyncpg.UndefinedTableError:
        return {}  # a topic without records makes no table
    finally:
        await db.close()
    fields = [field.name for field in entity.fields]
    return {(row["connection"], row["id"]): {f: row[f] for f in fields} for row in rows}


async def _mirror_rows(dsn: str, entity: EntitySpec) -> dict[Any, Any]:
    """The mirror's live rows as a sink's columns hold them: the declared fields (the UDFs are
    not written), timestamps as instants."""
    db = await connect(dsn)
    try:
        rows = await live_rows(db, entity, CONNECTION)
    finally:
        await db.close()
    return {(CONNECTION, i): _columns(entity, row) for i, row in rows.items()}


def _columns(entity: EntitySpec, row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        field.name: parse_instant(value)
        if field.type == "datetime" and value is not None
        else value
        for field in entity.fields
        for value in [row.get(field.name)]
    }
