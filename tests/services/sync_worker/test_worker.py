"""The worker as a real process: callouts on Kafka -> simulator fetches -> PostgreSQL mirror ->
change topics. Every check is one a user cares about: the mirror equals the tenant, the change
topics rebuild it, nothing lost after a crash, few API calls."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import pytest

from shared.db import connect
from shared.entities import COMPANIES, CONFIGURATION_ITEMS, CONTACTS, TICKET_NOTES, TICKETS
from shared.kafka import make_producer, produce
from shared.messages.deadletter import HEADER_ERROR_CLASS
from shared.scope.rules import SyncScope
from tests.helpers.clients import truth
from tests.helpers.contracts import assert_valid
from tests.helpers.pipeline import (
    callouts_for,
    mirror_diff,
    produce_callouts,
    read_topic,
    replay_changes,
    tenant_state,
    wait_for_mirror,
)
from tests.helpers.tenants import small_tenant, tenants
from tests.helpers.waiting import eventually
from tools.autotask_sim import EntityPermission, SecurityLevel

pytestmark = pytest.mark.integration

ENTITIES = [TICKETS, COMPANIES, CONTACTS, CONFIGURATION_ITEMS, TICKET_NOTES]
INVOICE = b'{"EntityType":"Invoice","Id":2}'  # an entity the registry does not know


def _everything(sim) -> list[tuple[str, str, int]]:
    """A create callout for every entity the tenant holds (what a fresh webhook set would see
    if every entity were created now)."""
    return [
        (entity.rest_name, "create", row["id"])
        for entity in ENTITIES
        for row in truth(sim, entity.rest_name)
    ]


def _churn(sim, count: int, seed: int = 5) -> list[tuple[str, str, int]]:
    """Apply ``count`` generated changes; the callouts a full webhook set would send for them."""
    before = tenant_state(sim, ENTITIES)
    sim.apply_changes(count, seed=seed)
    return callouts_for(before, tenant_state(sim, ENTITIES))


async def test_two_tenants_mirror_and_change_topics_match_after_churn(deployment):
    async with tenants(small_tenant(21), small_tenant(22, companies=15)) as (alpha, beta):
        await deployment.connect("alpha", alpha)
        await deployment.connect("beta", beta)
        await deployment.worker()
        for name, sim in (("alpha", alpha), ("beta", beta)):
            await produce_callouts(deployment.bootstrap, deployment.topics, name, _everything(sim))
        for name, sim in (("alpha", alpha), ("beta", beta)):
            await produce_callouts(deployment.bootstrap, deployment.topics, name, _churn(sim, 150))
        for name, sim in (("alpha", alpha), ("beta", beta)):
            assert await wait_for_mirror(deployment.dsn, name, sim, ENTITIES) == {}, name

        # Every event follows the published contract...
        for entity in ENTITIES:
            topic = deployment.topics.changes(entity)
            assert assert_valid(topic, await read_topic(deployment.bootstrap, topic)) > 0
        # ...and a downstream consumer replaying the change topics holds exactly the mirror.
        for entity in ENTITIES:
            replayed = await replay_changes(deployment.bootstrap, deployment.topics.changes(entity))
            for name, sim in (("alpha", alpha), ("beta", beta)):
                mine = {i: row for (c, i), row in replayed.items() if c == name}
                assert mine == {r["id"]: r for r in truth(sim, entity.rest_name)}, (name, entity)


async def test_duplicated_and_reordered_callouts_change_nothing(deployment):
    async with tenants(small_tenant(23)) as (sim,):
        await deployment.connect("acme", sim)
        await deployment.worker()
        log = _churn(sim, 120, seed=9)
        noisy = _everything(sim) + log + log[::-1] + random.Random(3).sample(log, len(log))
        await produce_callouts(deployment.bootstrap, deployment.topics, "acme", noisy)
        assert await wait_for_mirror(deployment.dsn, "acme", sim, ENTITIES) == {}
        # Each id was written as often as it really changed: no event for the echoes.
        events = await read_topic(deployment.bootstrap, deployment.topics.changes(TICKETS))
        ce_ids = [dict(m.headers)["ce_id"] for m in events if m.value is not None]
        assert len(ce_ids) == len(set(ce_ids))


async def _count(dsn: str, table: str) -> int:
    db = await connect(dsn)
    try:
        return int(await db.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608 - test tables
    finally:
        await db.close()


async def test_sigkill_mid_batch_loses_nothing_and_regresses_nothing(deployment):
    async with tenants(small_tenant(24, companies=40, tickets=900)) as (sim,):
        await deployment.connect("acme", sim)
        # Slow fetches and small units: the kill lands while work is in flight.
        sim.set_faults(latency=timedelta(milliseconds=150))
        worker = await deployment.worker(AUTOTASK_SYNC_MAX_IDS_PER_FETCH="50")
        await produce_callouts(deployment.bootstrap, deployment.topics, "acme", _everything(sim))
        await eventually(
            lambda: _count(deployment.dsn, TICKETS.mirror_table), within=timedelta(seconds=8)
        )
        await worker.kill()
        partial = await _count(deployment.dsn, TICKETS.mirror_table)
        assert 0 < partial < len(truth(sim, "Tickets"))  # it really was killed half-way
        sim.clear_faults()
        await deployment.worker()
        assert await wait_for_mirror(deployment.dsn, "acme", sim, ENTITIES) == {}
        db = await connect(deployment.dsn)
        try:
            duplicates = await db.fetchval(
                "SELECT count(*) - count(DISTINCT (connection, id)) FROM autotask.tickets"
            )
        finally:
            await db.close()
        assert duplicates == 0


async def test_a_burst_of_ten_thousand_callouts_costs_few_api_calls(deployment, record_property):
    async with tenants(small_tenant(25, companies=20, tickets=1000)) as (sim,):
        await deployment.connect("acme", sim)
        await deployment.worker(AUTOTASK_SYNC_WINDOW_LOW="250ms")
        rng = random.Random(11)
        ids = [row["id"] for row in truth(sim, "Tickets")]
        burst = [("Tickets", "update", rng.choice(ids)) for _ in range(10_000)]
        sim.reset_counters()
        await produce_callouts(deployment.bootstrap, deployment.topics, "acme", burst)
        assert await wait_for_mirror(deployment.dsn, "acme", sim, [TICKETS]) == {}
        calls = sim.state.requests.by_endpoint["Tickets"]
        per_thousand = calls / 10
        record_property("api_calls_per_1000_callouts", per_thousand)
        distinct = len({i for _e, _a, i in burst})
        print(f"\n10,000 callouts over {distinct} tickets: {calls} API calls")
        assert per_thousand <= 10


async def test_scope_keeps_excluded_queues_out_and_marks_tickets_that_leave(deployment):
    async with tenants(small_tenant(26, tickets=80)) as (sim,):
        scope = SyncScope.parse({"tickets": {"include_queues": [8]}})
        await deployment.connect("acme", sim, scope=scope)
        await deployment.worker()
        await produce_callouts(deployment.bootstrap, deployment.topics, "acme", _everything(sim))
        in_queue = [t for t in truth(sim, "Tickets") if t["queueID"] == 8]
        assert 0 < len(in_queue) < len(truth(sim, "Tickets"))

        async def mirrored() -> dict[int, tuple[int, bool]]:
            db = await connect(deployment.dsn)
            try:
                rows = await db.fetch(
                    "SELECT id, queue_id, out_of_scope_at IS NOT NULL AS out FROM autotask.tickets"
                )
            finally:
                await db.close()
            return {r["id"]: (r["queue_id"], r["out"]) for r in rows}

        # Callouts of different entities sit on different partitions: contacts being mirrored
        # says nothing about tickets, so wait for each outcome itself.
        await wait_for_mirror(deployment.dsn, "acme", sim, [CONTACTS])
        wanted = {t["id"] for t in in_queue}

        async def in_queue_mirrored() -> bool:
            return set(await mirrored()) >= wanted

        await eventually(in_queue_mirrored, within=timedelta(seconds=60), what="tickets in queue 8")
        rows = await mirrored()
        assert {i for i, (q, _out) in rows.items() if q != 8} == set()  # never reached
        assert set(rows) == wanted

        moved = in_queue[0]["id"]
        sim.update_entity("Tickets", moved, {"queueID": 6})
        await produce_callouts(
            deployment.bootstrap, deployment.topics, "acme", [("Tickets", "update", moved)]
        )

        async def marked_out_of_scope() -> bool:
            return (await mirrored()).get(moved, (0, False))[1]

        await eventually(marked_out_of_scope, interval=timedelta(milliseconds=100))
        assert (await mirrored())[moved][1] is True
        events = await read_topic(deployment.bootstrap, deployment.topics.changes(TICKETS))
        last = [json.loads(m.value) for m in events if m.value and json.loads(m.key)["id"] == moved]
        assert last[-1]["op"] == "d"
        assert last[-1]["source"]["reason"] == "out_of_scope"


async def test_unreadable_callouts_are_dead_lettered_and_the_rest_goes_on(deployment):
    async with tenants(small_tenant(27)) as (sim,):
        await deployment.connect("acme", sim)
        await deployment.worker()
        producer = make_producer(deployment.bootstrap, client_id="test")
        await producer.start()
        try:
            headers = [("connection", b"acme")]
            for key, value in ((b"acme:x:1", b"{nope"), (b"acme:y:2", INVOICE)):
                await produce(
                    producer, deployment.topics.callouts, key=key, value=value, headers=headers
                )
        finally:
            await producer.stop()
        await produce_callouts(deployment.bootstrap, deployment.topics, "acme", _everything(sim))
        assert await wait_for_mirror(deployment.dsn, "acme", sim, ENTITIES) == {}
        dead = await read_topic(deployment.bootstrap, deployment.topics.callouts_dlq)
        classes = sorted(dict(m.headers)[HEADER_ERROR_CLASS].decode() for m in dead)
        assert classes == ["MessageError", "MessageError"]
        assert sorted(m.value for m in dead) == sorted([b"{nope", INVOICE])


async def test_an_entity_the_api_user_cannot_read_is_dead_lettered_after_attempts(deployment):
    async with tenants(small_tenant(28)) as (sim,):
        await deployment.connect("acme", sim)
        sim.set_security(SecurityLevel(permissions={"Contacts": EntityPermission(read=False)}))
        await deployment.worker(
            AUTOTASK_SYNC_DEAD_LETTER_MIN_AGE="1s", AUTOTASK_SYNC_DEAD_LETTER_AFTER="2"
        )
        contacts = [("Contacts", "update", r["id"]) for r in truth(sim, "Contacts")[:5]]
        tickets = [("Tickets", "update", r["id"]) for r in truth(sim, "Tickets")]
        await produce_callouts(deployment.bootstrap, deployment.topics, "acme", contacts + tickets)
        assert await wait_for_mirror(deployment.dsn, "acme", sim, [TICKETS]) == {}

        async def five_dead_letters() -> list[Any]:
            dead = await read_topic(deployment.bootstrap, deployment.topics.callouts_dlq)
            assert len(dead) == 5, dead
            return dead

        dead = await eventually(
            five_dead_letters, within=timedelta(seconds=20), interval=timedelta(milliseconds=200)
        )
        assert {dict(m.headers)[HEADER_ERROR_CLASS].decode() for m in dead} == {
            "PermissionDeniedError"
        }
        assert await mirror_diff(deployment.dsn, "acme", sim, [TICKETS]) == {}
