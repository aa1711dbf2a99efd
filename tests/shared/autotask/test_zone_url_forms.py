"""The client works whichever form the tenant's REST URL takes (autotask-api.md §1).

The real zoneInformation answers ``.../atservicesrest/`` (a trailing slash that clients
concatenate ``V1.0/...`` onto); older fixtures and hand-configured URLs have no slash, or carry
the version. Every form must lead to the same root and to working calls, paging included.
"""

from __future__ import annotations

import pytest

from shared.autotask import Query
from tests.helpers.clients import MakeClient, api_rows, requests_to
from tools.autotask_sim import ApiBehaviour, SimulatorConfig
from tools.autotask_sim.server import Simulator


@pytest.fixture
def sim_config(request: pytest.FixtureRequest) -> SimulatorConfig:
    trailing_slash = getattr(request, "param", True)
    api = ApiBehaviour(zone_url_trailing_slash=trailing_slash)
    return SimulatorConfig(seed=5, companies=12, tickets=30, api=api)


@pytest.mark.parametrize("sim_config", [True, False], indirect=True, ids=["slash", "no-slash"])
async def test_discovered_zone_url_in_either_form(
    sim: Simulator, make_client: MakeClient, sim_config: SimulatorConfig
) -> None:
    assert sim.zone_url.endswith("/") is sim_config.api.zone_url_trailing_slash
    client = await make_client()
    assert await client.rest_root() == sim.rest_url  # one root, whatever the answer's form
    company = api_rows(sim, "Companies")[3]
    assert await client.get("Companies", company["id"]) == company
    # nextPageUrl is absolute: walking pages must not be thrown off by the join either.
    rows = []
    async for page in client.query_pages("Tickets", Query.all().limit(7)):
        rows.extend(page.items)
    assert rows == api_rows(sim, "Tickets")
    assert requests_to(sim, "zoneInformation") == 1
    assert sim.state.requests.by_status.get(404, 0) == 0


@pytest.mark.parametrize("form", ["slash", "no-slash", "with-version"])
async def test_configured_zone_url_in_any_form(
    sim: Simulator, make_client: MakeClient, form: str
) -> None:
    url = {
        "slash": sim.zone_url,
        "no-slash": sim.rest_url,
        "with-version": sim.rest_url + "/v1.0/",
    }[form]
    client = await make_client(zone_url=url)
    assert await client.rest_root() == sim.rest_url
    assert await client.count("Companies") == len(api_rows(sim, "Companies"))
    assert requests_to(sim, "zoneInformation") == 0
    assert sim.state.requests.by_status.get(404, 0) == 0
