"""Contracts in the simulator: generated on request, queryable by their watermark, moved by
updates, not deletable through the API, and without webhooks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import aiohttp
import pytest_asyncio

from tests.helpers.simapi import Api, fast_config
from tools.autotask_sim import Simulator, run_simulator


@pytest_asyncio.fixture
async def contract_sim() -> AsyncIterator[Simulator]:
    async with run_simulator(fast_config(contracts=15)) as simulator:
        yield simulator


async def test_contracts_are_generated_without_changing_the_rest_of_the_tenant() -> None:
    anchor = datetime(2025, 6, 1, 12, 0)
    async with (
        run_simulator(fast_config(anchor_time=anchor)) as plain,
        run_simulator(fast_config(anchor_time=anchor, contracts=15)) as with_contracts,
    ):
        assert plain.state.entities("Contracts") == []
        contracts = with_contracts.state.entities("Contracts")
        assert len(contracts) == 15
        for entity in ("Tickets", "Companies", "Contacts", "TicketNotes"):
            assert plain.state.entities(entity) == with_contracts.state.entities(entity)
        companies = {c["id"] for c in with_contracts.state.entities("Companies")}
        assert all(c["companyID"] in companies for c in contracts)


async def test_contracts_over_the_api(contract_sim: Simulator) -> None:
    async with aiohttp.ClientSession() as session:
        api = Api(contract_sim, session)
        first = contract_sim.state.entities("Contracts")[0]
        info = (await api.get("Contracts/entityInformation")).body["info"]
        assert (info["canQuery"], info["canDelete"], info["supportsWebhookCallouts"]) == (
            True, False, False,
        )  # fmt: skip
        fields = {f["name"]: f for f in (await api.get("Contracts/entityInformation/fields"))
                  .body["fields"]}  # fmt: skip
        assert fields["lastModifiedDateTime"]["isQueryable"]
        assert {p["label"] for p in fields["contractType"]["picklistValues"]} >= {"Block Hours"}
        reply = await api.patch("Contracts", {"id": first["id"], "contractName": "Renewed"})
        assert reply.status == 200
        updated = contract_sim.state.entity("Contracts", first["id"])
        assert updated is not None
        assert updated["lastModifiedDateTime"] > first["lastModifiedDateTime"]
        newer = await api.ids(
            "Contracts",
            [
                {
                    "op": "gte",
                    "field": "lastModifiedDateTime",
                    "value": updated["lastModifiedDateTime"],
                }
            ],
        )
        assert newer == [first["id"]]
        assert (await api.delete(f"Contracts/{first['id']}")).status == 405
