"""The seeded change generator: reproducible, rate-driven, and visible to sync and webhooks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import aiohttp

from tests.helpers.receiver import Receiver
from tests.helpers.simapi import Api, fast_config, make_webhook
from tests.helpers.waiting import eventually
from tools.autotask_sim import ChangeGeneratorConfig, Simulator, run_simulator

ANCHOR = datetime(2025, 6, 1, 12, 0, 0)


def _comparable(sim: Simulator) -> dict[str, list[dict[str, Any]]]:
    """Entities without the wall-clock stamps the changes set."""
    out = {}
    for entity in ("Tickets", "TicketNotes", "Companies", "Contacts", "ConfigurationItems"):
        rows = []
        for record in sim.state.entities(entity):
            rows.append(
                {k: v for k, v in record.items() if not isinstance(v, str) or not _is_stamp(v)}
            )
        out[entity] = rows
    return out


def _is_stamp(value: str) -> bool:
    return len(value) >= 23 and value[4] == "-" and value[10] == "T"


async def test_same_seed_same_changes(session: aiohttp.ClientSession) -> None:
    config = fast_config(anchor_time=ANCHOR, changes=ChangeGeneratorConfig(seed=99))
    async with run_simulator(config) as first, run_simulator(config) as second:
        applied_a = first.apply_changes(80)
        applied_b = second.apply_changes(80)
        assert applied_a == applied_b
        assert {c["action"] for c in applied_a} == {"create", "update", "delete"}
        assert len({c["entity"] for c in applied_a}) == 5
        assert not [c for c in applied_a if "error" in c]
        assert _comparable(first) == _comparable(second)
        other = first.apply_changes(20, seed=100)
        again = second.apply_changes(20, seed=100)
        assert other == again
        different = first.apply_changes(20, seed=101)
        assert different != second.apply_changes(20, seed=102)


async def test_rate_driven_run_matches_burst(session: aiohttp.ClientSession) -> None:
    config = fast_config(anchor_time=ANCHOR)
    async with run_simulator(config) as burst, run_simulator(config) as paced:
        expected = burst.apply_changes(25, seed=5)
        paced.start_changes(250.0, count=25, seed=5)
        await eventually(
            lambda: len(paced.state.changes.applied) == 25, within=timedelta(seconds=5)
        )
        assert paced.state.changes.applied == expected


async def test_rate_is_respected(sim: Simulator) -> None:
    loop_time = __import__("asyncio").get_running_loop().time
    start = loop_time()
    sim.start_changes(100.0, count=10)
    await eventually(lambda: len(sim.state.changes.applied) == 10, within=timedelta(seconds=5))
    assert loop_time() - start >= 0.09  # 10 changes at 100/s take at least ~0.09 s
    await sim.stop_changes()
    assert not sim.state.changes.running


async def test_generated_changes_fire_callouts_past_api_user_exclusion(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    await make_webhook(
        api,
        "TicketWebhooks",
        receiver.url("t"),
        subscribed=(
            "title",
            "status",
            "priority",
            "description",
            "queueID",
            "assignedResourceID",
            "dueDateTime",
        ),
        excluded=(sim.api_user_resource_id,),
    )
    applied = sim.apply_changes(60, seed=3)
    ticket_changes = [c for c in applied if c["entity"] == "Tickets" and "error" not in c]
    assert ticket_changes
    assert await sim.wait_for_callouts(timedelta(seconds=5))
    # Each (webhook, event type) queue keeps trigger order; types interleave freely.
    for action in ("Create", "Update", "Delete"):
        got = [r.json()["Id"] for r in receiver.requests if r.json()["Action"] == action]
        want = [c["id"] for c in ticket_changes if c["action"].capitalize() == action]
        if action != "Update":
            assert got == want
            continue
        # An update that happens to write the current value changes nothing and fires nothing.
        remaining = iter(want)
        assert all(i in remaining for i in got)
        assert len(got) >= 0.8 * len(want)
    assert all(r.json()["PersonID"] != sim.api_user_resource_id for r in receiver.requests)


async def test_generated_updates_are_found_by_watermark_queries(api: Api, sim: Simulator) -> None:
    newest = max(t["lastTrackedModificationDateTime"][:23] for t in sim.state.entities("Tickets"))
    applied = sim.apply_changes(40, seed=8)
    tickets = [c for c in applied if c["entity"] == "Tickets"]
    created = {c["id"] for c in tickets if c["action"] == "create"}
    updated = {c["id"] for c in tickets if c["action"] == "update"}
    deleted = {c["id"] for c in tickets if c["action"] == "delete"}
    assert created
    assert updated
    assert deleted
    flt = [{"op": "gt", "field": "lastTrackedModificationDateTime", "value": newest}]
    found = set(await api.ids("Tickets", flt))
    assert created - deleted <= found <= (created | updated) - deleted
    # Updates that rewrote an unchanged value are the only ones allowed to be missing.
    assert len(found & updated) >= 0.8 * len(updated - deleted)
    logs = await api.query("DeletedTicketLogs", [{"op": "gte", "field": "id", "value": 0}])
    assert {row["ticketID"] for row in logs.body["items"]} == deleted


async def test_admin_endpoints_drive_the_generator(api: Api, sim: Simulator) -> None:
    applied = await api.admin("POST", "changes/apply", {"count": 5, "seed": 1})
    assert applied.status == 200
    assert len(applied.body["items"]) == 5
    started = await api.admin("POST", "changes/start", {"rate": 200, "count": 10})
    assert started.body["running"] is True
    await eventually(lambda: len(sim.state.changes.applied) == 15, within=timedelta(seconds=5))
    stopped = await api.admin("POST", "changes/stop")
    assert stopped.body["running"] is False
    status = await api.admin("GET", "changes?limit=3")
    assert status.body["applied"] == 15
    assert [c["seq"] for c in status.body["items"]] == [13, 14, 15]


async def test_generator_can_start_with_the_simulator(session: aiohttp.ClientSession) -> None:
    config = fast_config(changes=ChangeGeneratorConfig(rate=200))
    async with run_simulator(config) as sim:
        await eventually(lambda: len(sim.state.changes.applied) >= 5, within=timedelta(seconds=5))
        assert sim.state.changes.running
