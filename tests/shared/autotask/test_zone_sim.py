"""Zone discovery, its cache, and re-discovery after a zone move (the old zone answers 401)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.autotask import ClientConfig, Query
from shared.errors import AuthenticationError, ZoneLookupError
from shared.metrics import AUTOTASK_RETRIES
from tests.helpers.clients import MakeClient, api_rows, requests_to
from tools.autotask_sim import ApiBehaviour, SimulatorConfig


@pytest.fixture
def sim_config(request) -> SimulatorConfig:
    slash = getattr(request, "param", False)
    return SimulatorConfig(
        seed=11, companies=10, tickets=20, api=ApiBehaviour(zone_url_trailing_slash=slash)
    )


@pytest.mark.parametrize("sim_config", [False, True], indirect=True, ids=["no-slash", "slash"])
async def test_discovers_the_zone_once_and_caches_it(sim, make_client: MakeClient):
    client = await make_client()
    root = await client.rest_root()
    assert root == sim.rest_url.rstrip("/")  # normalised whichever way the API answered
    assert client.zone.info is not None
    assert client.zone.info.zone_name == "America East 2"
    for company in api_rows(sim, "Companies")[:5]:
        assert (await client.get("Companies", company["id"]))["id"] == company["id"]
    assert requests_to(sim, "zoneInformation") == 1


async def test_cache_expires_after_its_ttl(sim, make_client: MakeClient, clock):
    client = await make_client(config=ClientConfig(zone_cache=timedelta(seconds=600)))
    await client.count("Companies")
    clock.advance(601)
    await client.count("Companies")
    assert requests_to(sim, "zoneInformation") == 2


async def test_zone_move_is_followed_after_one_401(sim, make_client: MakeClient):
    client = await make_client()
    company = api_rows(sim, "Companies")[0]
    await client.get("Companies", company["id"])
    old_root = await client.rest_root()
    retries = AUTOTASK_RETRIES.labels("test", "auth_zone")._value.get()

    sim.move_zone(22)
    assert await client.get("Companies", company["id"]) == company
    assert await client.rest_root() == sim.rest_url != old_root
    assert requests_to(sim, "zoneInformation") == 2
    assert sim.state.requests.by_status[401] == 1
    assert AUTOTASK_RETRIES.labels("test", "auth_zone")._value.get() == retries + 1


async def test_paging_survives_a_zone_move_half_way(sim, make_client: MakeClient):
    client = await make_client()
    rows = []
    async for page in client.query_pages("Tickets", Query.all().limit(5)):
        rows.extend(page.items)
        if page.number == 2:
            sim.move_zone(15)
    assert rows == api_rows(sim, "Tickets")
    assert await client.rest_root() == sim.rest_url


async def test_configured_zone_is_not_rediscovered(sim, make_client: MakeClient):
    client = await make_client(zone_url=sim.rest_url)
    await client.count("Companies")
    sim.move_zone(22)
    with pytest.raises(AuthenticationError, match="check the username, secret and integration"):
        await client.count("Companies")
    assert requests_to(sim, "zoneInformation") == 0


async def test_401_that_is_not_a_zone_move_fails_after_one_lookup(sim, make_client: MakeClient):
    client = await make_client(secret="wrong-secret-value")
    with pytest.raises(AuthenticationError):
        await client.count("Companies")
    assert requests_to(sim, "zoneInformation") == 2  # discovery, then one re-discovery
    assert sim.state.requests.by_status[401] == 1  # the same zone: no second login attempt


async def test_unknown_user_is_a_zone_lookup_error_with_the_fix(sim, make_client: MakeClient):
    client = await make_client(username="nobody@example.com")
    with pytest.raises(ZoneLookupError) as info:
        await client.count("Companies")
    message = str(info.value)
    assert "does not know API user 'nobody@example.com'" in message
    assert "check the username" in message
    assert not info.value.retriable
    assert requests_to(sim, "zoneInformation") == 1  # not retried


async def test_zone_lookup_outage_is_retried(sim, make_client: MakeClient, clock):
    sim.set_faults(outage="503")

    async def recover(_seconds: float) -> None:
        sim.clear_faults()

    clock.on_sleep.append(recover)
    client = await make_client()
    assert await client.count("Companies") == 10
    assert len(clock.sleeps) == 1
