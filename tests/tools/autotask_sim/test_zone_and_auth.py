"""Zone lookup, zone moves and authentication (autotask-api.md §1, §2)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.helpers.simapi import Api, fast_config
from tools.autotask_sim import ApiBehaviour, Simulator, run_simulator


async def test_zone_lookup_returns_the_tenant_zone(api: Api, sim: Simulator) -> None:
    reply = await api.get(
        f"{sim.zone_lookup_url}/v1.0/zoneInformation", params={"user": sim.username}, headers={}
    )
    assert reply.status == 200
    assert reply.body == {
        "zoneName": "America East 2",
        "url": sim.zone_url,
        "webUrl": f"{sim.base_url}/ww14/",
        "ci": 14,
    }
    # Like the real API's answer, the url ends with a slash; rest_url is the same root without.
    assert sim.zone_url == f"{sim.base_url}/ws14/atservicesrest/"
    assert sim.rest_url == f"{sim.base_url}/ws14/atservicesrest"


@pytest.mark.parametrize(
    "path",
    [
        "/ATServicesRest/V1.0/ZoneInformation",  # casing is not significant
        "/atservicesrest/1.0/zoneInformation",  # go-autotask's form
        "/ws5/atservicesrest/v1.0/zoneInformation",  # any zone host answers
    ],
)
async def test_zone_lookup_path_variants(api: Api, sim: Simulator, path: str) -> None:
    reply = await api.get(f"{sim.base_url}{path}", params={"user": sim.username}, headers={})
    assert reply.status == 200
    assert reply.body["url"] == sim.zone_url


@pytest.mark.parametrize("user", ["", "   ", "nobody@example.com"])
async def test_zone_lookup_unknown_or_blank_user_is_500(
    api: Api, sim: Simulator, user: str
) -> None:
    reply = await api.get(
        f"{sim.zone_lookup_url}/v1.0/zoneInformation", params={"user": user}, headers={}
    )
    assert reply.status == 500
    assert isinstance(reply.body["errors"], list)
    assert reply.body["errors"][0]


async def test_zone_lookup_is_case_insensitive_on_username(api: Api, sim: Simulator) -> None:
    reply = await api.get(
        f"{sim.zone_lookup_url}/v1.0/zoneInformation",
        params={"user": sim.username.upper()},
        headers={},
    )
    assert reply.status == 200


@pytest.mark.parametrize("trailing_slash", [True, False], ids=["slash", "no-slash"])
async def test_zone_url_forms_and_double_slash_rejected(
    session: aiohttp.ClientSession, trailing_slash: bool
) -> None:
    config = fast_config(api=ApiBehaviour(zone_url_trailing_slash=trailing_slash))
    async with run_simulator(config) as sim:
        api = Api(sim, session)
        lookup = await api.get(
            f"{sim.zone_lookup_url}/v1.0/zoneInformation", params={"user": sim.username}, headers={}
        )
        url = lookup.body["url"]
        assert url == sim.zone_url
        assert url.endswith("/atservicesrest/") is trailing_slash
        assert url.rstrip("/") == sim.rest_url
        # Clients concatenate "v1.0/..." onto the slash form (PS-ZONE, django-autotask) ...
        if trailing_slash:
            assert (await api.get(url + "v1.0/Companies/0")).status == 200
        # ... and a client that joins with "/" must normalise first: "//v1.0" is not a route.
        assert (await api.get(sim.rest_url + "//v1.0/Companies/0")).status == 404
        assert (await api.get(url.rstrip("/") + "/v1.0/Companies/0")).status == 200


async def test_valid_credentials_any_header_casing(api: Api, sim: Simulator) -> None:
    headers = {
        "apiintegrationcode": sim.integration_code,
        "USERNAME": sim.username,
        "secret": sim.secret,
    }
    reply = await api.get("Companies/0", headers=headers)
    assert reply.status == 200
    assert reply.body["item"]["id"] == 0


@pytest.mark.parametrize("header", ["ApiIntegrationCode", "UserName", "Secret"])
async def test_each_wrong_header_is_401(api: Api, header: str) -> None:
    headers = api.headers(**{header: "wrong-value"})
    reply = await api.get("Companies/0", headers=headers)
    assert reply.status == 401
    assert reply.raw == b""  # pessimistic default: no body to rely on


@pytest.mark.parametrize("header", ["ApiIntegrationCode", "UserName", "Secret"])
async def test_each_missing_header_is_401(api: Api, header: str) -> None:
    headers = {k: v for k, v in api.headers().items() if k != header}
    reply = await api.get("Companies/0", headers=headers)
    assert reply.status == 401


async def test_401_errors_body_option(session: aiohttp.ClientSession) -> None:
    async with run_simulator(fast_config(api=ApiBehaviour(unauthorized_body="errors"))) as sim:
        api = Api(sim, session)
        reply = await api.get("Companies/0", headers=api.headers(Secret="nope"))
        assert reply.status == 401
        assert reply.body["errors"]


async def test_lockout_after_failures_until_unlocked(session: aiohttp.ClientSession) -> None:
    async with run_simulator(fast_config(api=ApiBehaviour(lockout_after_failures=2))) as sim:
        api = Api(sim, session)
        for _ in range(2):
            assert (await api.get("Companies/0", headers=api.headers(Secret="bad"))).status == 401
        assert (await api.get("Companies/0")).status == 401  # right secret, but locked
        assert sim.state.api_user.locked
        assert (await api.admin("POST", "unlock")).status == 200
        assert (await api.get("Companies/0")).status == 200


async def test_zone_move_old_zone_401_new_zone_works(api: Api, sim: Simulator) -> None:
    old_root = sim.rest_url
    assert (await api.get(f"{old_root}/v1.0/Companies/0")).status == 200
    moved = await api.admin("POST", "zone", {"zone": 22})
    assert moved.status == 200
    assert (await api.get(f"{old_root}/v1.0/Companies/0")).status == 401
    lookup = await api.get(
        f"{sim.zone_lookup_url}/v1.0/zoneInformation", params={"user": sim.username}, headers={}
    )
    assert lookup.body["url"] == f"{sim.base_url}/ws22/atservicesrest/" == sim.zone_url
    assert lookup.body["zoneName"] == "America East 3"
    assert (await api.get(f"{lookup.body['url']}v1.0/Companies/0")).status == 200


async def test_zoneless_rest_path_is_unauthorized(api: Api, sim: Simulator) -> None:
    reply = await api.get(f"{sim.zone_lookup_url}/v1.0/Companies/0")
    assert reply.status == 401


async def test_entity_and_segment_names_are_case_insensitive(api: Api, sim: Simulator) -> None:
    upper = f"{sim.base_url}/WS14/ATSERVICESREST/V1.0/companies/ENTITYINFORMATION"
    reply = await api.get(upper)
    assert reply.status == 200
    assert reply.body["info"]["name"] == "Company"


async def test_version_information(api: Api, sim: Simulator) -> None:
    reply = await api.get(f"{sim.zone_lookup_url}/versioninformation", headers={})
    assert reply.body == {"apiVersions": ["1.0"]}


async def test_unknown_route_404(api: Api) -> None:
    assert (await api.get("NoSuchEntity/1")).status == 404
    assert (await api.get("Tickets/abc")).status == 404
