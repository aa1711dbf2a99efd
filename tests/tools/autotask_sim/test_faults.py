"""Each fault injection does what it says, through the admin API or the Python methods."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import aiohttp
import pytest

from tests.helpers.receiver import Receiver
from tests.helpers.simapi import Api, fast_config, make_webhook
from tools.autotask_sim import FaultConfig, Simulator, run_simulator
from tools.autotask_sim.access.faults import OUTAGE_TEXT, RANDOM_429_TEXT, RANDOM_500_TEXT

TICKET = 7000


async def test_extra_latency(api: Api) -> None:
    assert (await api.admin("PATCH", "faults", {"latency": 0.5})).status == 200
    start = time.perf_counter()
    assert (await api.get("Companies/0")).status == 200
    assert time.perf_counter() - start >= 0.5
    assert (await api.admin("DELETE", "faults")).status == 200
    start = time.perf_counter()
    await api.get("Companies/0")
    assert time.perf_counter() - start < 0.5  # wide: a busy machine adds its own delays


@pytest.mark.parametrize(
    ("setting", "status", "text"),
    [("rate_429", 429, RANDOM_429_TEXT), ("rate_500", 500, RANDOM_500_TEXT)],
)
async def test_error_rates_at_one_always_fail(
    api: Api, sim: Simulator, setting: str, status: int, text: str
) -> None:
    sim.set_faults(**{setting: 1.0})
    reply = await api.get("Companies/0")
    assert (reply.status, reply.body) == (status, {"errors": [text]})


async def test_faults_can_target_endpoints(api: Api, sim: Simulator) -> None:
    sim.set_faults(rate_500=1.0, endpoints=["Companies"])
    assert (await api.get("Companies/0")).status == 500
    assert (await api.get("Tickets/7000")).status == 200


async def _statuses(seed: int, session: aiohttp.ClientSession) -> list[int]:
    config = fast_config(seed=seed, faults=FaultConfig(rate_500=0.3, rate_429=0.2))
    async with run_simulator(config) as sim:
        api = Api(sim, session)
        return [(await api.get("Companies/0")).status for _ in range(40)]


async def test_partial_rates_are_seeded_and_reproducible(session: aiohttp.ClientSession) -> None:
    first = await _statuses(11, session)
    assert first == await _statuses(11, session)
    assert first != await _statuses(12, session)
    assert 5 <= first.count(500) <= 25
    assert 2 <= first.count(429) <= 20
    assert first.count(200) >= 8


async def test_outage_503_including_zone_lookup(api: Api, sim: Simulator) -> None:
    sim.set_faults(outage="503")
    reply = await api.get("Tickets/7000")
    assert (reply.status, reply.body) == (503, {"errors": [OUTAGE_TEXT]})
    lookup_url = f"{sim.zone_lookup_url}/v1.0/zoneInformation"
    assert (await api.get(lookup_url, params={"user": sim.username}, headers={})).status == 503
    sim.set_faults(outage_includes_zone_lookup=False)
    assert (await api.get(lookup_url, params={"user": sim.username}, headers={})).status == 200
    assert (await api.admin("GET", "state")).status == 200  # the admin API stays up
    sim.clear_faults()
    assert (await api.get("Tickets/7000")).status == 200


async def test_outage_connection_reset(api: Api, sim: Simulator) -> None:
    sim.set_faults(outage="reset")
    with pytest.raises(aiohttp.ClientError):
        await api.get("Tickets/7000")
    # Recorded as "no response" (aiohttp may retry an idempotent GET once on its own).
    assert sim.state.requests.by_status[0] >= 1
    sim.clear_faults()
    assert (await api.get("Tickets/7000")).status == 200


async def test_truncated_bodies(api: Api, sim: Simulator) -> None:
    sim.set_faults(rate_truncated=1.0)
    reply = await api.get("Tickets/7000")
    assert reply.status == 200
    with pytest.raises(ValueError):
        json.loads(reply.raw)


async def test_invalid_fault_settings_are_rejected(api: Api) -> None:
    assert (await api.admin("PATCH", "faults", {"rate_500": 2})).status == 400
    assert (await api.admin("PATCH", "faults", {"no_such_fault": 1})).status == 400
    assert (await api.admin("GET", "faults")).body["rate_500"] == 0


async def test_dropped_callouts_consume_sequence_numbers(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    await make_webhook(api, "TicketWebhooks", receiver.url("h"), subscribed=("title",))
    sim.set_faults(callout_drop_rate=1.0)
    sim.update_entity("Tickets", TICKET, {"title": "lost"})
    assert await sim.wait_for_callouts(timedelta(seconds=2))
    sim.clear_faults()
    sim.update_entity("Tickets", TICKET, {"title": "kept"})
    await receiver.wait_for(lambda r: len(r) == 1)
    payload = receiver.requests[0].json()
    assert (payload["Fields"]["title"], payload["SequenceNumber"]) == ("kept", 2)  # a gap
    assert sim.state.dispatcher.counters["dropped"] == 1


async def test_duplicated_callouts_resend_identical_bytes(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    await make_webhook(api, "TicketWebhooks", receiver.url("h"), subscribed=("title",))
    sim.set_faults(callout_duplicate_rate=1.0)
    sim.update_entity("Tickets", TICKET, {"title": "twice"})
    await receiver.wait_for(lambda r: len(r) == 2)
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["X-Hook-Signature"] == second.headers["X-Hook-Signature"]


async def test_reordered_callouts_swap_trigger_order(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    await make_webhook(api, "TicketWebhooks", receiver.url("h"), subscribed=("title",))
    sim.set_faults(callout_reorder_rate=1.0)
    sim.update_entity("Tickets", TICKET, {"title": "first"})
    sim.update_entity("Tickets", TICKET, {"title": "second"})
    await receiver.wait_for(lambda r: len(r) == 2)
    assert [r.json()["SequenceNumber"] for r in receiver.requests] == [2, 1]
    assert sim.state.dispatcher.counters["reordered"] >= 1
