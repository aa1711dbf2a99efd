"""The admin API under /_sim: truth and controls without Autotask auth."""

from __future__ import annotations

from datetime import timedelta
from typing import get_type_hints

import pytest

from tests.helpers.receiver import Receiver
from tests.helpers.simapi import Api, make_webhook
from tools.autotask_sim import FaultConfig, LimitsConfig, Simulator
from tools.autotask_sim.config import FaultChanges, LimitsChanges


async def test_state_summary(api: Api, sim: Simulator) -> None:
    reply = await api.admin("GET", "state")
    assert reply.status == 200
    body = reply.body
    assert body["baseUrl"] == sim.base_url
    assert body["zoneLookupUrl"] == sim.zone_lookup_url
    assert (body["username"], body["secret"], body["integrationCode"]) == (
        sim.username,
        sim.secret,
        sim.integration_code,
    )
    assert body["apiUserResourceId"] == sim.api_user_resource_id
    assert body["entities"]["Tickets"] == 120
    assert body["config"]["seed"] == 7


async def test_entity_endpoints_change_data_as_a_ui_user(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    await make_webhook(
        api,
        "CompanyWebhooks",
        receiver.url("c"),
        subscribed=("city",),
        excluded=(sim.api_user_resource_id,),
        events=("Update",),
    )
    listed = await api.admin("GET", "entities/Companies?limit=3")
    assert [c["id"] for c in listed.body["items"]] == [
        c["id"] for c in sim.state.entities("Companies")[:3]
    ]
    assert listed.body["total"] == 20
    created = await api.admin(
        "POST",
        "entities/Companies",
        {
            "companyName": "Admin Co",
            "companyType": 1,
            "phone": "1",
            "ownerResourceID": sim.api_user_resource_id,
        },
    )
    company_id = created.body["item"]["id"]
    patched = await api.admin("PATCH", f"entities/Companies/{company_id}", {"city": "Oslo"})
    assert patched.body["item"]["city"] == "Oslo"
    assert (await api.admin("GET", f"entities/Companies/{company_id}")).body["item"][
        "city"
    ] == "Oslo"
    await receiver.wait_for(lambda r: len(r) == 1)
    assert receiver.requests[0].json()["Fields"] == {"city": "Oslo"}
    assert (await api.admin("DELETE", f"entities/Companies/{company_id}")).status == 200
    assert (await api.admin("GET", f"entities/Companies/{company_id}")).status == 404
    invalid = await api.admin("POST", "entities/Companies", {"companyName": "no type"})
    assert invalid.status == 500
    assert (await api.admin("GET", "entities/NoSuchThing")).status == 400


async def test_webhooks_callouts_and_error_log_views(
    api: Api, sim: Simulator, receiver: Receiver
) -> None:
    receiver.status_for = lambda _r: 500
    webhook_id = await make_webhook(api, "TicketWebhooks", receiver.url("t"), subscribed=("title",))
    sim.update_entity("Tickets", 7000, {"title": "fails"})
    waited = await api.admin("POST", "callouts/wait", {"timeout": 5})
    assert waited.body == {"idle": True}
    hooks = (await api.admin("GET", "webhooks")).body["items"]
    assert [(h["root"], h["id"], len(h["fields"])) for h in hooks] == [
        ("TicketWebhooks", webhook_id, 1)
    ]
    assert hooks[0]["secretKey"] == "s3cret-key-0123"  # the truth includes the secret
    log = (await api.admin("GET", "callouts")).body
    assert [e["outcome"] for e in log["items"]] == ["failed_attempt"] * 5 + ["error_logged"]
    assert log["counters"]["error_logged"] == 1
    errors = (await api.admin("GET", "error-log")).body["items"]
    # The truth names the webhook even where the API's row has no id column for it.
    assert [(e["root"], e["webhookId"]) for e in errors] == [("TicketWebhooks", webhook_id)]


async def test_security_and_zone_controls(api: Api, sim: Simulator) -> None:
    level = {"permissions": {"Companies": {"read": False}}, "can_create_webhooks": False}
    assert (await api.admin("PUT", "security", level)).status == 200
    assert (await api.get("Companies/0")).status == 403
    assert (
        await api.post("TicketWebhooks", {"WebhookUrl": "x", "DeactivationUrl": "y"})
    ).status == 403
    assert (await api.admin("PUT", "security", {})).status == 200
    assert (await api.get("Companies/0")).status == 200
    assert (await api.admin("POST", "zone", {"zone": 5})).body == {"zone": 5}
    assert sim.rest_url.endswith("/ws5/atservicesrest")


async def test_durations_are_seconds_or_unit_strings_over_http(api: Api, sim: Simulator) -> None:
    faults = await api.admin("PATCH", "faults", {"latency": 0.25, "read_after_write_lag": "2m"})
    assert faults.status == 200
    assert (faults.body["latency"], faults.body["read_after_write_lag"]) == (0.25, 120.0)
    assert sim.state.config.faults.latency == timedelta(milliseconds=250)
    limits = await api.admin("PATCH", "limits", {"retry_after": "30s", "latency_at_50": "PT1S"})
    assert (limits.body["retry_after"], limits.body["latency_at_50"]) == (30.0, 1.0)
    assert (await api.admin("GET", "limits")).body["hourly_window"] == 3600.0
    assert (await api.admin("GET", "state")).body["config"]["callouts"]["retry_delay"] == 0.01
    for bad in ({"latency": -1}, {"latency": "soon"}, {"latency_s": 1}):
        assert (await api.admin("PATCH", "faults", bad)).status == 400, bad
    assert sim.state.config.faults.latency == timedelta(milliseconds=250)


async def test_python_controls_take_timedelta(sim: Simulator) -> None:
    assert sim.set_faults(latency_jitter=timedelta(milliseconds=5)).latency_jitter == timedelta(
        milliseconds=5
    )
    assert sim.set_limits(thread_release_delay=timedelta(seconds=1)).thread_release_delay == (
        timedelta(seconds=1)
    )


@pytest.mark.parametrize(
    ("changes", "model"), [(FaultChanges, FaultConfig), (LimitsChanges, LimitsConfig)]
)
def test_control_keywords_match_the_settings(changes: type, model: type) -> None:
    assert set(get_type_hints(changes)) == set(model.model_fields)
