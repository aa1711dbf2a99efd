"""What the mirror's writer really publishes (real PostgreSQL and Kafka) keeps the topic
contract: every kind of message (c, u, r, d deleted and out of scope, tombstones), made from a
record in the forms Autotask sends (timestamps with, without and with another zone), and the
mirror holds exactly what the events say."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.db import connect, create_pool
from shared.entities import TICKETS
from shared.kafka import make_producer
from shared.mirror.store import Snapshot, live_rows
from shared.mirror.writer import Mirror
from shared.records import INSTANT_PATTERN
from tests.helpers.contracts import assert_valid
from tests.helpers.pipeline import create_topics, read_topic
from tools.autotask_sim import SimulatorConfig
from tools.autotask_sim.state import SimulatorState

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def as_sent(**changes: Any) -> dict[str, Any]:
    """A ticket as the API sends it (some stamps with ``Z``, some without), changed."""
    tenant = SimulatorState(SimulatorConfig(seed=5, companies=3, tickets=3, ticket_notes=0))
    ticket: dict[str, Any] = json.loads(json.dumps(tenant.entities("Tickets")[0]))
    return {**ticket, **changes}


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def test_every_kind_of_message_the_writer_publishes_keeps_the_contract(
    migrated_database: str, kafka_bootstrap: str, unique: str
):
    ticket = as_sent(dueDateTime="2026-12-01T14:00:00.000+02:00")
    assert not ticket["createDate"].endswith("Z") or not ticket["lastActivityDate"].endswith("Z")
    edited = {**ticket, "title": "edited"}
    ident = ticket["id"]
    topics = await create_topics(kafka_bootstrap, f"k{unique}", partitions=1)
    pool = await create_pool(migrated_database, min_size=1, max_size=2)
    producer = make_producer(kafka_bootstrap, client_id="test-contracts")
    await producer.start()
    try:
        mirror = Mirror(pool, producer, topics)

        async def write(entity: dict[str, Any], minutes: int, origin: Any, **options: Any):
            snapshot = Snapshot(ident, entity, fetched_at=at(minutes), **options)
            return await mirror.apply_snapshots("acme", TICKETS, [snapshot], origin=origin)

        await write(ticket, 1, "webhook")  # c
        await write(edited, 2, "webhook")  # u
        await write(ticket, 3, "backfill")  # r
        await write(ticket, 4, "sweep", in_scope=False)  # d out_of_scope, tombstone
        await write(edited, 5, "sweep")  # c again
        again = await write(edited, 6, "sweep")  # the same record read again
        db = await connect(migrated_database)
        try:
            mirrored = (await live_rows(db, TICKETS, "acme"))[ident]
        finally:
            await db.close()
        await mirror.apply_deletes("acme", TICKETS, [ident], at=at(7), origin="sweep")  # d
    finally:
        await producer.stop()
        await pool.close()

    messages = await read_topic(kafka_bootstrap, topics.changes(TICKETS))
    assert assert_valid(topics.changes(TICKETS), messages) == 6
    kinds = [dict(m.headers)["ce_type"].decode().rsplit(".", 1)[1] for m in messages]
    assert kinds == [
        "created",
        "updated",
        "snapshot",
        "out_of_scope",
        "tombstone",
        "created",
        "deleted",
        "tombstone",
    ]
    assert (again.outcomes, again.published) == ({"unchanged": 1}, 0), "hashed as stored"
    last_state = json.loads(messages[5].value)["after"]
    assert mirrored == last_state, "the mirror holds what the events say"
    assert last_state["dueDateTime"] == "2026-12-01T12:00:00.000Z"
    stamps = [last_state[f.name] for f in TICKETS.fields if f.type == "datetime"]
    assert all(re.fullmatch(INSTANT_PATTERN, s) for s in stamps if s is not None), stamps
