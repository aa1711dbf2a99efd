"""The fault-injection suite: the pipeline keeps its promises when production goes wrong.

Each scenario drives a simulated tenant's changes through simulator -> gateway -> Kafka -> worker
-> PostgreSQL while one fault happens (then all of them at once), recovers, runs one quick sync
(and the id sweep where Autotask dropped callouts), and asserts: the mirror equals the tenant
exactly (nothing lost, stale or phantom), every callout that got a 2xx is on the callouts topic,
the change topics rebuild the mirror, and the tenant's thread and hourly limits were never
exceeded. The table is printed at the end of the run (``make soak`` runs longer ones).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from tests.e2e.faults import SOAK, Rig, Scenario, owned_rig, run
from tests.helpers.waiting import eventually
from tools.autotask_sim import Simulator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(round(300 * SOAK))]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    async with owned_rig(Path(tmp_path_factory.mktemp("faults"))) as built:
        yield built


async def kafka_restart(rig: Rig, _sim: Simulator) -> None:
    await asyncio.to_thread(rig.broker.stop)
    await asyncio.sleep(4)  # callouts keep getting 2xx through the spool meanwhile
    await asyncio.to_thread(rig.broker.start)


async def postgres_restart(rig: Rig, _sim: Simulator) -> None:
    await asyncio.to_thread(rig.postgres.stop)
    await asyncio.sleep(4)
    await asyncio.to_thread(rig.postgres.start)


async def gateway_kill(rig: Rig, _sim: Simulator) -> None:
    assert rig.gateway is not None
    await rig.gateway.kill()
    await asyncio.sleep(2)  # Autotask's deliveries fail and are retried
    await rig.restart(rig.gateway)


async def worker_kill(rig: Rig, _sim: Simulator) -> None:
    assert rig.worker is not None
    await rig.worker.kill()
    await asyncio.sleep(1)
    await rig.restart(rig.worker)


async def api_storms(_rig: Rig, sim: Simulator) -> None:
    sim.set_faults(rate_429=0.3, rate_500=0.15, latency=timedelta(milliseconds=150))
    await asyncio.sleep(5)
    sim.clear_faults()


async def callout_faults(_rig: Rig, sim: Simulator) -> None:
    sim.set_faults(callout_drop_rate=0.15, callout_duplicate_rate=0.2, callout_reorder_rate=0.2)
    await asyncio.sleep(4)
    sim.clear_faults()


async def webhook_deactivated(_rig: Rig, sim: Simulator) -> None:
    hook = _deactivate_ticket_webhook(sim)
    await _reactivated(sim, hook, within=timedelta(seconds=20))


def _deactivate_ticket_webhook(sim: Simulator) -> int:
    hook = sim.state.webhook_list("TicketWebhooks")[0]
    sim.state.webhooks.deactivate("TicketWebhooks", hook["id"], "auto")
    return int(hook["id"])


async def _reactivated(sim: Simulator, hook: int, *, within: timedelta) -> None:
    """The provisioner reactivates the webhook (and asks for a catch-up sweep)."""

    def active() -> bool:
        current = {h["id"]: h for h in sim.state.webhook_list("TicketWebhooks")}
        return bool(current[hook]["isActive"])

    await eventually(
        active,
        within=within,
        interval=timedelta(milliseconds=100),
        what="the deactivated webhook to be reactivated",
    )


async def zone_move(_rig: Rig, sim: Simulator) -> None:
    sim.move_zone(15)


async def everything(rig: Rig, sim: Simulator) -> None:
    sim.set_faults(callout_drop_rate=0.1, callout_duplicate_rate=0.1, rate_429=0.2)
    await asyncio.gather(kafka_restart(rig, sim), worker_kill(rig, sim))
    hook = _deactivate_ticket_webhook(sim)
    sim.clear_faults()
    # A 429 stops the connection's calls for AUTOTASK_SYNC_API_RATE_LIMIT_PAUSE, the
    # provisioner's too: the reactivation comes after that pause.
    await _reactivated(sim, hook, within=timedelta(seconds=120))


SCENARIOS = [
    Scenario("Kafka stopped and restarted", kafka_restart),
    Scenario("PostgreSQL stopped and restarted", postgres_restart),
    Scenario("gateway SIGKILLed and restarted", gateway_kill),
    Scenario("worker SIGKILLed mid-batch", worker_kill),
    Scenario("Autotask 429 storm, 500s, latency", api_storms),
    Scenario("callouts dropped, duplicated, reordered", callout_faults, lossy=True),
    Scenario("webhook deactivated by Autotask", webhook_deactivated),
    Scenario("zone move", zone_move),
    Scenario("all of them at once", everything, lossy=True),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.inject.__name__)
async def test_the_pipeline_recovers_exactly(rig: Rig, scenario: Scenario) -> None:
    row = await run(rig, scenario)
    assert row.lost == 0
