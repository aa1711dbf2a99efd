"""The whole pipeline as it runs in production, on this machine: simulated tenants sign callouts
to the real gateway, Kafka carries them, the worker fetches and writes the mirror and the change
topics; webhooks come from the provisioner, the first load from a backfill.

simulator -> gateway (process) -> Kafka -> worker (process) -> PostgreSQL + change topics
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio

from tests.e2e.harness import ENTITIES, Pipeline, callout_tenant, pipeline_for
from tests.helpers.clients import truth
from tests.helpers.contracts import assert_valid
from tests.helpers.pipeline import read_topic, replay_changes
from tools.autotask_sim import Simulator, run_simulator

pytestmark = pytest.mark.e2e


@pytest_asyncio.fixture
async def pipeline(migrated_database, kafka_bootstrap, unique, tmp_path) -> AsyncIterator[Pipeline]:
    async with pipeline_for(migrated_database, kafka_bootstrap, unique, tmp_path) as running:
        yield running


async def test_two_tenants_converge_through_the_whole_pipeline(pipeline: Pipeline):
    async with (
        run_simulator(callout_tenant(31)) as alpha,
        run_simulator(callout_tenant(32, companies=14)) as beta,
    ):
        tenants: dict[str, Simulator] = {"alpha": alpha, "beta": beta}
        for name, sim in tenants.items():
            await pipeline.connect(name, sim)
        await pipeline.start_services()
        for name in tenants:
            await pipeline.provision(name)
            await pipeline.backfill(name, ENTITIES)
        for sim in tenants.values():
            sim.apply_changes(120, seed=7)
            await sim.wait_for_callouts(max_wait=timedelta(seconds=30))
        for name, sim in tenants.items():
            await pipeline.converges(name, sim)

        # Every callout the gateway accepted is on the callouts topic, told apart by connection.
        callouts = await read_topic(pipeline.bootstrap, pipeline.topics.callouts)
        by_connection = {dict(m.headers)["connection"].decode() for m in callouts}
        assert by_connection == {"alpha", "beta"}
        assert assert_valid(pipeline.topics.callouts, callouts) == len(callouts)
        # The change topics follow the contract and rebuild exactly the mirror.
        for entity in ENTITIES:
            topic = pipeline.topics.changes(entity)
            messages = await read_topic(pipeline.bootstrap, topic)
            assert_valid(topic, messages)
            replayed = await replay_changes(pipeline.bootstrap, topic)
            for name, sim in tenants.items():
                mine = {i: row for (c, i), row in replayed.items() if c == name}
                assert mine == {r["id"]: r for r in truth(sim, entity.rest_name)}, (name, entity)


async def test_duplicated_and_reordered_callouts_change_nothing(pipeline: Pipeline):
    async with run_simulator(callout_tenant(33)) as sim:
        await pipeline.connect("acme", sim)
        await pipeline.start_services()
        await pipeline.provision("acme")
        await pipeline.backfill("acme", ENTITIES)
        sim.set_faults(callout_duplicate_rate=0.3, callout_reorder_rate=0.3)
        sim.apply_changes(150, seed=8)
        await sim.wait_for_callouts(max_wait=timedelta(seconds=30))
        await pipeline.converges("acme", sim)
        counters = sim.state.dispatcher.counters
        assert counters["duplicated"] > 0  # the faults really happened
        assert counters["reordered"] > 0
