"""A downstream consumer written from the published contract alone (aiokafka and json, no project
code) folds the change topics into the tenant's data: latest ``after`` per key, a removal or
tombstone drops the key, duplicates skipped by ``ce_id``. After a backfill, webhook-driven
changes and a quick sync, what it holds equals the mirror and the simulated tenant.

simulator -> gateway -> Kafka -> worker / backfill / sweep -> change topics -> this consumer
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.db import connect
from shared.entities import TICKETS
from shared.mirror.store import live_rows
from tests.e2e.harness import ENTITIES, Pipeline, callout_tenant, pipeline_for
from tests.helpers.clients import truth
from tests.helpers.waiting import eventually
from tools.autotask_sim import run_simulator

pytestmark = pytest.mark.e2e


# --- the consumer: nothing below imports the project ------------------------------------------
@dataclass
class Event:
    topic: str
    key: dict[str, Any]
    value: dict[str, Any] | None
    headers: dict[str, str]


async def read_topics(bootstrap: str, topics: Iterable[str]) -> list[Event]:
    """Every message of ``topics`` up to their current ends, each partition in offset order."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    partitions = [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in topic["partitions"]
    ]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        events = []
        for partition in partitions:
            while await consumer.position(partition) < ends[partition]:
                batch = await consumer.getmany(partition, timeout_ms=1000)
                events += [
                    Event(
                        topic=record.topic,
                        key=json.loads(record.key),
                        value=json.loads(record.value) if record.value is not None else None,
                        headers={name: raw.decode() for name, raw in record.headers},
                    )
                    for record in batch.get(partition, [])
                ]
        return events
    finally:
        await consumer.stop()


def fold(events: Iterable[Event]) -> dict[tuple[str, str, int], Any]:
    """``(topic, connection, id) -> latest after``, deduplicated by ``ce_id``."""
    seen: set[str] = set()
    state: dict[tuple[str, str, int], Any] = {}
    for event in events:
        if event.headers["ce_id"] in seen:
            continue
        seen.add(event.headers["ce_id"])
        ident = (event.topic, event.key["connection"], event.key["id"])
        if event.value is None or event.value["op"] == "d":
            state.pop(ident, None)
        else:
            state[ident] = event.value["after"]
    return state


# --- the test ---------------------------------------------------------------------------------
async def _mirrored_title(dsn: str, ticket: int, title: str) -> bool:
    db = await connect(dsn)
    try:
        return (await live_rows(db, TICKETS, "acme")).get(ticket, {}).get("title") == title
    finally:
        await db.close()


@pytest_asyncio.fixture
async def pipeline(migrated_database, kafka_bootstrap, unique, tmp_path) -> AsyncIterator[Pipeline]:
    async with pipeline_for(migrated_database, kafka_bootstrap, unique, tmp_path) as running:
        yield running


async def test_a_plain_consumer_folds_the_change_topics_into_the_tenant(pipeline: Pipeline):
    async with run_simulator(callout_tenant(41, companies=8, tickets=20)) as sim:
        await pipeline.connect("acme", sim)
        await pipeline.start_services()
        await pipeline.provision("acme")
        await pipeline.backfill("acme", ENTITIES)
        first_load = {e.rest_name: len(truth(sim, e.rest_name)) for e in ENTITIES}
        sim.apply_changes(80, seed=12)
        await sim.wait_for_callouts(max_wait=timedelta(seconds=30))
        # The case that repeated ids: a ticket updated (a callout), then only its
        # lastActivityDate moves (a note added: no callout for the ticket), which the sweep
        # repairs with the same last-modified value as the update.
        ticket = truth(sim, "Tickets")[0]["id"]
        sim.update_entity("Tickets", ticket, {"title": "Printer on fire"})
        await eventually(
            lambda: _mirrored_title(pipeline.dsn, ticket, "Printer on fire"),
            what="the ticket's update in the mirror",
        )
        sim.create_entity("TicketNotes", {"ticketID": ticket, "title": "Update", "noteType": 1,
                                          "description": "Extinguished", "publish": 1})  # fmt: skip
        await sim.wait_for_callouts(max_wait=timedelta(seconds=30))
        # The quick sync repairs what webhooks never announce.
        await pipeline.converges("acme", sim, what="the webhooks' changes in the mirror")

        topics = {pipeline.topics.changes(e): e for e in ENTITIES}
        events = await read_topics(pipeline.bootstrap, topics)
        folded = fold(events)
        db = await connect(pipeline.dsn)
        try:
            for topic, entity in topics.items():
                held = {i: after for (t, _c, i), after in folded.items() if t == topic}
                assert held == await live_rows(db, entity, "acme"), entity.rest_name
                assert held == {r["id"]: r for r in truth(sim, entity.rest_name)}, entity.rest_name
        finally:
            await db.close()

    values = [e for e in events if e.value is not None]
    # The first load arrived as snapshots, one per row; webhooks and the sweep sent changes.
    by_origin: dict[tuple[str, str], list[str]] = defaultdict(list)
    for event in values:
        by_origin[event.topic, event.value["source"]["origin"]].append(event.value["op"])
    for topic, entity in topics.items():
        assert by_origin[topic, "backfill"] == ["r"] * first_load[entity.rest_name], topic
        assert {"r"} & {*by_origin[topic, "webhook"], *by_origin[topic, "sweep"]} == set()
        assert all(
            e.headers["ce_type"] == f"autotask.{topic.split('.')[1]}.snapshot"
            for e in values
            if e.topic == topic and e.value["op"] == "r"
        )
    assert any(e.value["op"] == "u" for e in values)
    assert any(e.value["op"] == "d" for e in values)
    # An id never names two different contents (the repeat that lost records before).
    contents: dict[str, set[str]] = defaultdict(set)
    for event in values:
        contents[event.headers["ce_id"]].add(json.dumps(event.value["after"], sort_keys=True))
    assert [ce_id for ce_id, seen in contents.items() if len(seen) > 1] == []
    # Tombstones are CloudEvents of their own.
    tombstones = [e for e in events if e.value is None]
    assert tombstones
    for stone in tombstones:
        assert stone.headers["ce_type"].endswith(".tombstone"), stone.headers
        assert stone.headers["ce_id"] not in contents
        assert "content-type" not in stone.headers
