"""Writes against the simulator: create / update / delete, impersonation, and the webhook
provisioning flow (``{X}Webhooks`` plus their Fields and ExcludedResources children)."""

from __future__ import annotations

import pytest

from shared.autotask import AutotaskClient, Child, F, Query
from shared.errors import InvalidQueryError, NotFoundError
from tests.helpers.clients import MakeClient, truth
from tools.autotask_sim.callouts.events import ChangeEvent
from tools.autotask_sim.server import Simulator


def new_company(sim: Simulator, name: str) -> dict:
    return {
        "companyName": name,
        "companyType": 1,
        "phone": "+1 555 0100",
        "ownerResourceID": truth(sim, "Resources")[1]["id"],
    }


async def test_create_update_delete_round_trip(sim: Simulator, client: AutotaskClient):
    company_id = await client.create("Companies", new_company(sim, "Round Trip Ltd"))
    stored = sim.state.entity("Companies", company_id)
    assert stored is not None
    assert stored["companyName"] == "Round Trip Ltd"

    assert await client.update("Companies", {"id": company_id, "phone": "+1 555 0199"}) == (
        company_id
    )
    assert sim.state.entity("Companies", company_id)["phone"] == "+1 555 0199"
    assert (await client.get("Companies", company_id))["phone"] == "+1 555 0199"

    await client.delete("Companies", company_id)
    assert sim.state.entity("Companies", company_id) is None
    with pytest.raises(NotFoundError):
        await client.delete("Companies", company_id)


async def test_a_rejected_create_is_not_retried(sim, client):
    body = new_company(sim, "x") | {"ownerResourceID": 1}  # no such resource
    with pytest.raises(InvalidQueryError, match="does not exist or is invalid"):
        await client.create("Companies", body)
    assert sim.state.requests.by_endpoint["Companies"] == 1


async def test_update_needs_an_id(client):
    with pytest.raises(ValueError, match="'id'"):
        await client.update("Companies", {"phone": "1"})


async def test_impersonation_attributes_writes_but_not_reads(sim, make_client: MakeClient):
    person = truth(sim, "Resources")[2]["id"]
    events: list[ChangeEvent] = []
    sim.state.bus.subscribe(events.append)
    client = await make_client(impersonation_resource_id=person)
    await client.query_all("Companies", Query.where(F("id").lt(0)))  # a read: no effect
    company_id = await client.create("Companies", new_company(sim, "On Behalf Inc"))
    assert [(e.entity, e.action, e.entity_id, e.person_id) for e in events] == [
        ("Companies", "Create", company_id, person)
    ]


async def test_webhook_provisioning_with_child_collections(sim, client: AutotaskClient):
    meta = {f.name: f for f in await client.field_info("TicketWebhookFields")}
    field_ids = {label: int(value) for value, label in meta["fieldID"].picklist().items()}
    status_field = field_ids["status"]

    webhook_id = await client.create(
        "TicketWebhooks",
        {
            "Name": "autotask-sync tickets",
            "WebhookUrl": "https://hooks.example/v1/callouts/abc",
            "DeactivationUrl": "https://hooks.example/v1/deactivated/abc",
            "SecretKey": "0123456789abcdef",
            "IsSubscribedToUpdateEvents": True,
            "IsActive": True,
            "SendThresholdExceededNotification": False,
        },
    )
    fields = Child("TicketWebhooks", webhook_id, "Fields")
    excluded = Child("TicketWebhooks", webhook_id, "ExcludedResources")
    field_row = await client.create(
        fields, {"FieldID": status_field, "IsSubscribedField": True, "IsDisplayAlwaysField": False}
    )
    await client.create(excluded, {"ResourceID": sim.api_user_resource_id})
    await client.update(fields, {"id": field_row, "IsDisplayAlwaysField": True})

    [hook] = sim.state.webhook_list("TicketWebhooks")
    assert hook["id"] == webhook_id
    assert hook["isReady"] is True
    subscriptions = [
        (f["fieldID"], f["isSubscribedField"], f["isDisplayAlwaysField"]) for f in hook["fields"]
    ]
    assert subscriptions == [(status_field, True, True)]
    assert [r["resourceID"] for r in hook["excludedResources"]] == [sim.api_user_resource_id]

    listed = await client.list_children(fields)
    assert [row["id"] for row in listed] == [field_row]
    assert (await client.get(fields, field_row))["fieldID"] == status_field
    found = await client.query_all("TicketWebhooks", Query.where(F("id").eq(webhook_id)))
    assert found[0]["webhookUrl"] == "https://hooks.example/v1/callouts/abc"

    await client.update("TicketWebhooks", {"id": webhook_id, "IsActive": False})
    assert sim.state.webhook_list("TicketWebhooks")[0]["isActive"] is False
    await client.delete(fields, field_row)
    assert sim.state.webhook_list("TicketWebhooks")[0]["fields"] == []
    await client.delete("TicketWebhooks", webhook_id)
    assert sim.state.webhook_list("TicketWebhooks") == []
