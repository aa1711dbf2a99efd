"""Webhook definitions over REST (§7): CRUD, children, validation, readiness, caps, error log."""

from __future__ import annotations

import aiohttp
import pytest

from tests.simulator.conftest import Api, fast_config, field_ids, make_webhook
from tools.autotask_sim import SecurityLevel, Simulator, WebhookConfig, run_simulator
from tools.autotask_sim.apierror import PERMISSION_TEXT

ROOTS = [
    "CompanyWebhooks",
    "ContactWebhooks",
    "ConfigurationItemWebhooks",
    "TicketWebhooks",
    "TicketNoteWebhooks",
]
BASE = {"WebhookUrl": "https://example.test/hook", "DeactivationUrl": "https://example.test/d"}


@pytest.mark.parametrize("root", ROOTS)
async def test_crud_on_every_root(api: Api, root: str) -> None:
    created = await api.post(
        root, {**BASE, "Name": "Sync", "SecretKey": "abcdefghij", "IsActive": True}
    )
    assert created.status == 200
    webhook_id = created.body["itemId"]
    item = (await api.get(f"{root}/{webhook_id}")).body["item"]
    assert item["name"] == "Sync"
    assert item["webhookUrl"] == BASE["WebhookUrl"]
    assert item["isActive"] is True
    assert item["isReady"] is False
    assert item["secretKey"] is None  # not echoed by default
    assert len(item["webhookGUID"]) == 36
    assert item["ownerResourceID"] == api.sim.api_user_resource_id
    patched = await api.patch(root, {"id": webhook_id, "isActive": False, "name": "Renamed"})
    assert patched.status == 200
    queried = await api.query(root, [{"op": "eq", "field": "name", "value": "renamed"}])
    assert [w["id"] for w in queried.body["items"]] == [webhook_id]
    assert queried.body["items"][0]["isActive"] is False
    assert (await api.delete(f"{root}/{webhook_id}")).status == 200
    assert (await api.get(f"{root}/{webhook_id}")).status == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**BASE, "Name": "n" * 51}, "name must be less than or equal to 50 characters"),
        ({**BASE, "SecretKey": "k" * 65}, "secretKey must be less than or equal to 64 characters"),
        ({"DeactivationUrl": "https://example.test/d"}, "webhookUrl is required."),
        ({"WebhookUrl": "https://example.test/h"}, "deactivationUrl is required."),
        ({**BASE, "IsActive": "yes"}, "isActive"),
    ],
)
async def test_validation_texts(api: Api, body: dict[str, object], message: str) -> None:
    reply = await api.post("TicketWebhooks", body)
    assert reply.status == 500
    assert any(message in e for e in reply.body["errors"]), reply.body


async def test_field_picklist_and_children(api: Api, sim: Simulator) -> None:
    ids = await field_ids(api, "TicketWebhooks")
    assert {"title", "status", "ticketNumber", "companyID"} <= set(ids)
    assert "lastActivityDate" not in ids  # not a supported webhook field
    webhook_id = (await api.post("TicketWebhooks", {**BASE, "IsActive": True})).body["itemId"]
    display_only = await api.post(
        f"TicketWebhooks/{webhook_id}/Fields",
        {"FieldID": ids["ticketNumber"], "IsDisplayAlwaysField": True},
    )
    assert display_only.status == 200
    # Pessimistic: a display-always field alone does not make the webhook ready.
    assert (await api.get(f"TicketWebhooks/{webhook_id}")).body["item"]["isReady"] is False
    sub = await api.post(
        f"TicketWebhooks/{webhook_id}/Fields", {"fieldID": ids["status"], "isSubscribedField": True}
    )
    assert (await api.get(f"TicketWebhooks/{webhook_id}")).body["item"]["isReady"] is True
    duplicate = await api.post(
        f"TicketWebhooks/{webhook_id}/Fields", {"FieldID": ids["status"], "IsSubscribedField": True}
    )
    assert duplicate.status == 500
    assert (await api.post(f"TicketWebhooks/{webhook_id}/Fields", {"FieldID": 1})).status == 500
    listed = await api.get(f"TicketWebhooks/{webhook_id}/Fields")
    assert sorted(f["fieldID"] for f in listed.body["items"]) == sorted(
        [ids["ticketNumber"], ids["status"]]
    )
    # Child updates go to the collection URL with the child id in the body.
    patch = {"id": sub.body["itemId"], "IsSubscribedField": False}
    assert (await api.patch(f"TicketWebhooks/{webhook_id}/Fields", patch)).status == 200
    assert (await api.get(f"TicketWebhooks/{webhook_id}")).body["item"]["isReady"] is False
    assert (
        await api.delete(f"TicketWebhooks/{webhook_id}/Fields/{sub.body['itemId']}")
    ).status == 200
    udf_ids = await field_ids(api, "TicketWebhooks", udf=True)
    udf = await api.post(
        f"TicketWebhooks/{webhook_id}/UdfFields",
        {"UdfFieldID": udf_ids["Customer Impact"], "IsSubscribedField": True},
    )
    assert udf.status == 200
    assert (await api.get(f"TicketWebhooks/{webhook_id}")).body["item"]["isReady"] is True
    excluded = await api.post(
        f"TicketWebhooks/{webhook_id}/ExcludedResources", {"ResourceID": sim.api_user_resource_id}
    )
    assert excluded.status == 200
    bad_resource = await api.post(
        f"TicketWebhooks/{webhook_id}/ExcludedResources", {"ResourceID": 1}
    )
    assert bad_resource.status == 500
    # ExcludedResources has no update.
    no_update = {"id": excluded.body["itemId"], "ResourceID": 4}
    assert (
        await api.patch(f"TicketWebhooks/{webhook_id}/ExcludedResources", no_update)
    ).status == 405
    assert (await api.get("TicketWebhooks/999/Fields")).status == 404


async def test_duplicate_url_and_event_type_rejected(api: Api) -> None:
    first = {**BASE, "IsSubscribedToUpdateEvents": True}
    assert (await api.post("CompanyWebhooks", first)).status == 200
    clash = await api.post(
        "CompanyWebhooks", {**BASE, "IsSubscribedToUpdateEvents": True, "Name": "2"}
    )
    assert clash.status == 500
    other_type = await api.post("CompanyWebhooks", {**BASE, "IsSubscribedToCreateEvents": True})
    assert other_type.status == 200
    other_root = await api.post("ContactWebhooks", first)
    assert other_root.status == 200


async def test_secret_echo_option_and_rotation(api: Api, sim: Simulator) -> None:
    webhook_id = (await api.post("TicketWebhooks", {**BASE, "SecretKey": "first-secret"})).body[
        "itemId"
    ]
    assert (
        await api.patch("TicketWebhooks", {"id": webhook_id, "SecretKey": "second-secret"})
    ).status == 200
    root = sim.state.webhooks.root("TicketWebhooks")
    assert root is not None
    stored = root.webhooks.get(webhook_id)
    assert stored is not None
    assert stored["secretKey"] == "second-secret"
    sim.state.config.api.echo_webhook_secret = True
    assert (await api.get(f"TicketWebhooks/{webhook_id}")).body["item"][
        "secretKey"
    ] == "second-secret"


async def test_webhook_permission_and_caps(session: aiohttp.ClientSession) -> None:
    config = fast_config(
        security=SecurityLevel(can_create_webhooks=False),
        webhooks=WebhookConfig(max_active_per_entity=1),
    )
    async with run_simulator(config) as sim:
        api = Api(sim, session)
        denied = await api.post("TicketWebhooks", BASE)
        assert denied.status == 403
        assert PERMISSION_TEXT in denied.body["errors"][0]
        sim.set_security(SecurityLevel(max_webhooks=2))
        one = await api.post("TicketWebhooks", {**BASE, "IsActive": True})
        assert one.status == 200
        second_active = await api.post(
            "TicketWebhooks", {**BASE, "WebhookUrl": "https://example.test/2", "IsActive": True}
        )
        assert second_active.status == 500  # 1 active per entity
        inactive = await api.post(
            "TicketWebhooks", {**BASE, "WebhookUrl": "https://example.test/3"}
        )
        assert inactive.status == 200
        third = await api.post("CompanyWebhooks", BASE)
        assert third.status == 500  # security level cap of 2 across all roots
        assert "maximum number of webhooks" in third.body["errors"][0]


async def test_error_log_query_and_delete(api: Api, sim: Simulator) -> None:
    webhook_id = (await api.post("TicketWebhooks", BASE)).body["itemId"]
    root = sim.state.webhooks.root("TicketWebhooks")
    assert root is not None
    webhook = root.webhooks.get(webhook_id)
    assert webhook is not None
    row = sim.state.webhooks.add_error_log("TicketWebhooks", webhook, "boom", "{}", 3)
    rows = await api.query("WebhookEventErrorLogs", [{"op": "gte", "field": "id", "value": 0}])
    assert rows.status == 200
    [item] = rows.body["items"]
    assert (item["ticketWebhookID"], item["sequenceNumber"], item["errorMessage"]) == (
        webhook_id,
        3,
        "boom",
    )
    assert (await api.delete(f"WebhookEventErrorLogs/{row['id']}")).status == 200
    assert (
        await api.query("WebhookEventErrorLogs", [{"op": "gte", "field": "id", "value": 0}])
    ).body["items"] == []
    assert (await api.post("WebhookEventErrorLogs", {})).status == 405


async def test_error_log_rows_are_visible_to_their_owner_only(api: Api, sim: Simulator) -> None:
    webhook_id = (await api.post("TicketWebhooks", BASE)).body["itemId"]
    root = sim.state.webhooks.root("TicketWebhooks")
    assert root is not None
    webhook = root.webhooks.get(webhook_id)
    assert webhook is not None
    sim.state.webhooks.add_error_log("TicketWebhooks", webhook, "boom", "{}", 1)
    other = sim.add_api_user("other@sim.local", "other-secret", "OTHERCODE", resource_id=29682834)
    headers = {
        "UserName": other.username,
        "Secret": other.secret,
        "ApiIntegrationCode": "OTHERCODE",
    }
    rows = await api.post(
        "WebhookEventErrorLogs/query",
        {"filter": [{"op": "gte", "field": "id", "value": 0}]},
        headers=headers,
    )
    assert rows.status == 200
    assert rows.body["items"] == []


async def test_make_webhook_helper_builds_ready_webhook(api: Api, sim: Simulator) -> None:
    webhook_id = await make_webhook(
        api,
        "TicketWebhooks",
        "https://example.test/x",
        subscribed=("status",),
        display=("ticketNumber",),
    )
    [listed] = [w for w in sim.state.webhook_list("TicketWebhooks") if w["id"] == webhook_id]
    assert listed["isReady"] is True
    assert len(listed["fields"]) == 2
