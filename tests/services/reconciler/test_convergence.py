"""Acceptance: webhooks miss events, one incremental sweep makes the mirror equal the tenant, and
the repaired count is the number of entities whose last change was lost.

The worker runs as a real process and gets synthetic callouts, as the gateway would write them:
90% of them (10% dropped, as Autotask drops a callout after its retries), and none for tickets
while their webhook is deactivated. Deletes of companies and contacts are never the dropped
ones here: without a delete log only the id sweep can find those (tests/shared/reconcile/
test_deletes.py), not an incremental sweep.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.db import connect
from shared.entities import REGISTRY, TICKETS, EntitySpec
from shared.mirror.store import live_rows
from shared.secrets import SecretBox
from tests.helpers.clients import truth
from tests.helpers.pipeline import callouts_for, produce_callouts, tenant_state
from tests.helpers.processes import ServiceProcess
from tests.helpers.tenants import store_connection
from tests.helpers.waiting import eventually
from tests.shared.reconcile.rig import CONNECTION, reconcile_rig
from tools.autotask_sim import Simulator, SimulatorConfig

pytestmark = pytest.mark.integration

ENTITIES = [s for s in REGISTRY if s.has_webhooks]
NO_DELETE_LOG = {"Companies", "Contacts", "ConfigurationItems"}
Key = tuple[str, int]


@pytest.fixture
def sim_config() -> SimulatorConfig:
    return SimulatorConfig(seed=61, companies=15, contacts=20, configuration_items=15,
                           tickets=80, ticket_notes=80)  # fmt: skip


async def _mirror(dsn: str, entities: Iterable[EntitySpec]) -> dict[Key, Any]:
    db = await connect(dsn)
    try:
        return {
            (spec.rest_name, i): row
            for spec in entities
            for i, row in (await live_rows(db, spec, CONNECTION)).items()
        }
    finally:
        await db.close()


def _differing(mirror: dict[Key, Any], tenant: dict[Key, Any]) -> set[Key]:
    return {k for k in mirror.keys() | tenant.keys() if mirror.get(k) != tenant.get(k)}


async def _settled(dsn: str, sim: Simulator, keys: set[Key]) -> None:
    tenant = tenant_state(sim, ENTITIES)

    async def applied() -> bool:
        mirror = await _mirror(dsn, ENTITIES)
        return all(mirror.get(k) == tenant.get(k) for k in keys)

    await eventually(
        applied,
        within=timedelta(seconds=30),
        interval=timedelta(milliseconds=100),
        what="the worker to apply the delivered callouts",
    )


async def test_one_incremental_sweep_repairs_what_the_webhooks_lost(
    sim: Simulator, migrated_database: str, kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    rng = random.Random(7)
    async with reconcile_rig(migrated_database, kafka_bootstrap, unique, sim) as rig:
        for spec in ENTITIES:
            assert (await rig.run(spec, "backfill")).outcome == "succeeded"
        key = SecretBox.generate_key()
        await store_connection(migrated_database, SecretBox([key]), CONNECTION, sim)
        worker = ServiceProcess(
            "sync_worker",
            {
                "DATABASE_URL": migrated_database,
                "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "AUTOTASK_SYNC_TOPIC_PREFIX": rig.topics.prefix,
                "AUTOTASK_SYNC_CONSUMER_GROUP": f"w-{unique}",
                "AUTOTASK_SYNC_SECRET_KEYS": key,
                "AUTOTASK_SYNC_WINDOW_LOW": "50ms",
                "AUTOTASK_SYNC_SWEEPS_ENABLED": "false",
            },
            log_path=tmp_path / "worker.log",
        )
        await worker.start()
        try:
            last_phase: dict[Key, bool] = {}  # key -> was its latest callout delivered
            for phase, (count, tickets_webhook_on) in enumerate(
                ((80, True), (60, False), (40, True)), start=1
            ):
                before = tenant_state(sim, ENTITIES)
                sim.apply_changes(count, seed=phase)
                changes = callouts_for(before, tenant_state(sim, ENTITIES))
                delivered = []
                for change in changes:
                    entity, action, entity_id = change
                    lost = (entity == TICKETS.rest_name and not tickets_webhook_on) or (
                        rng.random() < 0.1 and not (action == "delete" and entity in NO_DELETE_LOG)
                    )
                    last_phase[(entity, entity_id)] = not lost
                    if not lost:
                        delivered.append(change)
                await produce_callouts(kafka_bootstrap, rig.topics, CONNECTION, delivered)
                # The worker fetches current state: let it finish this phase before the next
                # one changes the tenant again.
                await _settled(migrated_database, sim, {(e, i) for e, _a, i in delivered})
            lost = {k for k, ok in last_phase.items() if not ok}
            assert len(lost) > 20  # the scenario really loses changes

            # Wait until the worker applied everything it was told: what still differs is
            # exactly what was lost, less what was created and deleted again unseen (neither
            # the mirror nor the tenant has it: nothing to repair).
            tenant = tenant_state(sim, ENTITIES)

            async def only_the_lost_differ() -> tuple[set[Key], set[Key]]:
                mirror = await _mirror(migrated_database, ENTITIES)
                vanished = {k for k in lost if k not in tenant and k not in mirror}
                differing = _differing(mirror, tenant)
                assert differing == lost - vanished, (differing, lost, vanished)
                return differing, vanished

            _, vanished = await eventually(
                only_the_lost_differ,
                within=timedelta(seconds=30),
                interval=timedelta(milliseconds=100),
            )

            repaired = 0
            for spec in ENTITIES:
                result = await rig.run(spec, "incremental", trigger="schedule")
                assert result.outcome == "succeeded", result.message
                assert result.run is not None
                repaired += result.run.counts.repaired
            print(f"\n{len(changes)} callouts in the last phase; lost the last change of "
                  f"{len(lost)} entities ({len(vanished)} created and deleted unseen); "
                  f"one sweep repaired {repaired}")  # fmt: skip
            assert await rig.diff(*ENTITIES) == {}
            assert repaired == len(lost - vanished)
        finally:
            await worker.stop()
        assert truth(sim, "Tickets")
