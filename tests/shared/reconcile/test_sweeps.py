"""Backfill, incremental sweeps, delete logs and unresolved ids against the simulator, with real
PostgreSQL and Kafka: the mirror ends equal to the tenant and the runs say what they repaired."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from shared.entities import COMPANIES, CONTRACTS, REGISTRY, RESOURCES, TICKET_NOTES, TICKETS
from shared.reconcile import unresolved
from shared.scope.rules import SyncScope
from tests.helpers.clients import truth
from tests.helpers.pipeline import read_topic, tenant_state
from tests.shared.reconcile.rig import CONNECTION, Rig, reconcile_rig
from tools.autotask_sim import Simulator, SimulatorConfig

pytestmark = pytest.mark.integration

SYNCED = list(REGISTRY)


@pytest.fixture
def sim_config() -> SimulatorConfig:
    return SimulatorConfig(
        seed=31, companies=20, contacts=25, configuration_items=15, tickets=120,
        ticket_notes=150, contracts=12,
    )  # fmt: skip


@pytest.fixture
async def rig(migrated_database: str, kafka_bootstrap: str, unique: str, sim: Simulator
              ) -> AsyncIterator[Rig]:  # fmt: skip
    async with reconcile_rig(migrated_database, kafka_bootstrap, unique, sim) as r:
        yield r


async def _backfill_all(rig: Rig) -> None:
    for spec in SYNCED:
        result = await rig.run(spec, "backfill")
        assert result.outcome == "succeeded", result.message


async def test_backfill_loads_every_entity_and_is_announced(rig: Rig) -> None:
    await _backfill_all(rig)
    assert await rig.diff(*SYNCED) == {}
    tickets = await rig.fetch(
        "SELECT fetched, created, api_calls, pages, status FROM sync_runs "
        "WHERE entity = 'Tickets' AND mode = 'backfill'"
    )
    assert tickets[0]["created"] == len(truth(rig.sim, "Tickets"))
    assert tickets[0]["api_calls"] == tickets[0]["pages"] + 1  # + one count
    control = await read_topic(rig.bootstrap, rig.topics.control)
    finished = [json.loads(m.value) for m in control]
    assert {e["entity"] for e in finished if e["type"] == "backfill_finished"} == {
        s.rest_name for s in SYNCED
    }


async def test_incremental_sweep_repairs_exactly_what_changed(rig: Rig) -> None:
    await _backfill_all(rig)
    before = tenant_state(rig.sim, SYNCED)
    rig.sim.apply_changes(60, seed=4)  # no callouts reach anyone: every change is missed
    first = rig.sim.state.entities("Contracts")[0]
    rig.sim.update_entity("Contracts", first["id"], {"contractName": "Renamed in the UI"})
    after = tenant_state(rig.sim, SYNCED)
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    repaired = 0
    for spec in SYNCED:
        result = await rig.run(spec, "incremental")
        assert result.outcome == "succeeded", result.message
        assert result.run is not None
        repaired += result.run.counts.repaired
    assert await rig.diff(*SYNCED) == {}
    assert repaired == len(changed)
    # A second sweep finds nothing more to repair.
    again = [await rig.run(spec, "incremental", trigger="schedule") for spec in SYNCED]
    assert sum(r.run.counts.repaired for r in again if r.run) == 0


async def test_a_note_added_moves_its_ticket_and_the_sweep_follows(rig: Rig) -> None:
    await _backfill_all(rig)
    ticket = truth(rig.sim, "Tickets")[5]
    rig.sim.create_entity(
        "TicketNotes",
        {"ticketID": ticket["id"], "title": "t", "description": "d", "noteType": 1, "publish": 1},
    )
    await rig.run(TICKETS, "incremental")
    await rig.run(TICKET_NOTES, "incremental")
    assert await rig.diff(TICKETS, TICKET_NOTES) == {}


async def test_deleted_tickets_and_notes_come_from_the_delete_logs(rig: Rig) -> None:
    await _backfill_all(rig)
    tickets = truth(rig.sim, "Tickets")
    notes = truth(rig.sim, "TicketNotes")
    with_notes = next(t for t in tickets if any(n["ticketID"] == t["id"] for n in notes))
    rig.sim.delete_entity("Tickets", with_notes["id"])  # its notes go with it, unlogged
    lone_note = next(n for n in notes if n["ticketID"] != with_notes["id"])
    rig.sim.delete_entity("TicketNotes", lone_note["id"])
    ticket_run = await rig.run(TICKETS, "incremental")
    note_run = await rig.run(TICKET_NOTES, "incremental")
    assert await rig.diff(TICKETS, TICKET_NOTES) == {}
    assert ticket_run.run is not None
    assert ticket_run.run.counts.deleted == 1
    gone_notes = 1 + sum(1 for n in notes if n["ticketID"] == with_notes["id"])
    assert note_run.run is not None
    assert note_run.run.counts.deleted == gone_notes
    events = await read_topic(rig.bootstrap, rig.topics.changes(TICKETS))
    assert [m.value for m in events if json.loads(m.key)["id"] == with_notes["id"]][-1] is None


async def test_unresolved_ids_are_read_and_resolved(rig: Rig) -> None:
    await _backfill_all(rig)
    owner = truth(rig.sim, "Resources")[2]["id"]
    company = rig.sim.create_entity(
        "Companies",
        {"companyName": "Late Ltd", "companyType": 1, "phone": "1", "ownerResourceID": owner},
    )
    async with rig.pool.acquire() as db:
        await unresolved.record(db, CONNECTION, "Companies", [company["id"], 999_999], reason="x")
    result = await rig.run(COMPANIES, "incremental")
    assert result.outcome == "succeeded"
    assert company["id"] in await rig.live(COMPANIES)
    async with rig.pool.acquire() as db:
        assert await unresolved.pending(db, CONNECTION, "Companies") == []


async def test_resources_without_a_watermark_are_read_whole(rig: Rig) -> None:
    await rig.run(RESOURCES, "backfill")
    someone = truth(rig.sim, "Resources")[3]
    rig.sim.update_entity("Resources", someone["id"], {"title": "Team lead"})
    result = await rig.run(RESOURCES, "incremental")
    assert result.run is not None
    assert result.run.counts.repaired == 1
    assert await rig.diff(RESOURCES) == {}


async def test_scope_is_judged_like_the_worker(
    migrated_database: str, kafka_bootstrap: str, unique: str, sim: Simulator
) -> None:
    scope = SyncScope.parse({"entities": ["Tickets", "Contracts", "Companies"],
                             "companies": {"company_types": [1]}})  # fmt: skip
    async with reconcile_rig(migrated_database, kafka_bootstrap, unique, sim, scope=scope) as rig:
        loaded = {spec: await rig.run(spec, "backfill") for spec in (TICKETS, COMPANIES, CONTRACTS)}
        customers = {c["id"] for c in truth(sim, "Companies") if c["companyType"] == 1}
        assert await rig.live(COMPANIES) == customers
        contracts = {c["id"] for c in truth(sim, "Contracts") if c["companyID"] in customers}
        assert await rig.live(CONTRACTS) == contracts
        # The rows read and kept out are counted as out of scope, not as unchanged.
        others = len(truth(sim, "Companies")) - len(customers)
        assert others > 0
        first = loaded[COMPANIES].run
        assert first is not None
        assert (first.counts.created, first.counts.out_of_scope) == (len(customers), others)
        again = (await rig.run(COMPANIES, "full")).run
        assert again is not None
        counts = again.counts
        assert (counts.unchanged, counts.out_of_scope) == (len(customers), others)
        assert counts.deleted == counts.created == counts.updated == 0
        with pytest.raises(Exception, match="does not sync Contacts"):
            await rig.run("Contacts", "incremental")
