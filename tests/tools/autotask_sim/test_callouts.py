"""Signed callouts to a real receiver (§8): payload, signature, which webhooks fire, delivery."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from shared.entities import by_callout_type
from tests.helpers.receiver import Receiver
from tests.helpers.simapi import Api, fast_callouts, fast_config, make_webhook
from tests.helpers.waiting import eventually
from tools.autotask_sim import (
    CalloutConfig,
    EntityPermission,
    SecurityLevel,
    Simulator,
    WebhookConfig,
    run_simulator,
)
from tools.autotask_sim.callouts.codec import ENTITY_TYPES, PAYLOAD_KEY_ORDER
from tools.autotask_sim.callouts.delivery import HTTPS_ONLY_ERROR

SECRET = "s3cret-key-0123"
TICKET = 7000


def expected_signature(secret: str, body: bytes) -> str:
    """The documented algorithm, written out independently of the simulator's codec."""
    digest = hmac.new(secret.encode(), body, hashlib.sha1).digest()
    return "sha1=" + base64.b64encode(digest).decode()


async def ticket_hook(api: Api, receiver: Receiver, name: str = "hook", **kw: Any) -> int:
    kw.setdefault("subscribed", ("status", "priority", "title"))
    kw.setdefault("display", ("ticketNumber",))
    return await make_webhook(api, "TicketWebhooks", receiver.url(name), **kw)


async def test_update_callout_payload_and_signature(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    webhook_id = await ticket_hook(api, receiver)
    before = sim.state.entity("Tickets", TICKET)
    assert before is not None
    new_status = 8 if before["status"] != 8 else 7
    person = sim.state.entities("Resources")[3]["id"]
    sim.update_entity(
        "Tickets", TICKET, {"status": new_status, "description": "not subscribed"}, person
    )
    await receiver.wait_for(lambda r: len(r) == 1)
    [call] = receiver.requests
    assert call.headers["Content-Type"].startswith("application/json")
    assert call.headers["X-Hook-Signature"] == expected_signature(SECRET, call.body)
    payload = call.json()
    assert list(payload) == list(PAYLOAD_KEY_ORDER)
    guid = (await api.get(f"TicketWebhooks/{webhook_id}")).body["item"]["webhookGuid"]
    assert payload["Action"] == "Update"
    assert payload["Guid"] == guid
    assert payload["EntityType"] == "Ticket"
    assert payload["Id"] == TICKET
    # Changed subscribed fields (new values only) plus display-always fields.
    assert payload["Fields"] == {"ticketNumber": before["ticketNumber"], "status": new_status}
    assert payload["SequenceNumber"] == 1
    assert payload["PersonID"] == person
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", payload["EventTime"])
    assert b'": ' not in call.body
    assert b", " not in call.body


async def test_non_ascii_is_escaped_on_the_wire_and_signed(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    await ticket_hook(api, receiver)
    sim.update_entity("Tickets", TICKET, {"title": "Café & <bar> +1 'x'"})
    await receiver.wait_for(lambda r: len(r) == 1)
    body = receiver.requests[0].body
    assert b'"title":"Caf\\u00E9 \\u0026 \\u003Cbar\\u003E \\u002B1 \\u0027x\\u0027"' in body
    assert body.isascii()
    assert receiver.requests[0].headers["X-Hook-Signature"] == expected_signature(SECRET, body)
    assert receiver.requests[0].json()["Fields"]["title"] == "Café & <bar> +1 'x'"


async def test_unsubscribed_changes_do_not_fire(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    await ticket_hook(api, receiver)
    sim.update_entity("Tickets", TICKET, {"description": "only an unsubscribed field"})
    sim.update_entity("Tickets", TICKET, {"title": "subscribed change"})
    await receiver.wait_for(lambda r: len(r) >= 1)
    assert await sim.wait_for_callouts(timedelta(seconds=2))
    assert [r.json()["Fields"].get("title") for r in receiver.requests] == ["subscribed change"]
    assert receiver.requests[0].json()["SequenceNumber"] == 1


async def test_excluded_resource_rule_decides_which_webhooks_fire(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    await ticket_hook(api, receiver, "excludes-api-user", excluded=(sim.api_user_resource_id,))
    await ticket_hook(api, receiver, "hears-everyone")
    # Our own API write: only the webhook without the exclusion fires.
    assert (await api.patch("Tickets", {"id": TICKET, "title": "API edit"})).status == 200
    await receiver.wait_for(lambda r: len(r) >= 1)
    assert await sim.wait_for_callouts(timedelta(seconds=2))
    assert [r.path for r in receiver.requests] == ["/hears-everyone"]
    assert receiver.requests[0].json()["PersonID"] == sim.api_user_resource_id
    # A person in the UI: both fire.
    sim.update_entity("Tickets", TICKET, {"title": "UI edit"})
    await receiver.wait_for(lambda r: len(r) == 3)
    assert sorted(r.path for r in receiver.requests[1:]) == [
        "/excludes-api-user",
        "/hears-everyone",
    ]


async def test_impersonated_writes_are_not_excluded(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    await ticket_hook(api, receiver, excluded=(sim.api_user_resource_id,))
    human = sim.state.entities("Resources")[2]["id"]
    headers = api.headers(ImpersonationResourceId=str(human))
    assert (
        await api.patch("Tickets", {"id": TICKET, "title": "on behalf"}, headers=headers)
    ).status == 200
    await receiver.wait_for(lambda r: len(r) == 1)
    assert receiver.requests[0].json()["PersonID"] == human


async def test_event_type_subscription_and_create_delete_fields(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    await ticket_hook(api, receiver, "creates", events=("Create",))
    await ticket_hook(api, receiver, "deletes", events=("Delete",))
    created = sim.create_entity(
        "Tickets", {"companyID": 0, "title": "n", "status": 1, "priority": 2}
    )
    sim.update_entity("Tickets", created["id"], {"title": "changed"})
    sim.delete_entity("Tickets", created["id"])
    await receiver.wait_for(lambda r: len(r) == 2)
    assert await sim.wait_for_callouts(timedelta(seconds=2))
    create = receiver.at("creates")[0].json()
    delete = receiver.at("deletes")[0].json()
    assert len(receiver.requests) == 2  # the update fired nothing
    assert (create["Action"], create["Id"]) == ("Create", created["id"])
    assert create["Fields"] == {"ticketNumber": created["ticketNumber"]}  # display-always only
    assert (delete["Action"], delete["Fields"]) == ("Delete", {})  # Nango's sample shape


async def test_inactive_or_unready_webhooks_do_not_fire(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    inactive = await ticket_hook(api, receiver, "inactive")
    assert (await api.patch("TicketWebhooks", {"id": inactive, "IsActive": False})).status == 200
    await make_webhook(api, "TicketWebhooks", receiver.url("unready"), display=("title",))
    await ticket_hook(api, receiver, "live")
    sim.update_entity("Tickets", TICKET, {"title": "x1"})
    await receiver.wait_for(lambda r: any(x.path == "/live" for x in r))
    assert await sim.wait_for_callouts(timedelta(seconds=2))
    assert {r.path for r in receiver.requests} == {"/live", "/inactive-deactivated"}


async def test_udf_subscription(api: Api, sim: Simulator, receiver: Receiver) -> None:
    await ticket_hook(api, receiver, subscribed=(), subscribed_udfs=("Customer Impact",))
    sim.update_entity("Tickets", TICKET, {"title": "ignored"})
    sim.update_entity(
        "Tickets", TICKET, {"userDefinedFields": [{"name": "Customer Impact", "value": "Severe"}]}
    )
    await receiver.wait_for(lambda r: len(r) == 1)
    assert await sim.wait_for_callouts(timedelta(seconds=2))
    assert receiver.requests[0].json()["Fields"]["Customer Impact"] == "Severe"
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("entity", ["Companies", "Contacts", "ConfigurationItems", "TicketNotes"])
async def test_every_webhook_entity_calls_out(
    api: Api, sim: Simulator, receiver: Receiver, entity: str
) -> None:
    root = {
        "Companies": "CompanyWebhooks",
        "Contacts": "ContactWebhooks",
        "ConfigurationItems": "ConfigurationItemWebhooks",
        "TicketNotes": "TicketNoteWebhooks",
    }[entity]
    field = {
        "Companies": "phone",
        "Contacts": "title",
        "ConfigurationItems": "serialNumber",
        "TicketNotes": "title",
    }[entity]
    await make_webhook(api, root, receiver.url(root), subscribed=(field,))
    record_id = sim.state.entities(entity)[1]["id"]
    sim.update_entity(entity, record_id, {field: "Changed-1"})
    await receiver.wait_for(lambda r: len(r) == 1)
    payload = receiver.requests[0].json()
    # SOAP-era names: InstalledProduct is seen in production, Account is the default guess.
    assert (
        payload["EntityType"]
        == {
            "Companies": "Account",
            "Contacts": "Contact",
            "ConfigurationItems": "InstalledProduct",
            "TicketNotes": "TicketNote",
        }[entity]
    )
    assert (payload["Id"], payload["Fields"]) == (record_id, {field: "Changed-1"})
    # The project's entity registry maps the spelling the callout carries.
    assert by_callout_type(payload["EntityType"]).rest_name == entity


async def test_payload_options(session: aiohttp.ClientSession, receiver: Receiver) -> None:
    callouts = CalloutConfig(
        field_key_case="pascal",
        person_id_key="PersonId",
        values_as_strings=True,
        company_entity_type="Company",
        guid="event",
        create_fields="subscribed_and_display_always",
        delete_fields="display_always",
    )
    async with run_simulator(fast_config(callouts=callouts)) as sim:
        api = Api(sim, session)
        await make_webhook(
            api,
            "CompanyWebhooks",
            receiver.url("c"),
            subscribed=("companyType", "phone"),
            display=("companyName",),
        )
        created = sim.create_entity(
            "Companies",
            {
                "companyName": "Acme",
                "companyType": 2,
                "phone": "1",
                "ownerResourceID": sim.api_user_resource_id,
            },
        )
        sim.delete_entity("Companies", created["id"])
        await receiver.wait_for(lambda r: len(r) == 2)
        create, delete = (r.json() for r in receiver.requests)
        assert create["EntityType"] == "Company"
        assert create["Fields"] == {"CompanyName": "Acme", "CompanyType": "2", "Phone": "1"}
        assert "PersonId" in create
        assert "PersonID" not in create
        assert delete["Fields"] == {"CompanyName": "Acme"}
        assert create["Guid"] != delete["Guid"]


async def test_retry_then_success_keeps_trigger_order(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    attempts: dict[str, int] = {}

    def flaky(request: Any) -> int:
        title = json.loads(request.body)["Fields"].get("title", "")
        attempts[title] = attempts.get(title, 0) + 1
        return 503 if title == "first" and attempts[title] <= 2 else 200

    receiver.status_for = flaky
    await ticket_hook(api, receiver)
    sim.update_entity("Tickets", TICKET, {"title": "first"})
    sim.update_entity("Tickets", TICKET, {"title": "second"})
    assert await sim.wait_for_callouts(timedelta(seconds=5))
    titles = [r.json()["Fields"]["title"] for r in receiver.requests]
    # "second" waited in the queue until "first" succeeded on its third attempt.
    assert titles == ["first", "first", "first", "second"]
    outcomes = [(e["sequenceNumber"], e["outcome"], e["attempt"]) for e in sim.state.callout_log]
    assert outcomes == [
        (1, "failed_attempt", 1),
        (1, "failed_attempt", 2),
        (1, "delivered", 3),
        (2, "delivered", 1),
    ]
    assert sim.state.error_log() == []


async def test_five_failed_attempts_write_an_error_log_row(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    receiver.status_for = lambda _r: 500
    webhook_id = await ticket_hook(api, receiver)
    sim.update_entity("Tickets", TICKET, {"title": "doomed"})
    assert await sim.wait_for_callouts(timedelta(seconds=5))
    assert len(receiver.requests) == 5
    rows = await api.query("WebhookEventErrorLogs", [{"op": "gte", "field": "id", "value": 0}])
    [row] = rows.body["items"]
    # Ticket webhooks have no id column in the error log: the payload's Guid names the webhook.
    guid = (await api.get(f"TicketWebhooks/{webhook_id}")).body["item"]["webhookGuid"]
    assert json.loads(row["payload"])["Guid"] == guid
    assert (row["accountWebhookID"], row["contactWebhookID"]) == (None, None)
    assert row["sequenceNumber"] == 1
    assert row["payload"].encode() == receiver.requests[0].body
    assert "(500)" in row["errorMessage"]
    assert (await api.get(f"TicketWebhooks/{webhook_id}")).body["item"]["isActive"] is True


async def test_timeouts_count_as_failures(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    callouts = CalloutConfig(
        timeout=timedelta(milliseconds=100), retry_delay=timedelta(0), max_attempts=2
    )
    async with run_simulator(fast_config(callouts=callouts)) as sim:
        api = Api(sim, session)
        receiver.delay_for = lambda _r: 0.5
        await ticket_hook(api, receiver)
        sim.update_entity("Tickets", TICKET, {"title": "slow receiver"})
        assert await sim.wait_for_callouts(timedelta(seconds=5))
        [row] = sim.state.error_log()
        assert row["errorMessage"] == "The operation has timed out."
        assert len(receiver.requests) == 2


async def test_deactivation_after_25_consecutive_failed_events(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    callouts = CalloutConfig(timeout=timedelta(seconds=2), retry_delay=timedelta(0))  # real counts
    async with run_simulator(fast_config(callouts=callouts)) as sim:
        api = Api(sim, session)
        receiver.status_for = lambda r: 200 if r.path == "/gone-deactivated" else 500
        webhook_id = await ticket_hook(api, receiver, "gone")
        guid = (await api.get(f"TicketWebhooks/{webhook_id}")).body["item"]["webhookGuid"]
        for i in range(24):
            sim.update_entity("Tickets", TICKET, {"title": f"event {i}"})
        assert await sim.wait_for_callouts(timedelta(seconds=20))
        assert (await api.get(f"TicketWebhooks/{webhook_id}")).body["item"]["isActive"] is True
        sim.update_entity("Tickets", TICKET, {"title": "event 24"})
        await receiver.wait_for(lambda r: any(x.path == "/gone-deactivated" for x in r))
        assert await sim.wait_for_callouts(timedelta(seconds=5))
        assert len(receiver.at("gone")) == 25 * 5
        assert len(sim.state.error_log()) == 25
        item = (await api.get(f"TicketWebhooks/{webhook_id}")).body["item"]
        assert item["isActive"] is False
        [deactivation] = receiver.at("gone-deactivated")
        notice = deactivation.json()
        assert list(notice) == ["Action", "Guid", "Id", "EventTime"]
        assert (notice["Action"], notice["Guid"], notice["Id"]) == ("Deactivated", guid, webhook_id)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", notice["EventTime"])
        assert "X-Hook-Signature" not in deactivation.headers  # unsigned
        sim.update_entity("Tickets", TICKET, {"title": "after deactivation"})
        assert await sim.wait_for_callouts(timedelta(seconds=2))
        assert len(receiver.at("gone")) == 125


async def test_a_success_resets_the_consecutive_failure_count(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    callouts = CalloutConfig(
        retry_delay=timedelta(0), max_attempts=1, deactivate_after_failed_events=3
    )
    async with run_simulator(fast_config(callouts=callouts)) as sim:
        api = Api(sim, session)
        receiver.status_for = lambda r: 200 if b"ok" in r.body else 500
        webhook_id = await ticket_hook(api, receiver)
        for title in ("f1", "f2", "ok", "f3", "f4"):
            sim.update_entity("Tickets", TICKET, {"title": title})
        assert await sim.wait_for_callouts(timedelta(seconds=5))
        assert (await api.get(f"TicketWebhooks/{webhook_id}")).body["item"]["isActive"] is True
        sim.update_entity("Tickets", TICKET, {"title": "f5"})
        assert await sim.wait_for_callouts(timedelta(seconds=5))
        assert (await api.get(f"TicketWebhooks/{webhook_id}")).body["item"]["isActive"] is False
        # Re-activating through the API resets the count.
        assert (
            await api.patch("TicketWebhooks", {"id": webhook_id, "IsActive": True})
        ).status == 200
        sim.update_entity("Tickets", TICKET, {"title": "f6"})
        assert await sim.wait_for_callouts(timedelta(seconds=5))
        assert (await api.get(f"TicketWebhooks/{webhook_id}")).body["item"]["isActive"] is True


async def test_api_deactivation_and_delete_call_the_deactivation_url(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    webhook_id = await ticket_hook(api, receiver, "w")
    assert (await api.patch("TicketWebhooks", {"id": webhook_id, "IsActive": False})).status == 200
    await receiver.wait_for(lambda r: len(r) == 1)
    assert (await api.delete(f"TicketWebhooks/{webhook_id}")).status == 200
    await receiver.wait_for(lambda r: len(r) == 2)
    assert await sim.wait_for_callouts(timedelta(seconds=5))  # the log follows the answer
    assert [r.path for r in receiver.requests] == ["/w-deactivated", "/w-deactivated"]
    reasons = [
        e.get("reason") for e in sim.state.callout_log if e["outcome"] == "deactivation_call"
    ]
    assert reasons == ["patch", "delete"]


async def test_sequence_numbers_are_per_webhook(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    await ticket_hook(api, receiver, "a")
    await ticket_hook(api, receiver, "b", events=("Update",))
    for title in ("one", "two", "three"):
        sim.update_entity("Tickets", TICKET, {"title": title})
    await receiver.wait_for(lambda r: len(r) == 6)
    for name in ("a", "b"):
        assert [r.json()["SequenceNumber"] for r in receiver.at(name)] == [1, 2, 3]

    def delivered() -> bool:
        return sim.state.dispatcher.counters["delivered"] == 6

    await eventually(delivered)


async def test_time_scale_shrinks_autotask_durations(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    # Default callout settings (10 s timeout, 30 s retry, 5 attempts) at 1/1000 speed.
    async with run_simulator(fast_config(callouts=CalloutConfig(), time_scale=0.002)) as sim:
        api = Api(sim, session)
        receiver.status_for = lambda _r: 500
        await ticket_hook(api, receiver)
        loop = asyncio.get_running_loop()
        start = loop.time()
        sim.update_entity("Tickets", TICKET, {"title": "scaled"})
        assert await sim.wait_for_callouts(timedelta(seconds=5))
        elapsed = loop.time() - start
        assert len(receiver.requests) == 5
        assert 4 * 0.06 <= elapsed < 3  # four 60 ms retry waits, not four 30 s ones
        assert len(sim.state.error_log()) == 1


@pytest.mark.parametrize("company", ["Account", "Company"])
async def test_company_entity_type_setting(
    session: aiohttp.ClientSession, receiver: Receiver, company: str
) -> None:
    async with run_simulator(
        fast_config(callouts=fast_callouts(company_entity_type=company))
    ) as sim:
        api = Api(sim, session)
        await make_webhook(api, "CompanyWebhooks", receiver.url("c"), subscribed=("phone",))
        await ticket_hook(api, receiver, "t")
        sim.update_entity("Companies", 0, {"phone": "+1 555 0142"})
        sim.update_entity("Tickets", TICKET, {"title": "typed"})
        await receiver.wait_for(lambda r: len(r) == 2)
        assert receiver.at("c")[0].json()["EntityType"] == company
        assert receiver.at("t")[0].json()["EntityType"] == "Ticket"  # seen in production
        assert by_callout_type(company).rest_name == "Companies"


def test_the_registry_maps_every_entity_type_the_simulator_sends() -> None:
    sent = {**ENTITY_TYPES, "Companies": "Account"}
    for rest_name, wire_name in [*sent.items(), ("Companies", "Company")]:
        assert by_callout_type(wire_name).rest_name == rest_name
        assert by_callout_type(wire_name.lower()).rest_name == rest_name


async def test_exclusions_can_leave_api_writes_alone(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    config = fast_config(callouts=fast_callouts(exclusions_cover_api_writes=False))
    async with run_simulator(config) as sim:
        api = Api(sim, session)
        human = sim.state.entities("Resources")[2]["id"]
        await ticket_hook(api, receiver, excluded=(sim.api_user_resource_id, human))
        assert (await api.patch("Tickets", {"id": TICKET, "title": "API edit"})).status == 200
        sim.update_entity("Tickets", TICKET, {"title": "UI edit"}, human)
        await receiver.wait_for(lambda r: len(r) >= 1)
        assert await sim.wait_for_callouts(timedelta(seconds=2))
        # The API user's own write calls back; the excluded person's UI edit still does not.
        [call] = receiver.requests
        assert (call.json()["Fields"]["title"], call.json()["PersonID"]) == (
            "API edit",
            sim.api_user_resource_id,
        )


@pytest.mark.parametrize("required", [True, False])
async def test_callouts_need_the_owner_read_permission(
    session: aiohttp.ClientSession, receiver: Receiver, required: bool
) -> None:
    async with run_simulator(
        fast_config(callouts=fast_callouts(require_owner_read=required))
    ) as sim:
        api = Api(sim, session)
        await ticket_hook(api, receiver, "tickets")
        await make_webhook(api, "CompanyWebhooks", receiver.url("companies"), subscribed=("phone",))
        sim.set_security(SecurityLevel(permissions={"Tickets": EntityPermission(read=False)}))
        sim.update_entity("Tickets", TICKET, {"title": "hidden from the owner"})
        sim.update_entity("Companies", 0, {"phone": "+1 555 0143"})
        await receiver.wait_for(lambda r: any(x.path == "/companies" for x in r))
        assert await sim.wait_for_callouts(timedelta(seconds=2))
        assert len(receiver.at("tickets")) == (0 if required else 1)


async def test_sequential_dispatch_is_one_at_a_time_in_trigger_order(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    receiver.delay_for = lambda _r: 0.02
    await ticket_hook(api, receiver)
    for i in range(5):
        sim.update_entity("Tickets", TICKET, {"title": f"in order {i}"})
    assert await sim.wait_for_callouts(timedelta(seconds=5))
    assert [r.json()["SequenceNumber"] for r in receiver.requests] == [1, 2, 3, 4, 5]
    assert receiver.peak_in_flight == 1


async def test_concurrent_dispatch_sends_out_of_order_while_healthy(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    async with run_simulator(fast_config(callouts=fast_callouts(dispatch="concurrent"))) as sim:
        api = Api(sim, session)
        receiver.delay_for = lambda _r: 0.15
        await ticket_hook(api, receiver)
        for i in range(8):
            sim.update_entity("Tickets", TICKET, {"title": f"burst {i}"})
        assert await sim.wait_for_callouts(timedelta(seconds=5))
        sequence = [r.json()["SequenceNumber"] for r in receiver.requests]
        assert sorted(sequence) == list(range(1, 9))  # each once ...
        assert sequence != sorted(sequence)  # ... but not in trigger order
        assert receiver.peak_in_flight > 1  # and several at once
        assert sim.state.dispatcher.counters["delivered"] == 8


async def test_concurrent_dispatch_retries_failures_in_trigger_order(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    async with run_simulator(fast_config(callouts=fast_callouts(dispatch="concurrent"))) as sim:
        api = Api(sim, session)
        seen: dict[int, int] = {}

        def first_tries_of_2_and_5_fail(request: Any) -> int:
            sequence = json.loads(request.body)["SequenceNumber"]
            seen[sequence] = seen.get(sequence, 0) + 1
            return 503 if sequence in (2, 5) and seen[sequence] == 1 else 200

        receiver.status_for = first_tries_of_2_and_5_fail
        await ticket_hook(api, receiver)
        for i in range(6):
            sim.update_entity("Tickets", TICKET, {"title": f"burst {i}"})
        assert await sim.wait_for_callouts(timedelta(seconds=5))
        sequence = [r.json()["SequenceNumber"] for r in receiver.requests]
        assert sorted(sequence[:6]) == [1, 2, 3, 4, 5, 6]  # the batch, in any order
        assert sequence[6:] == [2, 5]  # then the retries, one by one, in trigger order
        assert sim.state.error_log() == []


async def test_https_only_on_delivery_never_reaches_plain_http(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    config = fast_config(
        callouts=fast_callouts(retry_delay=timedelta(0)),
        webhooks=WebhookConfig(https_only="on_delivery"),
    )
    async with run_simulator(config) as sim:
        api = Api(sim, session)
        webhook_id = await ticket_hook(api, receiver)  # stored: the check is at delivery
        sim.update_entity("Tickets", TICKET, {"title": "never sent"})
        assert await sim.wait_for_callouts(timedelta(seconds=5))
        deactivated = await api.patch("TicketWebhooks", {"id": webhook_id, "IsActive": False})
        assert deactivated.status == 200
        assert await sim.wait_for_callouts(timedelta(seconds=5))
        assert receiver.requests == []  # neither the callout nor the deactivation notice
        [row] = sim.state.error_log()
        assert row["errorMessage"] == HTTPS_ONLY_ERROR
        assert sim.state.dispatcher.counters["failed_attempts"] == 5
