"""End to end with the real gateway (``python -m services.webhook_gateway``): the simulator's
signed callouts to the webhooks the provisioner made pass verification and reach Kafka; a
rotation loses no callout, and the gateway accepts either secret during the overlap and only the
new one after it; a deactivation call to the gateway gets the webhook reactivated and a catch-up
sweep requested within seconds, and a flood of such calls costs one check."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer

from shared.kafka import ensure_topics
from shared.messages.control import SweepRequested
from shared.messages.topics import Topics
from shared.secrets import SecretBox
from tests.helpers.processes import ServiceProcess, running
from tests.helpers.tenants import store_connection
from tests.helpers.waiting import eventually
from tests.services.provisioner.harness import KEY, harness, ours, read_control, tenant
from tests.services.provisioner.processes import passes, provisioner_env
from tools.autotask_sim import Simulator, run_simulator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with run_simulator(tenant(41)) as simulator:
        yield simulator


@pytest_asyncio.fixture
async def topics(kafka_bootstrap: str, unique: str) -> Topics:
    declared = Topics(prefix=f"e2e{unique}", partitions=3)
    await ensure_topics(kafka_bootstrap, declared.declarations([]), replication_factor=1)
    return declared


def gateway_env(dsn: str, kafka: str, topics: Topics, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "AUTOTASK_SYNC_SECRET_KEYS": KEY,
        "AUTOTASK_SYNC_TOPIC_PREFIX": topics.prefix,
        "AUTOTASK_SYNC_LAST_CALLOUT_FLUSH_INTERVAL": "200ms",
        **extra,
    }


@pytest_asyncio.fixture
async def gateway(
    migrated_database, kafka_bootstrap, topics, tmp_path
) -> AsyncIterator[ServiceProcess]:
    env = gateway_env(migrated_database, kafka_bootstrap, topics)
    log_path = tmp_path / "gateway.log"
    async with running(ServiceProcess("webhook_gateway", env, log_path=log_path)) as service:
        yield service


def sign(secret: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha1).digest()
    return {
        "Content-Type": "application/json",
        "X-Hook-Signature": "sha1=" + base64.b64encode(digest).decode(),
    }


def body(ticket_id: int, sequence: int) -> bytes:
    return json.dumps(
        {
            "Action": "Update", "Guid": "00000000-0000-0000-0000-00000000e2e0",
            "EntityType": "Ticket", "Id": ticket_id, "Fields": {"title": f"n{sequence}"},
            "EventTime": "2026-12-01T12:00:00Z", "SequenceNumber": sequence, "PersonID": 4,
        },
        separators=(",", ":"),
    ).encode()  # fmt: skip


async def callout_values(kafka: str, topic: str) -> set[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka, auto_offset_reset="earliest")
    await consumer.start()
    found: set[bytes] = set()
    try:
        for _ in range(10):
            batches = await consumer.getmany(timeout_ms=300)
            found |= {m.value for ms in batches.values() for m in ms if m.value is not None}
    finally:
        await consumer.stop()
    return found


def delivered(sim: Simulator) -> list[dict]:
    """The simulator's delivery log: one entry per attempt, deactivation notices left out."""
    return [e for e in sim.state.callout_log if e["outcome"] != "deactivation_call"]


async def test_callouts_verify_and_a_rotation_loses_none_and_honours_the_overlap(
    sim: Simulator,
    gateway: ServiceProcess,
    topics: Topics,
    migrated_database: str,
    kafka_bootstrap: str,
):
    async with harness(
        sim, migrated_database, gateway=gateway.url, kafka=kafka_bootstrap,
        topic_prefix=topics.prefix,
    ) as h:  # fmt: skip
        assert (await h.apply()).outcome == "applied"
        tickets = [t["id"] for t in sim.state.entities("Tickets")]

        async def technician_edits(count: int, start: int) -> None:
            for n in range(count):
                sim.update_entity("Tickets", tickets[n % len(tickets)], {"title": f"e{start + n}"})
                await asyncio.sleep(0.02)

        await technician_edits(5, 0)
        assert await sim.wait_for_callouts(timedelta(seconds=10))
        outcomes = [(e["outcome"], e["status"], e.get("error")) for e in delivered(sim)]
        assert [o[:2] for o in outcomes] == [("delivered", 200)] * 5, outcomes  # verified

        old = (await h.live())["Tickets"]
        edits = asyncio.create_task(technician_edits(40, 100))  # callouts keep flowing...
        await asyncio.sleep(0.2)
        rotated = await h.apply(rotate=["Tickets"])  # ...while the secret changes
        await edits
        assert rotated.outcome == "applied", rotated.error
        assert await sim.wait_for_callouts(timedelta(seconds=15))
        outcomes = [(e["outcome"], e["status"]) for e in delivered(sim)]
        assert outcomes == [("delivered", 200)] * 45, outcomes  # none refused, none retried
        assert sim.state.error_log() == []
        stored = await callout_values(kafka_bootstrap, topics.callouts)
        assert {e["body"].encode() for e in delivered(sim)} <= stored

        new = (await h.live())["Tickets"]
        assert new.secret_previous is not None
        url = f"{gateway.url}/v1/callouts/{new.registration_id}"
        old_secret = old.secret_current.get_secret_value()
        new_secret = new.secret_current.get_secret_value()
        async with aiohttp.ClientSession() as http:

            async def status(secret: str, sequence: int) -> int:
                payload = body(tickets[0], sequence)
                async with http.post(url, data=payload, headers=sign(secret, payload)) as r:
                    return r.status

            assert await status(old_secret, 1) == 200  # during the overlap: either secret
            assert await status(new_secret, 2) == 200
            await h.sql(
                "UPDATE webhook_registrations SET previous_valid_until = now() - interval '1s' "
                "WHERE registration_id = $1",
                new.registration_id,
            )
            sequence = iter(range(3, 1000))
            await eventually(
                lambda: _is(status(old_secret, next(sequence)), 401), within=timedelta(seconds=10)
            )
            assert await status(new_secret, 1001) == 200  # after it: only the new one

        async def seen() -> bool:
            return (await h.live())["Tickets"].last_callout_at is not None

        await eventually(seen, within=timedelta(seconds=10))  # what `provision status` shows


async def test_a_deactivation_call_to_the_gateway_gets_the_webhook_reactivated_and_swept(
    sim: Simulator, topics: Topics, migrated_database: str, kafka_bootstrap: str, tmp_path: Path
):
    await store_connection(migrated_database, SecretBox([KEY]), "acme", sim)
    # every call gets through the gateway, so the provisioner's own coalescing is what is seen
    gateway_settings = gateway_env(
        migrated_database, kafka_bootstrap, topics, AUTOTASK_SYNC_DEACTIVATION_INTERVAL="10ms"
    )
    gateway_process = ServiceProcess(
        "webhook_gateway", gateway_settings, log_path=tmp_path / "gateway.log"
    )
    async with running(gateway_process) as gateway:
        env = provisioner_env(migrated_database, kafka_bootstrap, topics.prefix, gateway.url)
        env["AUTOTASK_SYNC_PROVISIONER_EVENT_COALESCE"] = "4s"
        env["AUTOTASK_SYNC_PROVISIONER_DEACTIVATION_WINDOW"] = "4s"
        provisioner_process = ServiceProcess(
            "provisioner", env, log_path=tmp_path / "provisioner.log"
        )
        async with running(provisioner_process) as provisioner:
            await eventually(lambda: _ready(sim), within=timedelta(seconds=30))
            tickets = next(w for w in ours(sim) if w["root"] == "TicketWebhooks")

            # Autotask switches the webhook off and calls its DeactivationUrl (the gateway)
            sim.state.webhooks.deactivate("TicketWebhooks", tickets["id"])
            await eventually(lambda: _ready(sim), within=timedelta(seconds=15))
            await eventually(lambda: _passes_are(provisioner, 1), within=timedelta(seconds=10))

            def reactivated(events: list[object]) -> bool:
                return ("Tickets", "webhook reactivated") in {
                    (e.entity, e.reason) for e in events if isinstance(e, SweepRequested)
                }

            # the catch-up sweep is owed and published within a pass (seconds); never is the
            # alternative
            await read_control(
                kafka_bootstrap, topics.control, until=reactivated, within=timedelta(seconds=45)
            )

            # once more, with a flood of calls on the (unsigned) deactivation URL
            sim.state.webhooks.deactivate("TicketWebhooks", tickets["id"])
            async with aiohttp.ClientSession() as http:
                for _ in range(30):
                    async with http.post(tickets["deactivationUrl"], json={}) as response:
                        assert response.status == 200
            await eventually(lambda: _ready(sim), within=timedelta(seconds=15))
            await asyncio.sleep(10)  # 2.5 windows: a pass the flood left owed would have run
            assert await passes(provisioner, "deactivation") == 2  # the flood: one check


def _ready(sim: Simulator) -> bool:
    webhooks = ours(sim)
    return len(webhooks) == 2 and all(w["isActive"] and w["isReady"] for w in webhooks)


async def _passes_are(provisioner: ServiceProcess, count: int) -> bool:
    return await passes(provisioner, "deactivation") == count


async def _is(awaitable, expected: int) -> bool:
    return await awaitable == expected
