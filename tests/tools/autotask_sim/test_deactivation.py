"""Deactivation notices (§8.4, all *assumed*): when they go out, where to, and their body.

The vendor says the DeactivationUrl is called when a webhook deactivates or is deleted, and when
the resource who created it is deactivated or deleted; method, body and signing are undocumented.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta

import aiohttp
import pytest

from tests.helpers.receiver import Receiver
from tests.helpers.simapi import WEBHOOK_SECRET, Api, fast_callouts, fast_config, make_webhook
from tools.autotask_sim import Simulator, run_simulator

TICKET = 7000
IDLE = timedelta(seconds=5)


async def hook(api: Api, receiver: Receiver, name: str = "w") -> int:
    return await make_webhook(
        api,
        "TicketWebhooks",
        receiver.url(name),
        subscribed=("title",),
        deactivation_url=receiver.url(f"{name}-deactivated"),
    )


def notices(sim: Simulator) -> list[tuple[str, str]]:
    """(reason, target) of each deactivation notice in the delivery log."""
    return [
        (e["reason"], e["target"])
        for e in sim.state.callout_log
        if e["outcome"] == "deactivation_call"
    ]


async def test_default_notice_is_an_unsigned_post_to_the_deactivation_url(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    webhook_id = await hook(api, receiver)
    guid = (await api.get(f"TicketWebhooks/{webhook_id}")).body["item"]["webhookGuid"]
    assert (await api.patch("TicketWebhooks", {"id": webhook_id, "IsActive": False})).status == 200
    await receiver.wait_for(lambda r: len(r) == 1)
    assert await sim.wait_for_callouts(IDLE)  # the log entry follows the receiver's answer
    [notice] = receiver.requests
    assert notice.path == "/w-deactivated"  # nothing goes to the WebhookUrl
    assert notice.headers["Content-Type"].startswith("application/json")
    assert "X-Hook-Signature" not in notice.headers
    body = notice.json()
    assert (body["Action"], body["Guid"], body["Id"]) == ("Deactivated", guid, webhook_id)
    assert "EntityType" not in body  # n8n: "these don't have an entityType"
    assert notices(sim) == [("patch", "deactivationUrl")]


async def test_owner_resource_deactivated_stops_its_webhooks(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    webhook_id = await hook(api, receiver)
    someone_else = sim.state.entities("Resources")[2]["id"]
    sim.update_entity("Resources", someone_else, {"isActive": False})
    sim.update_entity("Resources", sim.api_user_resource_id, {"isActive": False})
    await receiver.wait_for(lambda r: len(r) == 1)
    assert await sim.wait_for_callouts(IDLE)
    assert receiver.requests[0].json()["Id"] == webhook_id
    [stored] = sim.state.webhook_list("TicketWebhooks")
    assert stored["isActive"] is False
    assert notices(sim) == [("owner", "deactivationUrl")]
    sim.update_entity("Tickets", TICKET, {"title": "nobody listens"})
    assert await sim.wait_for_callouts(IDLE)
    assert [r.path for r in receiver.requests] == ["/w-deactivated"]


async def test_every_trigger_sends_a_notice_by_default(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    patched = await hook(api, receiver, "patched")
    deleted = await hook(api, receiver, "deleted")
    await hook(api, receiver, "orphaned")
    assert (await api.patch("TicketWebhooks", {"id": patched, "IsActive": False})).status == 200
    assert (await api.delete(f"TicketWebhooks/{deleted}")).status == 200
    sim.update_entity("Resources", sim.api_user_resource_id, {"isActive": False})
    await receiver.wait_for(lambda r: len(r) == 3)
    assert await sim.wait_for_callouts(IDLE)
    assert sorted(r.path for r in receiver.requests) == [
        "/deleted-deactivated",
        "/orphaned-deactivated",
        "/patched-deactivated",
    ]
    assert sorted(reason for reason, _ in notices(sim)) == ["delete", "owner", "patch"]


async def test_no_notices_when_no_trigger_is_configured(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    async with run_simulator(fast_config(callouts=fast_callouts(deactivation_calls_on=[]))) as sim:
        api = Api(sim, session)
        webhook_id = await hook(api, receiver)
        deactivated = await api.patch("TicketWebhooks", {"id": webhook_id, "IsActive": False})
        assert deactivated.status == 200
        assert (await api.delete(f"TicketWebhooks/{webhook_id}")).status == 200
        assert await sim.wait_for_callouts(IDLE)
        assert receiver.requests == []


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("to_webhook_url", [False, True])
async def test_signing_and_webhook_url_settings(
    session: aiohttp.ClientSession, receiver: Receiver, signed: bool, to_webhook_url: bool
) -> None:
    callouts = fast_callouts(deactivation_signed=signed, deactivation_to_webhook_url=to_webhook_url)
    async with run_simulator(fast_config(callouts=callouts)) as sim:
        api = Api(sim, session)
        webhook_id = await hook(api, receiver)
        assert (await api.delete(f"TicketWebhooks/{webhook_id}")).status == 200
        assert await sim.wait_for_callouts(IDLE)
        paths = sorted(r.path for r in receiver.requests)
        assert paths == (["/w", "/w-deactivated"] if to_webhook_url else ["/w-deactivated"])
        bodies = {r.body for r in receiver.requests}
        assert len(bodies) == 1  # the same notice wherever it goes
        for request in receiver.requests:
            assert request.json()["Action"] == "Deactivated"
            if signed:
                digest = hmac.new(WEBHOOK_SECRET.encode(), request.body, hashlib.sha1).digest()
                expected = "sha1=" + base64.b64encode(digest).decode()
                assert request.headers["X-Hook-Signature"] == expected
            else:
                assert "X-Hook-Signature" not in request.headers
