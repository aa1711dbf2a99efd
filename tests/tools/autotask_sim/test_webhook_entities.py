"""Webhook definitions over REST (§7): CRUD, the swagger's routes and verbs, required fields,
children, validation, readiness, caps, strict URLs and the error log."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.helpers.simapi import CATCH_ALL, Api, fast_config, field_ids, make_webhook
from tools.autotask_sim import SecurityLevel, Simulator, WebhookConfig, run_simulator
from tools.autotask_sim.apierror import PERMISSION_TEXT

ROOTS = [
    "CompanyWebhooks",
    "ContactWebhooks",
    "ConfigurationItemWebhooks",
    "TicketWebhooks",
    "TicketNoteWebhooks",
]
# Everything live metadata marks required on create.
BASE = {
    "Name": "Sync",
    "WebhookUrl": "https://example.test/hook",
    "DeactivationUrl": "https://example.test/d",
    "SecretKey": "abcdefghij",
    "IsActive": False,
    "SendThresholdExceededNotification": False,
}
FIELD = {
    "CompanyWebhooks": "phone",
    "ContactWebhooks": "title",
    "ConfigurationItemWebhooks": "serialNumber",
    "TicketWebhooks": "title",
    "TicketNoteWebhooks": "title",
}
REQUIRED_TEXT = ("name", "webhookUrl", "deactivationUrl", "secretKey")
REQUIRED_FLAGS = ("isActive", "sendThresholdExceededNotification")


def without(body: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k.lower() != field.lower()}


@pytest.mark.parametrize("root", ROOTS)
async def test_crud_on_every_root(api: Api, root: str) -> None:
    created = await api.post(root, {**BASE, "IsActive": True})
    assert created.status == 200
    assert set(created.body) == {"itemId"}
    webhook_id = created.body["itemId"]
    item = (await api.get(f"{root}/{webhook_id}")).body["item"]
    assert item["name"] == "Sync"
    assert item["webhookUrl"] == BASE["WebhookUrl"]
    assert item["isActive"] is True
    assert item["isReady"] is False
    assert item["secretKey"] is None  # not echoed by default
    assert len(item["webhookGuid"]) == 36  # the spelling of live field metadata
    assert "webhookGUID" not in item
    assert item["ownerResourceID"] == api.sim.api_user_resource_id
    patched = await api.patch(root, {"id": webhook_id, "isActive": False, "name": "Renamed"})
    assert patched.status == 200
    queried = await api.query(root, [{"op": "eq", "field": "name", "value": "renamed"}])
    assert [w["id"] for w in queried.body["items"]] == [webhook_id]
    assert queried.body["items"][0]["isActive"] is False
    assert (await api.delete(f"{root}/{webhook_id}")).status == 200
    assert (await api.get(f"{root}/{webhook_id}")).status == 404


@pytest.mark.parametrize("root", ROOTS)
async def test_verbs_of_the_swagger_route_table(api: Api, root: str) -> None:
    webhook_id = (await api.post(root, BASE)).body["itemId"]
    put = await api.put(root, {**BASE, "id": webhook_id, "Name": "Replaced"})
    assert put.status == 200
    assert (await api.get(f"{root}/{webhook_id}")).body["item"]["name"] == "Replaced"
    # The collection has PUT, POST and PATCH; /{id} only GET and DELETE.
    assert (await api.get(root)).status == 405
    assert (await api.put(f"{root}/{webhook_id}", {**BASE, "id": webhook_id})).status == 405
    assert (await api.patch(f"{root}/{webhook_id}", {"id": webhook_id})).status == 405
    search = {"search": json.dumps({"filter": CATCH_ALL})}
    assert (await api.get(f"{root}/query", params=search)).status == 200
    assert (await api.post(f"{root}/query/count", {"filter": CATCH_ALL})).body == {"queryCount": 1}
    for info in ("entityInformation", "entityInformation/fields"):
        assert (await api.get(f"{root}/{info}")).status == 200
    # ExcludedResources: GET and POST, no PUT or PATCH.
    excluded = f"{root}/{webhook_id}/ExcludedResources"
    resource = {"ResourceID": api.sim.api_user_resource_id}
    row = (await api.post(excluded, resource)).body["itemId"]
    assert (await api.put(excluded, {"id": row, **resource})).status == 405
    assert (await api.patch(excluded, {"id": row, **resource})).status == 405
    assert (await api.get(f"{excluded}/{row}")).body["item"]["resourceID"] == (
        api.sim.api_user_resource_id
    )
    assert (await api.delete(f"{excluded}/{row}")).status == 200


async def test_ticket_note_webhooks_have_no_udf_fields(api: Api) -> None:
    webhook_id = (await api.post("TicketNoteWebhooks", BASE)).body["itemId"]
    assert (await api.get(f"TicketNoteWebhooks/{webhook_id}/UdfFields")).status == 404
    body = {"UdfFieldID": 1, "IsSubscribedField": True, "IsDisplayAlwaysField": False}
    assert (await api.post(f"TicketNoteWebhooks/{webhook_id}/UdfFields", body)).status == 404
    assert (await api.get("TicketNoteWebhookUdfFields/entityInformation/fields")).status == 404
    assert (await api.get(f"TicketNoteWebhooks/{webhook_id}/Fields")).status == 200
    for root in ROOTS[:-1]:
        webhook_id = (await api.post(root, BASE)).body["itemId"]
        assert (await api.get(f"{root}/{webhook_id}/UdfFields")).status == 200


@pytest.mark.parametrize("root", ROOTS)
async def test_child_rows_are_readable_and_queryable_at_the_top_level(api: Api, root: str) -> None:
    webhook_id = await make_webhook(
        api, root, "https://example.test/top", subscribed=(FIELD[root],)
    )
    child = root.removesuffix("s") + "Fields"
    rows = await api.query(child, [{"op": "eq", "field": "webhookID", "value": webhook_id}])
    assert rows.status == 200
    [row] = rows.body["items"]
    assert row["webhookID"] == webhook_id
    assert row["isSubscribedField"] is True
    by_id = await api.get(f"{child}/{row['id']}")
    assert by_id.body == {"item": row}
    assert (await api.delete(f"{child}/{row['id']}")).status == 405  # read-only at the top
    excluded = root.removesuffix("s") + "ExcludedResources"
    assert (await api.query(excluded, CATCH_ALL)).body["items"] == []


@pytest.mark.parametrize("root", ROOTS)
@pytest.mark.parametrize("missing", ["false", "reject"])
async def test_required_fields_on_create(
    session: aiohttp.ClientSession, root: str, missing: str
) -> None:
    config = fast_config(webhooks=WebhookConfig(missing_required_booleans=missing))
    async with run_simulator(config) as sim:
        api = Api(sim, session)
        for field in REQUIRED_TEXT:
            reply = await api.post(root, without(BASE, field))
            assert reply.status == 500, field
            assert reply.body == {"errors": [f"{field} is required."]}
        for field in REQUIRED_FLAGS:
            reply = await api.post(root, without(BASE, field))
            # ConfigurationItemWebhooks: both flags are nullable, so never required.
            if root == "ConfigurationItemWebhooks" or missing == "false":
                assert reply.status == 200, (field, reply.body)
                item = (await api.get(f"{root}/{reply.body['itemId']}")).body["item"]
                assert item[field] is False
            else:
                assert reply.body == {"errors": [f"{field} is required."]}


@pytest.mark.parametrize("missing", ["false", "reject"])
async def test_required_fields_on_child_create(
    session: aiohttp.ClientSession, missing: str
) -> None:
    config = fast_config(webhooks=WebhookConfig(missing_required_booleans=missing))
    async with run_simulator(config) as sim:
        api = Api(sim, session)
        webhook_id = (await api.post("TicketWebhooks", BASE)).body["itemId"]
        ids = await field_ids(api, "TicketWebhooks")
        fields = f"TicketWebhooks/{webhook_id}/Fields"
        full = {"FieldID": ids["title"], "IsSubscribedField": True, "IsDisplayAlwaysField": False}
        assert (await api.post(fields, without(full, "FieldID"))).body == {
            "errors": ["fieldID is required."]
        }
        partial = await api.post(fields, without(full, "IsDisplayAlwaysField"))
        if missing == "false":
            assert partial.status == 200
            row = (await api.get(f"{fields}/{partial.body['itemId']}")).body["item"]
            assert row["isDisplayAlwaysField"] is False
        else:
            assert partial.body == {"errors": ["isDisplayAlwaysField is required."]}
        excluded = f"TicketWebhooks/{webhook_id}/ExcludedResources"
        assert (await api.post(excluded, {})).body == {"errors": ["resourceID is required."]}


async def test_child_webhook_id_comes_from_the_url(api: Api, sim: Simulator) -> None:
    webhook_id = (await api.post("TicketWebhooks", BASE)).body["itemId"]
    other = (await api.post("TicketWebhooks", {**BASE, "WebhookUrl": "https://o.test/"})).body
    excluded = f"TicketWebhooks/{webhook_id}/ExcludedResources"
    resource = sim.api_user_resource_id
    # The vendor sample sends WebhookID too; n8n and Nango send it; without it, the URL decides.
    assert (await api.post(excluded, {"ResourceID": resource, "WebhookID": webhook_id})).status == (
        200
    )
    mismatch = await api.post(excluded, {"ResourceID": 4, "WebhookID": other["itemId"]})
    assert mismatch.status == 500
    assert "does not match" in mismatch.body["errors"][0]
    assert (await api.post(excluded, {"ResourceID": 4})).status == 200
    rows = (await api.get(excluded)).body["items"]
    assert [(r["resourceID"], r["webhookID"]) for r in rows] == [
        (resource, webhook_id),
        (4, webhook_id),
    ]


async def test_unknown_body_properties_are_ignored(api: Api) -> None:
    # n8n's create body has always carried entityType, which is no webhook field.
    body = {**BASE, "entityType": "Ticket", "Whatever": {"nested": [1]}, "IsReady": True}
    created = await api.post("TicketWebhooks", body)
    assert created.status == 200
    item = (await api.get(f"TicketWebhooks/{created.body['itemId']}")).body["item"]
    assert "entityType" not in item
    assert item["isReady"] is False  # read-only: ignored too


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**BASE, "Name": "n" * 51}, "name must be less than or equal to 50 characters"),
        ({**BASE, "SecretKey": "k" * 65}, "secretKey must be less than or equal to 64 characters"),
        ({**BASE, "IsActive": "yes"}, "isActive"),
        ({**BASE, "IsActive": None}, "isActive: null is not a valid value."),
    ],
)
async def test_validation_texts(api: Api, body: dict[str, object], message: str) -> None:
    reply = await api.post("TicketWebhooks", body)
    assert reply.status == 500
    assert any(message in e for e in reply.body["errors"]), reply.body


HTTPS_URLS = ["https://hooks.example/cb", "https://hooks.example:443/cb", "HTTPS://h.example/x"]
NOT_HTTPS_URLS = ["http://hooks.example/cb", "https://hooks.example:8443/cb", "ftp://h/x", "x"]


@pytest.mark.parametrize("setting", ["off", "on_save", "on_delivery"])
async def test_https_only_on_save(session: aiohttp.ClientSession, setting: str) -> None:
    async with run_simulator(fast_config(webhooks=WebhookConfig(https_only=setting))) as sim:
        api = Api(sim, session)
        for i, url in enumerate(HTTPS_URLS):
            assert (
                await api.post("TicketWebhooks", {**BASE, "WebhookUrl": url + str(i)})
            ).status == (200)
        for url in NOT_HTTPS_URLS:
            reply = await api.post("TicketWebhooks", {**BASE, "WebhookUrl": url})
            if setting == "on_save":
                assert reply.body == {"errors": ["webhookUrl must be an https URL on port 443."]}
            else:
                assert reply.status == 200  # on_delivery stores it and never reaches it
        bad_deactivation = {**BASE, "WebhookUrl": "https://ok.example/", "DeactivationUrl": "x"}
        reply = await api.post("TicketWebhooks", bad_deactivation)
        assert reply.status == (500 if setting == "on_save" else 200)


async def test_field_picklist_and_children(api: Api, sim: Simulator) -> None:
    ids = await field_ids(api, "TicketWebhooks")
    assert {"title", "status", "ticketNumber", "companyID"} <= set(ids)
    assert "lastActivityDate" not in ids  # not a supported webhook field
    webhook_id = (await api.post("TicketWebhooks", {**BASE, "IsActive": True})).body["itemId"]
    display_only = await api.post(
        f"TicketWebhooks/{webhook_id}/Fields",
        {"FieldID": ids["ticketNumber"], "IsDisplayAlwaysField": True, "IsSubscribedField": False},
    )
    assert display_only.status == 200
    # Pessimistic: a display-always field alone does not make the webhook ready.
    assert (await api.get(f"TicketWebhooks/{webhook_id}")).body["item"]["isReady"] is False
    sub = await api.post(
        f"TicketWebhooks/{webhook_id}/Fields",
        {"fieldID": ids["status"], "isSubscribedField": True, "isDisplayAlwaysField": False},
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
        {
            "UdfFieldID": udf_ids["Customer Impact"],
            "IsSubscribedField": True,
            "IsDisplayAlwaysField": False,
        },
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


def _webhook(sim: Simulator, root: str, webhook_id: int) -> dict[str, Any]:
    registry_root = sim.state.webhooks.root(root)
    assert registry_root is not None
    webhook = registry_root.webhooks.get(webhook_id)
    assert webhook is not None
    return dict(webhook)


async def test_error_log_query_and_delete(api: Api, sim: Simulator) -> None:
    webhook_id = (await api.post("CompanyWebhooks", BASE)).body["itemId"]
    webhook = _webhook(sim, "CompanyWebhooks", webhook_id)
    row = sim.state.webhooks.add_error_log("CompanyWebhooks", webhook, "boom", "{}", 3)
    rows = await api.query("WebhookEventErrorLogs", CATCH_ALL)
    assert rows.status == 200
    [item] = rows.body["items"]
    assert (item["accountWebhookID"], item["sequenceNumber"], item["errorMessage"]) == (
        webhook_id,
        3,
        "boom",
    )
    assert (await api.get(f"WebhookEventErrorLogs/{row['id']}")).body["item"] == item
    assert (await api.delete(f"WebhookEventErrorLogs/{row['id']}")).status == 200
    assert (await api.query("WebhookEventErrorLogs", CATCH_ALL)).body["items"] == []
    assert (await api.post("WebhookEventErrorLogs", {})).status == 405
    assert (await api.patch("WebhookEventErrorLogs", {"id": row["id"]})).status == 405


@pytest.mark.parametrize(
    ("root", "column"),
    [
        ("CompanyWebhooks", "accountWebhookID"),
        ("ContactWebhooks", "contactWebhookID"),
        ("ConfigurationItemWebhooks", None),
        ("TicketWebhooks", None),
        ("TicketNoteWebhooks", None),
    ],
)
async def test_error_log_webhook_id_columns_as_the_swagger_has_them(
    api: Api, sim: Simulator, root: str, column: str | None
) -> None:
    info = await api.get("WebhookEventErrorLogs/entityInformation/fields")
    fields = {f["name"] for f in info.body["fields"]}
    assert {"accountWebhookID", "contactWebhookID"} <= fields
    assert not {"ticketWebhookID", "configurationItemWebhookID", "ticketNoteWebhookID"} & fields
    webhook_id = (await api.post(root, BASE)).body["itemId"]
    webhook = _webhook(sim, root, webhook_id)
    payload = json.dumps({"Action": "Update", "Guid": webhook["webhookGuid"]})
    sim.state.webhooks.add_error_log(root, webhook, "boom", payload, 1)
    [row] = (await api.query("WebhookEventErrorLogs", CATCH_ALL)).body["items"]
    ids = {c: row[c] for c in ("accountWebhookID", "contactWebhookID")}
    assert ids == {c: webhook_id if c == column else None for c in ids}
    # Rows without an id column are matched to their webhook through the payload's Guid.
    assert json.loads(row["payload"])["Guid"] == webhook["webhookGuid"]


async def test_error_log_rows_are_visible_to_their_owner_only(api: Api, sim: Simulator) -> None:
    webhook_id = (await api.post("TicketWebhooks", BASE)).body["itemId"]
    webhook = _webhook(sim, "TicketWebhooks", webhook_id)
    row = sim.state.webhooks.add_error_log("TicketWebhooks", webhook, "boom", "{}", 1)
    other = sim.add_api_user("other@sim.local", "other-secret", "OTHERCODE", resource_id=29682834)
    headers = {
        "UserName": other.username,
        "Secret": other.secret,
        "ApiIntegrationCode": "OTHERCODE",
    }
    rows = await api.post("WebhookEventErrorLogs/query", {"filter": CATCH_ALL}, headers=headers)
    assert rows.status == 200
    assert rows.body["items"] == []
    assert (await api.get(f"WebhookEventErrorLogs/{row['id']}", headers=headers)).status == 404
    assert (await api.delete(f"WebhookEventErrorLogs/{row['id']}", headers=headers)).status == 404
    assert len((await api.query("WebhookEventErrorLogs", CATCH_ALL)).body["items"]) == 1


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
