"""Zone DE1's collection-level PATCH (an HTML 404, autotask-api.md §1) and the login counters a
lockout is judged by (§2), over plain HTTP."""

from __future__ import annotations

import pytest

from tests.helpers.simapi import CATCH_ALL, Api
from tools.autotask_sim import Simulator


async def _company(api: Api) -> dict:
    reply = await api.query("Companies", CATCH_ALL, MaxRecords=1)
    assert reply.status == 200, reply.body
    return reply.body["items"][0]


async def test_collection_patch_answers_an_html_404_when_set(api: Api, sim: Simulator) -> None:
    company = await _company(api)
    sim.set_api(collection_patch="html_404")
    reply = await api.call("PATCH", "Companies", {"id": company["id"], "phone": "+1 555 0142"})
    assert reply.status == 404
    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.raw.lstrip().startswith(b"<!DOCTYPE html")
    assert sim.state.entity("Companies", company["id"])["phone"] == company["phone"]


@pytest.mark.parametrize("path", ["Companies", "Companies/{id}"])
async def test_put_still_updates_in_a_quirky_zone(api: Api, sim: Simulator, path: str) -> None:
    company = await _company(api)
    sim.set_api(collection_patch="html_404")
    body = {**company, "phone": "+1 555 0143"}
    reply = await api.call("PUT", path.format(id=company["id"]), body)
    assert reply.status == 200, reply.body
    assert sim.state.entity("Companies", company["id"])["phone"] == "+1 555 0143"


async def test_collection_patch_works_by_default(api: Api, sim: Simulator) -> None:
    company = await _company(api)
    reply = await api.call("PATCH", "Companies", {"id": company["id"], "phone": "+1 555 0144"})
    assert reply.status == 200, reply.body
    assert sim.state.entity("Companies", company["id"])["phone"] == "+1 555 0144"


async def test_the_admin_api_switches_the_quirk(api: Api, sim: Simulator) -> None:
    reply = await api.admin("PATCH", "api", {"collection_patch": "html_404"})
    assert reply.status == 200, reply.body
    assert reply.body["collection_patch"] == "html_404"
    assert sim.state.config.api.collection_patch == "html_404"


async def test_logins_and_failed_logins_are_counted_per_user(api: Api, sim: Simulator) -> None:
    user = sim.username.lower()
    for _ in range(2):
        assert (await api.call("GET", "ThresholdInformation")).status == 200
    wrong = api.headers(Secret="not-the-secret")
    for _ in range(3):
        assert (await api.call("GET", "ThresholdInformation", headers=wrong)).status == 401
    stats = sim.state.requests
    assert stats.logins[user] == 2
    assert stats.failed_logins[user] == 3
    shown = (await api.admin("GET", "requests")).body
    assert shown["logins"] == {user: 2}
    assert shown["failedLogins"] == {user: 3}
    sim.reset_counters()
    assert not sim.state.requests.failed_logins


async def test_a_locked_user_is_a_failed_login_even_with_the_right_secret(
    api: Api, sim: Simulator
) -> None:
    sim.set_api(lockout_after_failures=2)
    wrong = api.headers(Secret="not-the-secret")
    for _ in range(2):
        await api.call("GET", "ThresholdInformation", headers=wrong)
    assert (await api.call("GET", "ThresholdInformation")).status == 401  # locked now
    assert sim.state.requests.failed_logins[sim.username.lower()] == 3
    assert sim.api_user.locked
