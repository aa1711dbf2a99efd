"""Delete detection by id sweep and resync: deletes without callouts are found, a partial read
deletes nothing, a mass disappearance is refused and reported."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY as METRICS

from shared.entities import COMPANIES, CONTACTS, TICKETS
from shared.reconcile.jobs import Options
from tests.helpers.clients import truth
from tests.helpers.pipeline import read_topic
from tests.shared.reconcile.rig import CONNECTION, Rig, reconcile_rig
from tools.autotask_sim import Simulator, SimulatorConfig

pytestmark = pytest.mark.integration


@pytest.fixture
def sim_config() -> SimulatorConfig:
    return SimulatorConfig(seed=41, companies=60, contacts=60, configuration_items=5,
                           tickets=80, ticket_notes=20)  # fmt: skip


@pytest.fixture
async def rig(migrated_database: str, kafka_bootstrap: str, unique: str, sim: Simulator
              ) -> AsyncIterator[Rig]:  # fmt: skip
    # Pages of 10 so an id walk of 60 companies has six pages.
    async with reconcile_rig(migrated_database, kafka_bootstrap, unique, sim, page_size=10) as r:
        for spec in (COMPANIES, CONTACTS):
            assert (await r.run(spec, "backfill")).outcome == "succeeded"
        yield r


def _refused(entity: str) -> float:
    value = METRICS.get_sample_value(
        "autotask_sync_sweep_mass_delete_refused_total",
        {"connection": CONNECTION, "entity": entity},
    )
    return value or 0.0


async def test_id_sweep_finds_companies_and_contacts_deleted_without_callouts(rig: Rig) -> None:
    companies = [c["id"] for c in truth(rig.sim, "Companies")][10:13]
    contacts = [c["id"] for c in truth(rig.sim, "Contacts")][20:22]
    for company in companies:
        rig.sim.delete_entity("Companies", company)
    for contact in contacts:
        rig.sim.delete_entity("Contacts", contact)
    for spec, gone in ((COMPANIES, companies), (CONTACTS, contacts)):
        result = await rig.run(spec, "ids")
        assert result.outcome == "succeeded", result.message
        assert result.run is not None
        assert result.run.counts.deleted == len(gone) == result.run.counts.repaired
    assert await rig.diff(COMPANIES, CONTACTS) == {}
    events = await read_topic(rig.bootstrap, rig.topics.changes(COMPANIES))
    deletes = [json.loads(m.key)["id"] for m in events if m.value and b'"op":"d"' in m.value]
    assert sorted(deletes) == sorted(companies)


async def test_a_row_created_during_the_walk_is_not_deleted(rig: Rig) -> None:
    # In the mirror but not in the walk's pages: the confirming `in` query finds it.
    owner = truth(rig.sim, "Resources")[2]["id"]
    body = {"companyName": "New Co", "companyType": 1, "phone": "1", "ownerResourceID": owner}

    class CreateDuringWalk:
        def started(self, *, what: str, total: int | None) -> None: ...
        def finished(self) -> None: ...

        def advanced(self, *, rows: int, pages: int) -> None:
            nonlocal created
            if created is None:
                created = rig.sim.create_entity("Companies", body)["id"]

    created: int | None = None
    result = await rig.run(COMPANIES, "ids", options=Options(progress=CreateDuringWalk()))
    assert created is not None
    # The worker mirrors it (here: a sweep), then an id sweep whose walk ended before it.
    await rig.run(COMPANIES, "incremental")
    assert created in await rig.live(COMPANIES)
    assert result.run is not None
    assert result.run.counts.deleted == 0


async def test_an_error_on_page_three_deletes_nothing(rig: Rig) -> None:
    for company in [c["id"] for c in truth(rig.sim, "Companies")][30:33]:
        rig.sim.delete_entity("Companies", company)
    before = await rig.live(COMPANIES)

    class FailPageThree:
        def started(self, *, what: str, total: int | None) -> None: ...
        def finished(self) -> None: ...

        def advanced(self, *, rows: int, pages: int) -> None:
            self.pages = getattr(self, "pages", 0) + pages
            if self.pages == 2:
                rig.sim.set_faults(rate_500=1.0, endpoints=["Companies"])

    result = await rig.run(COMPANIES, "ids", options=Options(progress=FailPageThree()))
    rig.sim.clear_faults()
    assert result.outcome == "failed"
    assert result.run is not None
    assert result.run.counts.pages == 2
    assert "AutotaskServerError" in (result.run.error or "")
    assert await rig.live(COMPANIES) == before  # nothing deleted
    # Once the API answers again, the next sweep deletes them.
    assert (await rig.run(COMPANIES, "ids")).run.counts.deleted == 3  # type: ignore[union-attr]


async def test_a_mass_disappearance_is_refused_and_reported(rig: Rig, caplog) -> None:
    ids = [c["id"] for c in truth(rig.sim, "Companies")]
    for company in ids[: len(ids) // 2]:
        rig.sim.delete_entity("Companies", company)
    refused = _refused("Companies")
    before = await rig.live(COMPANIES)
    result = await rig.run(COMPANIES, "ids")
    assert result.outcome == "aborted"
    assert result.run is not None
    assert result.run.status == "aborted"
    assert "mass-delete guard" in (result.run.error or "")
    assert result.run.detail["candidates"] == len(ids) // 2
    assert await rig.live(COMPANIES) == before
    assert _refused("Companies") == refused + 1
    # A person who checked can let it through for one run.
    allowed = await rig.run(COMPANIES, "ids", options=Options(max_delete_share=1.0))
    assert allowed.run is not None
    assert allowed.run.counts.deleted == len(ids) // 2
    assert await rig.diff(COMPANIES) == {}


async def test_resync_rebuilds_with_events_only_for_real_changes(rig: Rig) -> None:
    await rig.run(TICKETS, "backfill")
    tickets = truth(rig.sim, "Tickets")
    rig.sim.update_entity("Tickets", tickets[0]["id"], {"title": "Changed behind our back"})
    rig.sim.state.tenant.require("Tickets").remove(tickets[1]["id"])  # gone without any log
    before = len(await read_topic(rig.bootstrap, rig.topics.changes(TICKETS)))
    result = await rig.run(TICKETS, "resync")
    assert result.outcome == "succeeded", result.message
    assert result.run is not None
    counts = result.run.counts
    assert (counts.updated, counts.deleted, counts.repaired) == (1, 1, 2)
    assert counts.unchanged == len(tickets) - 2
    assert await rig.diff(TICKETS) == {}
    after = await read_topic(rig.bootstrap, rig.topics.changes(TICKETS))
    assert len(after) - before == 3  # one update, one delete and its tombstone
    assert await rig.fetch("SELECT * FROM mirror_rebuild") == []
