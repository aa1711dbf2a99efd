"""Kafka and PostgreSQL really going away under a running gateway.

The module owns a Kafka broker (tests/helpers/servers.py) that it stops and
starts again; PostgreSQL "goes away" by dropping the test's own database. The session's shared
servers are never touched.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import aiohttp
import asyncpg
import pytest
from prometheus_client import REGISTRY

from shared.db import apply_migrations
from tests.helpers.servers import Broker
from tests.helpers.simapi import Api, fast_callouts, fast_config, make_webhook
from tests.helpers.waiting import eventually
from tests.services.webhook_gateway.helpers import (
    Deployment,
    add_registration,
    by_value,
    callout_body,
    headers_of,
    read_topic,
    serve_gateway,
    settings_for,
    signed_headers,
    spooled,
)
from tools.autotask_sim import Simulator, run_simulator

pytestmark = pytest.mark.integration

SECRET = "s3cret-key-0123"


def _requests(outcome: str, connection: str = "acme") -> float:
    value = REGISTRY.get_sample_value(
        "autotask_sync_gateway_requests_total",
        {"route": "callout", "outcome": outcome, "connection": connection},
    )
    return value or 0.0


def _first_seen_order(records: list, key: bytes) -> list[int]:  # type: ignore[type-arg]
    """SequenceNumbers of ``key``'s messages in topic order, each at its first occurrence."""
    seen: list[int] = []
    for record in records:
        if record.key == key:
            sequence = json.loads(record.value)["SequenceNumber"]
            if sequence not in seen:
                seen.append(sequence)
    return seen


async def _updates(sim: Simulator, tickets: list[int], count: int, start: int) -> None:
    for n in range(start, start + count):
        sim.update_entity("Tickets", tickets[n % len(tickets)], {"title": f"change {n}"})
        await asyncio.sleep(0.02)


async def test_kafka_stopped_mid_stream_loses_nothing_and_keeps_order_per_key(
    on_own_broker: Deployment, broker: Broker, http: aiohttp.ClientSession
) -> None:
    deployment = on_own_broker
    registration = await deployment.registration(secret=SECRET)
    spooled_before = _requests("spooled")
    async with (
        serve_gateway(deployment.settings()) as served,
        run_simulator(fast_config()) as sim,
    ):
        await make_webhook(
            Api(sim, http),
            "TicketWebhooks",
            served.callout_url(registration.registration_id),
            subscribed=("title",),
            secret=SECRET,
            events=("Update",),
        )
        tickets = [t["id"] for t in sim.state.entities("Tickets")[:3]]
        await _updates(sim, tickets, 10, 0)
        try:
            stopping = asyncio.create_task(asyncio.to_thread(broker.stop))
            await _updates(sim, tickets, 30, 10)  # while the broker shuts down, and is down
            await stopping
            await _updates(sim, tickets, 10, 40)
            restarting = asyncio.create_task(asyncio.to_thread(broker.start))
            await _updates(sim, tickets, 20, 50)  # while it comes back
            await restarting
        finally:
            await asyncio.to_thread(broker.start)
        await _updates(sim, tickets, 10, 70)
        assert await sim.wait_for_callouts(timedelta(seconds=20))
        log = sim.state.callout_log

        async def spool_empty() -> bool:
            return not await spooled(deployment.dsn)

        await eventually(spool_empty, within=timedelta(seconds=30))
        records = await read_topic(deployment.bootstrap, deployment.topics.callouts, at_least=80)

    delivered = [e for e in log if e["outcome"] == "delivered"]
    assert len(delivered) == 80
    assert [e for e in log if e["outcome"] == "failed_attempt"] == []  # every attempt got 2xx
    assert _requests("spooled") - spooled_before > 0  # the spool really carried some
    on_topic = by_value(records)
    assert all(str(e["body"]).encode() in on_topic for e in delivered)  # nothing lost
    for ticket in tickets:
        key = f"acme:Ticket:{ticket}".encode()
        order = _first_seen_order(records, key)
        assert order == sorted(order), key  # one webhook queue: arrival order is sequence order
        assert len(order) == len(
            [e for e in delivered if json.loads(str(e["body"]))["Id"] == ticket]
        )


async def test_without_kafka_and_postgresql_the_gateway_answers_503_and_the_retry_delivers(
    on_own_broker: Deployment,
    broker: Broker,
    database_url: str,
    fresh_database: str,
    http: aiohttp.ClientSession,
) -> None:
    deployment = on_own_broker
    db = await asyncpg.connect(fresh_database)
    try:
        await apply_migrations(db)
    finally:
        await db.close()
    registration = await add_registration(fresh_database, deployment.key, secret=SECRET)
    settings = settings_for(
        dsn=fresh_database,
        bootstrap=deployment.bootstrap,
        topics=deployment.topics,
        key=deployment.key,
    )
    # Autotask's own retry (5 attempts), its delay long enough that a broker restart on a busy
    # machine (up to ~20 s) still ends before the last attempt.
    config = fast_config(callouts=fast_callouts(retry_delay=timedelta(seconds=7)))
    async with serve_gateway(settings) as served, run_simulator(config) as sim:
        await make_webhook(
            Api(sim, http),
            "TicketWebhooks",
            served.callout_url(registration.registration_id),
            subscribed=("title",),
            secret=SECRET,
            events=("Update",),
        )
        ticket = sim.state.entities("Tickets")[0]["id"]
        try:
            await asyncio.to_thread(broker.stop)
            admin = await asyncpg.connect(database_url)
            try:
                name = fresh_database.rpartition("/")[2]
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            finally:
                await admin.close()
            sim.update_entity("Tickets", ticket, {"title": "while everything is down"})
            await eventually(
                lambda: any(e["outcome"] == "failed_attempt" for e in sim.state.callout_log),
                within=timedelta(seconds=10),
            )
        finally:
            await asyncio.to_thread(broker.start)
        assert await sim.wait_for_callouts(timedelta(seconds=45))
        log = sim.state.callout_log
        records = await read_topic(deployment.bootstrap, deployment.topics.callouts, at_least=1)

    failed = [e for e in log if e["outcome"] == "failed_attempt"]
    delivered = [e for e in log if e["outcome"] == "delivered"]
    assert failed
    assert {e["status"] for e in failed} == {503}
    assert len(delivered) == 1
    assert delivered[0]["status"] == 200
    # On the topic; at most twice: the first attempt's send, overdue when it was answered 503,
    # may land too (a duplicate, never a loss), but later attempts add no late copies.
    assert {r.value for r in records} == {str(delivered[0]["body"]).encode()}
    assert len(records) <= 2


async def test_replicas_started_without_kafka_spool_then_one_drains_everything_in_order(
    on_own_broker: Deployment, broker: Broker, http: aiohttp.ClientSession
) -> None:
    deployment = on_own_broker
    registration = await deployment.registration(secret=SECRET)
    await asyncio.to_thread(broker.stop)
    try:
        settings = deployment.settings()
        async with serve_gateway(settings) as first, serve_gateway(settings) as second:
            async with http.get(first.ops_url + "/readyz") as response:
                assert response.status == 200  # Kafka down, spool up: ready
            bodies = [callout_body(100 + n % 4, sequence=n) for n in range(40)]
            statuses = []
            for n, body in enumerate(bodies):
                target = (first, second)[n % 2].callout_url(registration.registration_id)
                async with http.post(target, data=body, headers=signed_headers(SECRET, body)) as r:
                    statuses.append(r.status)
            rows = await spooled(deployment.dsn)
            assert statuses == [200] * 40
            assert [row.value for row in rows] == bodies  # id order is arrival order
            assert rows[0].topic == deployment.topics.callouts
            assert headers_of_row(rows[0])["registration"] == registration.registration_id
            gateways = [first.gateway, second.gateway]
            assert all(g.durability.spooling for g in gateways)  # type: ignore[union-attr]
            # Each replica tries the lock; exactly one gets it.
            await eventually(lambda: sum(g.drainer.holds_lock for g in gateways) == 1)  # type: ignore[union-attr]
            await asyncio.to_thread(broker.start)
            later = [callout_body(100 + n % 4, sequence=n) for n in range(40, 60)]
            for n, body in enumerate(later):  # keep arriving while the spool drains
                target = (first, second)[n % 2].callout_url(registration.registration_id)
                async with http.post(target, data=body, headers=signed_headers(SECRET, body)) as r:
                    assert r.status == 200

            async def all_drained() -> bool:
                spooling = any(g.durability.spooling for g in gateways)  # type: ignore[union-attr]
                return not spooling and not await spooled(deployment.dsn)

            await eventually(all_drained, within=timedelta(seconds=20))
            records = await read_topic(
                deployment.bootstrap, deployment.topics.callouts, at_least=60
            )
    finally:
        await asyncio.to_thread(broker.start)
    assert sorted(by_value(records).values()) == [1] * 60  # each exactly once
    for entity_id in range(100, 104):
        key = f"acme:Ticket:{entity_id}".encode()
        assert _first_seen_order(records, key) == [n for n in range(60) if n % 4 == entity_id - 100]
    assert {headers_of(r)["connection"] for r in records} == {"acme"}


def headers_of_row(row) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {name: value.decode() for name, value in row.headers}
