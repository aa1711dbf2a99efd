"""Rebalances and progress of the worker as real processes: scaling up and a rolling stop evict
nobody, revokes take a fraction of their wait because revoked partitions' buckets are fetched at
once, each partition's lag is exported by its owner alone, and a worker that gets nothing done
says so on ``/readyz``. The revoke flush rule itself is checked on the pure coalescer first.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from services.sync_worker.coalesce import Coalescer, Item
from services.sync_worker.pipeline import AUTOTASK_WAIT
from shared.entities import COMPANIES, CONFIGURATION_ITEMS, CONTACTS, TICKET_NOTES, TICKETS
from tests.helpers.clients import truth
from tests.helpers.pipeline import (
    callouts_for,
    produce_callouts,
    tenant_state,
    wait_for_mirror,
)
from tests.helpers.processes import ServiceProcess, metric_total
from tests.helpers.tenants import small_tenant, tenants
from tests.helpers.waiting import eventually
from tests.services.sync_worker.conftest import Deployment, deployed

ENTITIES = [TICKETS, COMPANIES, CONTACTS, CONFIGURATION_ITEMS, TICKET_NOTES]
PARTITIONS = 6
WAIT = timedelta(seconds=60)
"""Upper bound on any wait for the workers (a hang fails, never blocks)."""

REVOKE_WAIT = timedelta(seconds=15)
REBALANCE = {
    # Long windows: when a rebalance comes, the revoked partitions' callouts are still in their
    # buckets, and a revoke that waited for the windows would take its whole REVOKE_WAIT.
    "AUTOTASK_SYNC_WINDOW_LOW": "2m",
    "AUTOTASK_SYNC_REVOKE_WAIT": f"{REVOKE_WAIT.total_seconds():g}s",
    "AUTOTASK_SYNC_CONSUMER_HEARTBEAT_INTERVAL": "500ms",
    "AUTOTASK_SYNC_CONSUMER_SESSION_TIMEOUT": "6s",
    "AUTOTASK_SYNC_CONSUMER_REBALANCE_TIMEOUT": "30s",
}


# --- the flush rule (pure) -----------------------------------------------------------------------
class _Message:
    def __init__(self, partition: int) -> None:
        self.topic, self.partition = "callouts", partition


def test_a_revoke_flush_takes_only_the_buckets_holding_messages_of_the_revoked_partitions() -> None:
    coalescer = Coalescer(max_ids=10)
    now = datetime.now(UTC)
    for entity, partition, entity_id in ((TICKETS, 0, 1), (TICKETS, 1, 2), (COMPANIES, 1, 3)):
        coalescer.add("acme", entity, Item(_Message(partition), entity_id, False, now), now=0.0)
    coalescer.add("beta", CONTACTS, Item(_Message(2), 4, False, now), now=0.0)

    units = coalescer.flush(holding=lambda message: message.partition == 0)

    # The tickets bucket holds a message of partition 0: all of it goes, partition 1's too (one
    # fetch); the buckets without one keep their window.
    assert [(u.connection, u.entity.rest_name, u.fetch_ids) for u in units] == [
        ("acme", "Tickets", [1, 2])
    ]
    assert coalescer.waiting == 2
    assert sorted(u.entity.rest_name for u in coalescer.flush()) == ["Companies", "Contacts"]


# --- real workers --------------------------------------------------------------------------------
@pytest_asyncio.fixture
async def wide(
    migrated_database: str, kafka_bootstrap: str, unique: str, tmp_path: Path
) -> AsyncIterator[Deployment]:
    """A deployment whose callouts topic has enough partitions for three workers."""
    async with deployed(
        migrated_database, kafka_bootstrap, unique, tmp_path, partitions=PARTITIONS
    ) as setup:
        yield setup


def _lag_partitions(metrics: str) -> list[int]:
    """The partitions whose lag a worker exports."""
    return [
        int(match[1])
        for match in re.finditer(
            r'^autotask_sync_worker_consumer_lag\{[^}]*partition="(\d+)"', metrics, re.M
        )
    ]


async def _owners_export_apart(workers: list[ServiceProcess]) -> None:
    """Until every partition's lag is exported by exactly one of ``workers``, each of them
    exporting some: a worker exports only the partitions it owns."""

    async def apart() -> bool:
        exported = [_lag_partitions(await w.metrics()) for w in workers]
        flat = sorted(p for partitions in exported for p in partitions)
        assert flat == list(range(PARTITIONS)), f"lag exported per worker: {exported}"
        assert all(exported), f"a worker owns nothing: {exported}"
        return True

    await eventually(
        apart, within=WAIT, interval=timedelta(seconds=1), what="one exporter per partition"
    )


async def _revokes(worker: ServiceProcess) -> tuple[float, float, float]:
    """Revokes the worker made, how many of them within 10 s, and its evictions."""
    metrics = await worker.metrics()
    seconds = metric_total(metrics, "autotask_sync_consumer_revoke_seconds_sum")
    print(f"\n{worker.log_path}: revokes took {seconds:.3f} s in all")
    return (
        metric_total(metrics, "autotask_sync_consumer_revoke_seconds_count"),
        metric_total(metrics, "autotask_sync_consumer_revoke_seconds_bucket", le="10.0"),
        metric_total(metrics, "autotask_sync_consumer_evictions_total"),
    )


@pytest.mark.integration
@pytest.mark.timeout(240)
async def test_scaling_to_three_workers_and_a_rolling_stop_evict_nobody_and_lose_nothing(
    wide: Deployment,
) -> None:
    async with tenants(small_tenant(31, companies=40, tickets=300)) as (sim,):
        await wide.connect("acme", sim)
        # Slow fetches: a revoke has real work to wait for.
        sim.set_faults(latency=timedelta(milliseconds=100))
        everything = [
            (entity.rest_name, "update", row["id"])
            for entity in ENTITIES
            for row in truth(sim, entity.rest_name)
        ]
        first = await wide.worker(**REBALANCE)
        await produce_callouts(wide.bootstrap, wide.topics, "acme", everything)
        await eventually(
            lambda: _consumed(first, len(everything)), within=WAIT, what="the callouts consumed"
        )

        # Scale to two, then three, while the first holds every callout in its buckets.
        second = await wide.worker(**REBALANCE)
        await _owners_export_apart([first, second])
        before = tenant_state(sim, ENTITIES)
        sim.apply_changes(150, seed=3)
        churn = callouts_for(before, tenant_state(sim, ENTITIES))
        await produce_callouts(wide.bootstrap, wide.topics, "acme", churn)
        third = await wide.worker(**REBALANCE)
        await _owners_export_apart([first, second, third])

        # A rolling update: the first one goes; the other two take its partitions.
        made, quick, evicted = await _revokes(first)
        assert made >= 2
        assert evicted == 0
        assert await first.stop() == 0
        await _owners_export_apart([second, third])
        for worker in (second, third):
            made_here, quick_here, evicted_here = await _revokes(worker)
            assert made_here >= 1
            assert evicted_here == 0
            made, quick = made + made_here, quick + quick_here
        # Each revoke fetched its partitions' buckets at once (about a second here) instead of
        # waiting its 15 s for windows of two minutes.
        assert quick == made, f"{made - quick} of {made} revokes took over 10 s"

        # Stops flush what the windows still hold: the mirror is the tenant, nothing lost.
        for worker in (second, third):
            assert await worker.stop() == 0
        assert await wait_for_mirror(wide.dsn, "acme", sim, ENTITIES) == {}


async def _consumed(worker: ServiceProcess, count: int) -> bool:
    got = await worker.metric("autotask_sync_worker_callouts_total")
    assert got == count, f"{got:g} of {count} consumed"
    return True


async def _readyz(worker: ServiceProcess) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{worker.ops_url}/readyz") as response,
    ):
        return response.status, await response.json()


@pytest.mark.integration
@pytest.mark.timeout(150)
async def test_readyz_fails_with_the_reason_while_callouts_wait_on_autotask_healthz_does_not(
    deployment: Deployment,
) -> None:
    async with tenants(small_tenant(32)) as (sim,):
        await deployment.connect("acme", sim)
        worker = await deployment.worker(
            AUTOTASK_SYNC_STALL_UNREADY_AFTER="2s",
            AUTOTASK_SYNC_STALL_UNHEALTHY_AFTER="4s",
            AUTOTASK_SYNC_RETRY_DELAY_MAX="500ms",
            # The outage lasts as long as the test needs: nothing is dead-lettered meanwhile.
            AUTOTASK_SYNC_DEAD_LETTER_MIN_AGE="10m",
        )
        sim.set_faults(outage="503")
        tickets = [("Tickets", "update", row["id"]) for row in truth(sim, "Tickets")]
        await produce_callouts(deployment.bootstrap, deployment.topics, "acme", tickets)

        async def unready() -> dict[str, Any]:
            status, body = await _readyz(worker)
            assert status == 503, (status, body)
            return body

        body = await eventually(
            unready, within=WAIT, interval=timedelta(milliseconds=250), what="/readyz 503"
        )
        # PostgreSQL and Kafka answer; the part with work and no progress is named, and why.
        assert set(body["failing"]) == {"callouts"}, body
        assert "callouts waiting and nothing done" in body["failing"]["callouts"], body

        # Stalled past the liveness bound too, but the fetches wait on Autotask (down): a
        # restart would not cure that, so the worker stays alive.
        async def stalled_on_autotask() -> bool:
            stalled = await worker.metric("autotask_sync_stalled_seconds", part="callouts")
            return stalled > AUTOTASK_WAIT.total_seconds() + 2

        await eventually(stalled_on_autotask, within=WAIT, what="a stall on Autotask")
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{worker.ops_url}/healthz") as response,
        ):
            assert response.status == 200, await response.text()

        sim.clear_faults()

        async def ready() -> bool:
            status, body = await _readyz(worker)
            assert status == 200, (status, body)
            return True

        await eventually(ready, within=WAIT, interval=timedelta(milliseconds=250), what="ready")
        assert await wait_for_mirror(deployment.dsn, "acme", sim, [TICKETS]) == {}
