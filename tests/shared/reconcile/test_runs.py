"""One sweeper per connection and entity across replicas, the two-minute duplicate rule, the
run records, and the PSA metadata refresh."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from shared.db.locks import AdvisoryLock, lock_key
from shared.entities import COMPANIES, TICKETS
from shared.reconcile import runs
from shared.reconcile.due import Job
from shared.reconcile.jobs import Options
from tests.helpers.clients import truth
from tests.shared.reconcile.rig import CONNECTION, Rig, reconcile_rig
from tools.autotask_sim import Simulator, SimulatorConfig
from tools.autotask_sim.catalog.picklists import TICKET_STATUS

pytestmark = pytest.mark.integration


@pytest.fixture
def sim_config() -> SimulatorConfig:
    return SimulatorConfig(seed=51, companies=10, contacts=5, configuration_items=2,
                           tickets=60, ticket_notes=10)  # fmt: skip


@pytest.fixture
async def rig(migrated_database: str, kafka_bootstrap: str, unique: str, sim: Simulator
              ) -> AsyncIterator[Rig]:  # fmt: skip
    async with reconcile_rig(migrated_database, kafka_bootstrap, unique, sim, page_size=5) as r:
        yield r


async def test_two_sweepers_of_one_entity_only_one_runs(rig: Rig) -> None:
    rig.sim.set_faults(latency=timedelta(milliseconds=40))  # 12 pages: long enough to overlap
    replicas = [rig.reconciler(), rig.reconciler()]
    results = await asyncio.gather(
        *(rig.run(TICKETS, "backfill", trigger="schedule", reconciler=r) for r in replicas)
    )
    assert sorted(r.outcome for r in results) == ["locked", "succeeded"]
    assert len(await rig.fetch("SELECT id FROM sync_runs WHERE mode = 'backfill'")) == 1
    # Another entity is not blocked by it.
    results = await asyncio.gather(
        rig.run(TICKETS, "incremental", trigger="schedule", reconciler=replicas[0]),
        rig.run(COMPANIES, "backfill", trigger="schedule", reconciler=replicas[1]),
    )
    assert [r.outcome for r in results] == ["succeeded", "succeeded"]


async def test_a_lock_held_by_a_dead_process_is_free_again(rig: Rig) -> None:
    key = lock_key("sweep", CONNECTION, "Tickets")
    holder = AdvisoryLock(rig.dsn, key)
    assert await holder.try_acquire()
    assert (await rig.run(TICKETS, "backfill", trigger="schedule")).outcome == "locked"
    assert holder._connection is not None
    holder._connection.terminate()  # the session ends as when its process is SIGKILLed
    assert (await rig.run(TICKETS, "backfill", trigger="schedule")).outcome == "succeeded"


async def test_a_duplicate_quick_sync_within_two_minutes_runs_once(rig: Rig) -> None:
    await rig.run(TICKETS, "backfill")
    first = await rig.run(TICKETS, "incremental")
    second = await rig.run(TICKETS, "incremental")
    assert first.outcome == "succeeded"
    assert second.outcome == "skipped"
    assert "within 2 minutes runs once" in second.message
    assert second.run is not None
    assert second.run.detail == {"duplicate_of": first.run.id}
    # Another mode, or a request after the window, runs.
    assert (await rig.run(TICKETS, "full")).outcome == "succeeded"
    later = Job(CONNECTION, "Tickets", "incremental", "cli",
                requested_at=datetime.now(UTC) + timedelta(minutes=3))  # fmt: skip
    assert (await rig.reconcilers[0].run(later)).outcome == "succeeded"
    # The schedule is not a request: it runs on its own clock, unless another replica ran the
    # mode after the scheduler looked.
    async with rig.pool.acquire() as db:
        seen = (await runs.last_runs(db))[(CONNECTION, "Tickets", "incremental")][0]
    scheduled = Job(CONNECTION, "Tickets", "incremental", last_seen=seen)
    assert (await rig.reconcilers[0].run(scheduled)).outcome == "succeeded"
    assert (await rig.reconcilers[0].run(scheduled)).outcome == "not_due"


async def test_a_request_waiting_for_the_lock_runs_once_with_its_twin(rig: Rig) -> None:
    rig.sim.set_faults(latency=timedelta(milliseconds=40))
    await rig.run(TICKETS, "backfill")
    waiting = Options(wait=timedelta(seconds=30))
    results = await asyncio.gather(
        rig.run(TICKETS, "full", options=waiting, reconciler=rig.reconciler()),
        rig.run(TICKETS, "full", options=waiting, reconciler=rig.reconciler()),
    )
    assert sorted(r.outcome for r in results) == ["skipped", "succeeded"]


async def test_runs_are_recorded_with_their_counts_and_a_dead_run_is_closed(rig: Rig) -> None:
    async with rig.pool.acquire() as db:
        stale = await runs.start(db, connection=CONNECTION, entity="Tickets", mode="backfill",
                                 trigger="schedule", requested_at=datetime.now(UTC))  # fmt: skip
    result = await rig.run(TICKETS, "backfill")
    assert result.run is not None
    async with rig.pool.acquire() as db:
        dead = await runs.get(db, stale.id)
        last = await runs.last_runs(db)
    assert dead is not None
    assert dead.status == "failed"
    assert "stopped" in (dead.error or "")
    run = result.run
    assert run.status == "succeeded"
    assert run.finished_at is not None
    assert run.counts.pages == 12
    assert run.counts.api_calls == 13
    assert run.counts.fetched == 60
    assert last[(CONNECTION, "Tickets", "backfill")][1] == "succeeded"


async def test_metadata_labels_follow_the_psa(rig: Rig) -> None:
    await rig.run(TICKETS, "backfill")
    result = await rig.run("*", "metadata")
    assert result.outcome == "succeeded", result.message
    status_complete = await rig.fetch(
        "SELECT label, is_active FROM psa_picklists WHERE connection = $1 AND entity = 'Tickets' "
        "AND field = 'status' AND value = '5'",
        CONNECTION,
    )
    assert [tuple(r) for r in status_complete] == [("Complete", True)]
    udfs = await rig.fetch("SELECT name FROM psa_udf_definitions WHERE entity = 'Tickets'")
    assert {r["name"] for r in udfs} == {"External Reference", "Customer Impact"}
    ticket = next(t for t in truth(rig.sim, "Tickets") if t["status"] == 5)
    labeled = await rig.fetch(
        "SELECT status_label FROM autotask.tickets_labeled WHERE id = $1", ticket["id"]
    )
    assert labeled[0]["status_label"] == "Complete"

    # A person renames the status in Autotask; the next refresh shows it.
    with _renamed_status(5, "Done"):
        again = Job(CONNECTION, "*", "metadata", "cli",
                    requested_at=datetime.now(UTC) + timedelta(minutes=3))  # fmt: skip
        assert (await rig.reconcilers[0].run(again)).outcome == "succeeded"
    labeled = await rig.fetch(
        "SELECT status_label FROM autotask.tickets_labeled WHERE id = $1", ticket["id"]
    )
    assert labeled[0]["status_label"] == "Done"


@contextmanager
def _renamed_status(value: int, label: str) -> Iterator[None]:
    """Rename a ticket status in the simulated tenant's picklist, as an admin would in the UI.

    The simulator has no control for picklist edits, and its picklists are shared constants,
    so the label is changed in place and put back afterwards.
    """
    [entry] = [p for p in TICKET_STATUS if p.value == value]
    old = entry.label
    object.__setattr__(entry, "label", label)
    try:
        yield
    finally:
        object.__setattr__(entry, "label", old)
