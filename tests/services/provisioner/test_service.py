"""The provisioner as a service (``python -m services.provisioner``, a real process): it
provisions every connection at start, and a flood of deactivation events on the control topic
leads to one pass that reactivates the webhook and requests a catch-up sweep."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from shared.kafka import make_producer, produce
from shared.messages.control import SweepRequested, WebhookDeactivated, encode_control
from shared.secrets import SecretBox
from tests.helpers.processes import ServiceProcess, running
from tests.helpers.receiver import Receiver, serve_receiver
from tests.helpers.tenants import store_connection
from tests.helpers.waiting import eventually
from tests.services.provisioner.harness import (
    KEY,
    ensure_control_topic,
    ours,
    read_control,
    tenant,
)
from tests.services.provisioner.processes import passes, provisioner_env
from tools.autotask_sim import Simulator, run_simulator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with run_simulator(tenant(31)) as simulator:
        yield simulator


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve_receiver() as server:
        yield server


async def test_a_flood_of_deactivation_events_leads_to_one_pass_that_heals_and_asks_for_a_sweep(
    sim: Simulator,
    receiver: Receiver,
    migrated_database: str,
    kafka_bootstrap: str,
    unique: str,
    tmp_path: Path,
):
    prefix = f"svc{unique}"
    await store_connection(migrated_database, SecretBox([KEY]), "acme", sim)
    topics = await ensure_control_topic(kafka_bootstrap, prefix)
    env = provisioner_env(migrated_database, kafka_bootstrap, prefix, receiver.base_url)
    service = ServiceProcess("provisioner", env, log_path=tmp_path / "provisioner.log")
    async with running(service) as provisioner:
        await eventually(lambda: len(ours(sim)) == 2, within=timedelta(seconds=30))
        await eventually(
            lambda: _passes_reached(provisioner, "startup", 1), within=timedelta(seconds=30)
        )
        assert all(w["isReady"] and w["isActive"] for w in ours(sim))
        tickets = next(w for w in ours(sim) if w["root"] == "TicketWebhooks")

        sim.state.webhooks.deactivate("TicketWebhooks", tickets["id"])  # Autotask gave up
        producer = make_producer(kafka_bootstrap, client_id="test-gateway")
        await producer.start()
        try:
            for _ in range(30):  # an unsigned endpoint may be flooded: so may this topic
                event = WebhookDeactivated(
                    connection="acme",
                    registration_id="r" * 32,
                    entity="Tickets",
                    at=datetime.now(UTC),
                )
                key, value = encode_control(event)
                await produce(producer, topics.control, key=key, value=value)
        finally:
            await producer.stop()

        await eventually(lambda: _active(sim, "TicketWebhooks"), within=timedelta(seconds=30))
        await eventually(
            lambda: _passes_reached(provisioner, "deactivation", 1), within=timedelta(seconds=30)
        )
        events = await read_control(kafka_bootstrap, topics.control, at_least=33)
        sweeps = {(e.entity, e.reason) for e in events if isinstance(e, SweepRequested)}
        assert sweeps >= {
            ("Tickets", "webhook created"),
            ("Companies", "webhook created"),
            ("Tickets", "webhook reactivated"),
        }
        await asyncio.sleep(3)  # the rest of the flood was coalesced into that one pass
        assert await passes(provisioner, "deactivation") == 1
        assert await provisioner.stop() == 0
        assert '"event":"service stopped"' in provisioner.log()


def _active(sim: Simulator, root: str) -> bool:
    return any(w["root"] == root and w["isActive"] for w in ours(sim))


async def _passes_reached(provisioner: ServiceProcess, trigger: str, count: int) -> bool:
    return await passes(provisioner, trigger) >= count
