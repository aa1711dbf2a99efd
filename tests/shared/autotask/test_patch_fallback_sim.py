"""Updates where a zone's collection-level PATCH answers an HTML 404 (reported in DE1,
autotask-api.md §1): the client updates by PUT with the whole entity, and remembers the zone."""

from __future__ import annotations

import pytest

from shared.autotask import AutotaskClient, Child
from shared.autotask._client import merge_update
from shared.errors import NotFoundError
from tests.helpers.clients import truth
from tools.autotask_sim.server import Simulator


def methods_to(sim: Simulator, endpoint: str) -> list[str]:
    return [r["method"] for r in sim.state.requests.recent if r["endpoint"] == endpoint]


async def test_a_quirky_zone_is_updated_by_put_without_losing_other_fields(
    sim: Simulator, client: AutotaskClient
):
    sim.set_api(collection_patch="html_404")
    company = truth(sim, "Companies")[0]
    updated = await client.update("Companies", {"id": company["id"], "phone": "+1 555 0100"})
    assert updated == company["id"]
    stored = sim.state.entity("Companies", company["id"])
    assert stored["phone"] == "+1 555 0100"
    stamps = ("phone", "lastActivityDate", "lastTrackedModifiedDateTime")
    unchanged = {k for k in company if k not in stamps}
    assert {k: stored[k] for k in unchanged} == {k: company[k] for k in unchanged}
    assert methods_to(sim, "Companies") == ["PATCH", "GET", "PUT"]


async def test_the_zone_is_remembered_no_second_patch(sim: Simulator, client: AutotaskClient):
    sim.set_api(collection_patch="html_404")
    first, second = truth(sim, "Companies")[:2]
    await client.update("Companies", {"id": first["id"], "phone": "+1 555 0101"})
    await client.update("Companies", {"id": second["id"], "phone": "+1 555 0102"})
    assert methods_to(sim, "Companies") == ["PATCH", "GET", "PUT", "GET", "PUT"]
    assert sim.state.entity("Companies", second["id"])["phone"] == "+1 555 0102"


async def test_a_normal_zone_keeps_patching(sim: Simulator, client: AutotaskClient):
    company = truth(sim, "Companies")[0]
    await client.update("Companies", {"id": company["id"], "phone": "+1 555 0103"})
    await client.update("Companies", {"id": company["id"], "phone": "+1 555 0104"})
    assert methods_to(sim, "Companies") == ["PATCH", "PATCH"]
    assert sim.state.entity("Companies", company["id"])["phone"] == "+1 555 0104"


async def test_a_json_404_is_not_mistaken_for_the_quirk(sim: Simulator, client: AutotaskClient):
    with pytest.raises(NotFoundError):
        await client.update("NoSuchEntities", {"id": 1, "name": "x"})
    assert [r["method"] for r in sim.state.requests.recent if r["status"] == 404] == ["PATCH"]


async def test_child_collections_are_untouched_by_the_quirk(sim: Simulator, client: AutotaskClient):
    sim.set_api(collection_patch="html_404")
    meta = {f.name: f for f in await client.field_info("TicketWebhookFields")}
    field_id = int(next(iter(meta["fieldID"].picklist())))
    webhook_id = await client.create(
        "TicketWebhooks",
        {
            "Name": "quirk",
            "WebhookUrl": "https://hooks.example/v1/callouts/q",
            "DeactivationUrl": "https://hooks.example/v1/deactivated/q",
            "SecretKey": "0123456789abcdef",
            "IsActive": True,
            "SendThresholdExceededNotification": False,
        },
    )
    fields = Child("TicketWebhooks", webhook_id, "Fields")
    row = await client.create(
        fields, {"fieldID": field_id, "isSubscribedField": True, "isDisplayAlwaysField": False}
    )
    await client.update(fields, {"id": row, "isDisplayAlwaysField": True})
    assert [f["isDisplayAlwaysField"] for f in await client.list_children(fields)] == [True]


def test_merge_matches_names_case_insensitively_and_udfs_by_name():
    current = {
        "id": 1,
        "phone": "1",
        "userDefinedFields": [{"name": "Tier", "value": "A"}, {"name": "Region", "value": "EU"}],
    }
    merged = merge_update(
        current,
        {"Id": 1, "Phone": "2", "userDefinedFields": [{"name": "tier", "value": "B"}]},
    )
    assert merged["phone"] == "2"
    assert "Phone" not in merged
    assert merged["userDefinedFields"] == [
        {"name": "tier", "value": "B"},
        {"name": "Region", "value": "EU"},
    ]
    assert current["phone"] == "1"  # the current entity is not changed in place
