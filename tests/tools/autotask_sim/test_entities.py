"""Entity reads and writes (§3, §6): shapes, last-modified fields, delete logs, children."""

from __future__ import annotations

import re
from datetime import timedelta

import aiohttp
import pytest

from tests.helpers.simapi import CATCH_ALL, Api, fast_config
from tests.helpers.waiting import eventually
from tools.autotask_sim import (
    ApiBehaviour,
    EntityPermission,
    SecurityLevel,
    Simulator,
    run_simulator,
)
from tools.autotask_sim.apierror import PERMISSION_TEXT
from tools.autotask_sim.store.tenant import NO_MATCH_DELETE

NEW_TICKET = {"companyID": 0, "title": "Printer down", "status": 1, "priority": 2}


async def test_get_by_id_shape(api: Api, sim: Simulator) -> None:
    ticket = sim.state.entities("Tickets")[3]
    reply = await api.get(f"Tickets/{ticket['id']}")
    assert reply.status == 200
    item = reply.body["item"]
    assert item == ticket
    assert re.fullmatch(r"T\d{8}\.\d{4}", item["ticketNumber"])
    for name in ("id", "status", "priority", "queueID", "companyID"):
        assert isinstance(item[name], int)
    assert {u["name"] for u in item["userDefinedFields"]} == {
        "External Reference",
        "Customer Impact",
    }


async def test_timestamps_come_with_and_without_z(api: Api) -> None:
    item = (await api.get("Tickets/7000")).body["item"]
    stamps = [
        item[k] for k in ("createDate", "lastActivityDate", "lastTrackedModificationDateTime")
    ]
    stamps += [item["dueDateTime"]]
    assert any(s.endswith("Z") for s in stamps)
    assert any(not s.endswith("Z") for s in stamps)
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z?", stamp)


async def test_missing_id_is_404_by_default(api: Api) -> None:
    reply = await api.get("Tickets/999999")
    assert reply.status == 404
    assert reply.body["errors"]


async def test_missing_id_null_item_option(session: aiohttp.ClientSession) -> None:
    config = fast_config(api=ApiBehaviour(null_item_entities=["Tickets"]))
    async with run_simulator(config) as sim:
        api = Api(sim, session)
        reply = await api.get("Tickets/999999")
        assert (reply.status, reply.body) == (200, {"item": None})
        assert (await api.get("Companies/999999")).status == 404


async def test_create_sets_stamps_number_and_creator(api: Api, sim: Simulator) -> None:
    reply = await api.post("Tickets", NEW_TICKET)
    assert reply.status == 200
    new_id = reply.body["itemId"]
    item = (await api.get(f"Tickets/{new_id}")).body["item"]
    assert item["title"] == "Printer down"
    assert item["creatorResourceID"] == sim.api_user_resource_id
    assert re.fullmatch(r"T\d{8}\.\d{4}", item["ticketNumber"])
    stamps = {item[k][:23] for k in ("createDate", "lastTrackedModificationDateTime")}
    assert len(stamps) == 1
    assert new_id > max(t["id"] for t in sim.state.entities("Tickets") if t["id"] != new_id)


async def test_update_moves_last_modified_fields(api: Api) -> None:
    new_id = (await api.post("Tickets", NEW_TICKET)).body["itemId"]
    before = (await api.get(f"Tickets/{new_id}")).body["item"]
    patched = await api.patch("Tickets", {"id": new_id, "priority": 1})
    assert patched.body == {"itemId": new_id}
    after = (await api.get(f"Tickets/{new_id}")).body["item"]
    assert after["priority"] == 1
    for field in ("lastTrackedModificationDateTime", "lastActivityDate"):
        assert after[field][:23] > before[field][:23]
    assert after["createDate"] == before["createDate"]
    # The sync's incremental filter finds exactly the changed row.
    flt = [
        {
            "op": "gt",
            "field": "lastTrackedModificationDateTime",
            "value": before["lastTrackedModificationDateTime"],
        }
    ]
    assert await api.ids("Tickets", flt) == [new_id]


async def test_noop_update_does_not_move_stamps(api: Api) -> None:
    new_id = (await api.post("Tickets", NEW_TICKET)).body["itemId"]
    before = (await api.get(f"Tickets/{new_id}")).body["item"]
    await api.patch("Tickets", {"id": new_id, "priority": 2})
    after = (await api.get(f"Tickets/{new_id}")).body["item"]
    assert after == before


@pytest.mark.parametrize(
    ("entity", "create", "change", "stamp"),
    [
        (
            "Companies",
            {"companyName": "X", "companyType": 1, "phone": "1", "ownerResourceID": None},
            {"city": "Oslo"},
            "lastTrackedModifiedDateTime",
        ),
        (
            "Contacts",
            {"companyID": 0, "firstName": "A", "lastName": "B", "isActive": 1},
            {"title": "CTO"},
            "lastModifiedDate",
        ),
        (
            "ConfigurationItems",
            {"companyID": 0, "referenceTitle": "PC", "isActive": True},
            {"serialNumber": "S1"},
            "lastModifiedTime",
        ),
    ],
)
async def test_each_entity_moves_its_watermark(
    api: Api,
    sim: Simulator,
    entity: str,
    create: dict[str, object],
    change: dict[str, object],
    stamp: str,
) -> None:
    if "ownerResourceID" in create:
        create = {**create, "ownerResourceID": sim.api_user_resource_id}
    new_id = (await api.post(entity, create)).body["itemId"]
    before = (await api.get(f"{entity}/{new_id}")).body["item"]
    assert before[stamp] is not None
    assert (await api.patch(entity, {"id": new_id, **change})).status == 200
    after = (await api.get(f"{entity}/{new_id}")).body["item"]
    assert after[stamp][:23] > before[stamp][:23]


async def test_note_changes_move_the_parent_ticket_activity(api: Api) -> None:
    ticket_id = (await api.post("Tickets", NEW_TICKET)).body["itemId"]
    ticket = (await api.get(f"Tickets/{ticket_id}")).body["item"]
    note = {"title": "Called", "description": "Left a message", "noteType": 1, "publish": 1}
    created = await api.post(f"Tickets/{ticket_id}/Notes", note)
    assert created.status == 200
    note_id = created.body["itemId"]
    after = (await api.get(f"Tickets/{ticket_id}")).body["item"]
    assert after["lastActivityDate"][:23] > ticket["lastActivityDate"][:23]
    # A note is activity, not a tracked edit of the ticket itself.
    assert after["lastTrackedModificationDateTime"] == ticket["lastTrackedModificationDateTime"]
    listed = await api.get(f"Tickets/{ticket_id}/Notes")
    assert [n["id"] for n in listed.body["items"]] == [note_id]
    assert (await api.get(f"Tickets/{ticket_id}/Notes/{note_id}")).body["item"][
        "ticketID"
    ] == ticket_id
    # Child updates PATCH the collection URL; PATCH on the child id is 405.
    assert (await api.patch(f"Tickets/{ticket_id}/Notes/{note_id}", {"title": "x"})).status == 405
    assert (
        await api.patch(f"Tickets/{ticket_id}/Notes", {"id": note_id, "title": "Called back"})
    ).status == 200
    assert (await api.get(f"TicketNotes/{note_id}")).body["item"]["title"] == "Called back"


async def test_delete_ticket_writes_deleted_ticket_log(api: Api, sim: Simulator) -> None:
    created = await api.post("Tickets", {**NEW_TICKET, "title": "Short-lived"})
    ticket_id = created.body["itemId"]
    number = (await api.get(f"Tickets/{ticket_id}")).body["item"]["ticketNumber"]
    reply = await api.delete(f"Tickets/{ticket_id}")
    assert reply.body == {"itemId": ticket_id}
    assert (await api.get(f"Tickets/{ticket_id}")).status == 404
    logs = await api.query(
        "DeletedTicketLogs", [{"op": "eq", "field": "ticketID", "value": ticket_id}]
    )
    assert logs.status == 200
    [row] = logs.body["items"]
    assert row["ticketNumber"] == number
    assert row["ticketTitle"] == "Short-lived"
    assert row["deletedByResourceID"] == sim.api_user_resource_id
    assert row["deletedDateTime"]
    again = await api.delete(f"Tickets/{ticket_id}")
    assert again.status == 500
    assert again.body == {"errors": [NO_MATCH_DELETE]}


async def test_deleted_note_is_in_activity_log(api: Api) -> None:
    ticket_id = (await api.post("Tickets", NEW_TICKET)).body["itemId"]
    note = {"title": "Tmp", "description": "d", "noteType": 1, "publish": 1}
    note_id = (await api.post(f"Tickets/{ticket_id}/Notes", note)).body["itemId"]
    assert (await api.delete(f"Tickets/{ticket_id}/Notes/{note_id}")).status == 200
    rows = await api.query(
        "DeletedTicketActivityLogs", [{"op": "eq", "field": "ticketID", "value": ticket_id}]
    )
    assert [r["noteOrAttachmentTitle"] for r in rows.body["items"]] == ["Tmp"]


async def test_put_replaces_and_both_put_forms_work(api: Api) -> None:
    new_id = (await api.post("Tickets", {**NEW_TICKET, "description": "keep?"})).body["itemId"]
    full = (await api.get(f"Tickets/{new_id}")).body["item"]
    assert (await api.put(f"Tickets/{new_id}", {**full, "title": "via PUT id"})).status == 200
    assert (await api.get(f"Tickets/{new_id}")).body["item"]["description"] == "keep?"
    replace = {"id": new_id, "companyID": 0, "title": "replaced", "status": 1, "priority": 3}
    assert (await api.put("Tickets", replace)).status == 200
    item = (await api.get(f"Tickets/{new_id}")).body["item"]
    assert (item["title"], item["description"]) == ("replaced", None)  # full replace clears


async def test_wrong_verbs_are_405(api: Api) -> None:
    assert (await api.patch("Tickets/7000", {"title": "x"})).status == 405
    assert (await api.post("Tickets/7000", {"title": "x"})).status == 405
    assert (await api.get("Tickets")).status == 405
    assert (await api.delete("ConfigurationItems/500")).status == 405  # CIs cannot be deleted
    assert (await api.post("Resources", {"firstName": "x"})).status == 405
    assert (await api.put("ThresholdInformation", {})).status == 405


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {**NEW_TICKET, "companyID": 98765},
            "Reference value on field: companyID of type: Company does not exist or is invalid.",
        ),
        ({k: v for k, v in NEW_TICKET.items() if k != "title"}, "title is required"),
        ({**NEW_TICKET, "status": 4242}, "status"),
        ({**NEW_TICKET, "title": "x" * 256}, "title must be less than or equal to 255 characters"),
        ({**NEW_TICKET, "estimatedHours": "lots"}, "estimatedHours"),
    ],
)
async def test_create_validation(api: Api, body: dict[str, object], fragment: str) -> None:
    reply = await api.post("Tickets", body)
    assert reply.status == 500
    assert any(fragment in e for e in reply.body["errors"]), reply.body


async def test_booleans_must_be_json_booleans(api: Api) -> None:
    body = {"companyID": 0, "referenceTitle": "PC", "isActive": 1}
    assert (await api.post("ConfigurationItems", body)).status == 500
    assert (await api.post("ConfigurationItems", {**body, "isActive": None})).status == 500
    assert (await api.post("ConfigurationItems", {**body, "isActive": True})).status == 200


async def test_impersonation_attributes_writes(api: Api, sim: Simulator) -> None:
    human = sim.state.entities("Resources")[2]["id"]
    headers = api.headers(ImpersonationResourceId=str(human))
    new_id = (await api.post("Tickets", NEW_TICKET, headers=headers)).body["itemId"]
    assert (await api.get(f"Tickets/{new_id}")).body["item"]["creatorResourceID"] == human
    bad = await api.post("Tickets", NEW_TICKET, headers=api.headers(ImpersonationResourceId="1"))
    assert bad.status == 500


async def test_entity_information_endpoints(api: Api) -> None:
    info = (await api.get("ConfigurationItems/entityInformation")).body["info"]
    assert info["canDelete"] is False
    assert info["supportsWebhookCallouts"] is True
    assert info["userAccessForQuery"] == "All"
    fields = (await api.get("Tickets/entityInformation/fields")).body["fields"]
    by_name = {f["name"]: f for f in fields}
    status = by_name["status"]
    assert status["isPickList"] is True
    assert {"value": "5", "label": "Complete"}.items() <= status["picklistValues"][1].items()
    assert by_name["subIssueType"]["picklistParentValueField"] == "issueType"
    assert by_name["companyID"]["referenceEntityType"] == "Company"
    assert by_name["title"]["isSupportedWebhookField"] is True
    assert by_name["lastTrackedModificationDateTime"]["isSupportedWebhookField"] is False
    udfs = (await api.get("Tickets/entityInformation/userDefinedFields")).body["fields"]
    assert [u["name"] for u in udfs] == ["External Reference", "Customer Impact"]


@pytest.mark.parametrize("status", [403, 500])
async def test_permissions_deny_with_403_or_500_text(
    session: aiohttp.ClientSession, status: int
) -> None:
    level = SecurityLevel(permissions={"tickets": EntityPermission(create=False, delete=False)})
    config = fast_config(security=level, api=ApiBehaviour(permission_denied_status=status))
    async with run_simulator(config) as sim:
        api = Api(sim, session)
        denied = await api.post("Tickets", NEW_TICKET)
        assert denied.status == status
        assert PERMISSION_TEXT in denied.body["errors"][0]
        assert (await api.delete("Tickets/7000")).status == status
        assert (await api.get("Tickets/7000")).status == 200
        info = (await api.get("Tickets/entityInformation")).body["info"]
        assert (info["userAccessForCreate"], info["userAccessForQuery"]) == ("None", "All")


async def test_read_after_write_lag_fault(api: Api, sim: Simulator) -> None:
    sim.set_faults(read_after_write_lag=timedelta(seconds=2))  # far longer than a request
    new_id = (await api.post("Tickets", NEW_TICKET)).body["itemId"]
    assert (await api.get(f"Tickets/{new_id}")).status == 404
    assert (await api.get("Tickets/7000")).status == 200  # old rows are unaffected

    async def visible() -> bool:
        return (await api.get(f"Tickets/{new_id}")).status == 200

    await eventually(visible, within=timedelta(seconds=10))


async def test_catch_all_includes_company_zero(api: Api) -> None:
    ids = await api.ids("Companies", CATCH_ALL)
    assert ids[0] == 0  # a "gt 0" catch-all would silently miss the tenant's own company
    assert 0 not in await api.ids("Companies", [{"op": "gt", "field": "id", "value": 0}])
