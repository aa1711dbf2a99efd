"""Provisioning passes against the simulator (a real Autotask-like HTTP server) and a real
PostgreSQL: what ends up in the tenant, in the registrations, and on the control topic.

A stand-in receiver takes the callouts here (the gateway's own tests, and the end-to-end ones in
``test_gateway_e2e.py``, verify signatures); it records what Autotask would have delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import pytest_asyncio
from pydantic import SecretStr

from services.provisioner import naming
from services.provisioner import store as provisioning
from services.provisioner.provision import CLIENT_CONFIG
from shared import registrations
from shared.autotask import AutotaskClient
from shared.connections.catalogue import ServedConnection
from shared.messages.control import SweepRequested
from shared.registrations import RegistrationState
from shared.scope.rules import SyncScope
from tests.helpers.clients import connection_for
from tests.helpers.receiver import Receiver, serve_receiver
from tests.helpers.simapi import Api, make_webhook
from tests.services.provisioner.harness import Harness, calls, harness, ours, tenant, writes
from tools.autotask_sim import EntityPermission, SecurityLevel, Simulator, run_simulator
from tools.autotask_sim.catalog.system_entities import WEBHOOK_FIELD_IDS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with run_simulator(tenant()) as simulator:
        yield simulator


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve_receiver() as server:
        yield server


@pytest_asyncio.fixture
async def hx(sim, receiver, migrated_database) -> AsyncIterator[Harness]:
    async with harness(sim, migrated_database, gateway=receiver.base_url) as h:
        yield h


@pytest_asyncio.fixture
async def api(sim) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(sim, session)


def by_entity(sim: Simulator) -> dict[str, dict]:
    return {w["root"]: w for w in ours(sim)}


async def test_first_apply_creates_exactly_the_desired_webhooks_and_a_second_writes_nothing(
    hx: Harness, sim: Simulator, receiver: Receiver
):
    # plan writes nothing, anywhere
    plan, _ = await hx.provisioner.plan(hx.served, hx.client)
    assert plan.autotask_writes > 0
    assert writes(sim) == {}
    assert await hx.registrations() == []

    sim.reset_counters()
    first = await hx.apply()
    assert first.outcome == "applied", first.error
    first_calls, first_writes = calls(sim), sum(writes(sim).values())

    webhooks = by_entity(sim)
    assert sorted(webhooks) == ["CompanyWebhooks", "TicketWebhooks"]
    assert len(sim.state.webhook_list()) == 2  # nothing else was created
    live = await hx.live()
    for root, entity in (("TicketWebhooks", "Tickets"), ("CompanyWebhooks", "Companies")):
        webhook, registration = webhooks[root], live[entity]
        assert webhook["name"] == f"autotask-sync:acme:{entity}"
        assert webhook["isActive"] is True
        assert webhook["isReady"] is True
        assert all(webhook[f"isSubscribedTo{e}Events"] for e in ("Create", "Update", "Delete"))
        rid = registration.registration_id
        assert webhook["webhookUrl"] == f"{receiver.base_url}/v1/callouts/{rid}"
        assert webhook["deactivationUrl"] == f"{receiver.base_url}/v1/deactivations/{rid}"
        assert webhook["secretKey"] == registration.secret_current.get_secret_value()
        assert 16 <= len(webhook["secretKey"]) <= 64
        ids = WEBHOOK_FIELD_IDS[entity]
        assert sorted(f["fieldID"] for f in webhook["fields"]) == sorted(ids.fields)
        assert all(f["isSubscribedField"] for f in webhook["fields"])
        assert sorted(f["udfFieldID"] for f in webhook["udfFields"]) == sorted(ids.udfs)
        assert [r["resourceID"] for r in webhook["excludedResources"]] == [sim.api_user_resource_id]
        assert registration.state is RegistrationState.ACTIVE
        assert registration.autotask_webhook_id == webhook["id"]
        assert registration.webhook_guid == webhook["webhookGuid"]
    # one call at a time per endpoint: never near Autotask's 3-thread limit
    assert max(sim.state.requests.max_concurrency.values()) == 1
    assert not sim.state.requests.thread_rejections

    sim.reset_counters()
    second = await hx.apply()
    assert second.outcome == "in_sync"
    assert writes(sim) == {}
    noop_calls = calls(sim)
    print(f"API calls: first apply {first_calls} ({first_writes} writes), no-op {noop_calls}")


async def test_a_pass_repairs_drift_and_never_touches_a_foreign_webhook(
    hx: Harness, sim: Simulator, api: Api, receiver: Receiver
):
    assert (await hx.apply()).outcome == "applied"
    before = by_entity(sim)
    tickets, companies = before["TicketWebhooks"], before["CompanyWebhooks"]
    registration_ids = {e: r.registration_id for e, r in (await hx.live()).items()}

    # someone else's webhook, and one named like another connection's
    foreign = await make_webhook(
        api, "TicketWebhooks", receiver.url("foreign"), subscribed=("title",)
    )
    sibling = await make_webhook(
        api, "TicketWebhooks", receiver.url("sibling"), subscribed=("title",),
        Name="autotask-sync:other:Tickets",
    )  # fmt: skip
    foreign_before = {w["id"]: w for w in sim.state.webhook_list("TicketWebhooks")}
    # drift: a field removed by hand, the companies webhook deleted, a duplicate made by hand
    title = next(
        f
        for f in tickets["fields"]
        if f["fieldID"] == WEBHOOK_FIELD_IDS["Tickets"].field_id("title")
    )
    assert (await api.delete(f"TicketWebhooks/{tickets['id']}/Fields/{title['id']}")).status == 200
    assert (await api.delete(f"CompanyWebhooks/{companies['id']}")).status == 200
    duplicate = await make_webhook(
        api, "TicketWebhooks", receiver.url("copy"), subscribed=("title",),
        Name="autotask-sync:acme:Tickets",
    )  # fmt: skip

    result = await hx.apply()
    assert result.outcome == "applied", result.error
    after = by_entity(sim)
    assert after["TicketWebhooks"]["id"] == tickets["id"]  # repaired in place
    assert len(after["TicketWebhooks"]["fields"]) == len(tickets["fields"])
    assert len(ours(sim)) == 2  # the duplicate is gone, the deleted one is back
    assert duplicate not in {w["id"] for w in sim.state.webhook_list("TicketWebhooks")}
    recreated = after["CompanyWebhooks"]
    assert recreated["id"] != companies["id"]
    # the same registration (callout path and secret) serves the re-created webhook
    live = await hx.live()
    assert {e: r.registration_id for e, r in live.items()} == registration_ids
    assert recreated["webhookUrl"].endswith(registration_ids["Companies"])
    assert live["Companies"].autotask_webhook_id == recreated["id"]
    for untouched in (foreign, sibling):
        [now] = [w for w in sim.state.webhook_list("TicketWebhooks") if w["id"] == untouched]
        assert now == foreign_before[untouched]
    assert (await hx.apply()).outcome == "in_sync"


async def test_a_webhook_created_but_not_recorded_before_a_crash_is_adopted(
    hx: Harness, sim: Simulator, api: Api, receiver: Receiver
):
    # The state a crash right after Autotask's answer leaves: a pending registration, and a
    # webhook with its callout URL and secret, but no webhook id recorded.
    async with hx.pool.acquire() as db:
        pending = await registrations.create_pending(
            db, hx.box, of_connection="acme", entity="Tickets"
        )
    rid = pending.registration_id
    created = await make_webhook(
        api, "TicketWebhooks", naming.callout_url(receiver.base_url, rid),
        deactivation_url=naming.deactivation_url(receiver.base_url, rid),
        secret=pending.secret_current.get_secret_value(), subscribed=("title",),
        Name="autotask-sync:acme:Tickets",
    )  # fmt: skip

    result = await hx.apply()
    assert result.outcome == "applied", result.error
    [tickets] = [w for w in ours(sim) if w["root"] == "TicketWebhooks"]
    assert tickets["id"] == created  # adopted, not duplicated
    live = await hx.live()
    assert live["Tickets"].registration_id == rid
    assert live["Tickets"].autotask_webhook_id == created
    assert live["Tickets"].state is RegistrationState.ACTIVE
    assert len(tickets["fields"]) == len(WEBHOOK_FIELD_IDS["Tickets"].fields)


async def test_an_entity_no_longer_wanted_loses_its_webhook_and_registration(
    sim: Simulator, receiver: Receiver, migrated_database: str
):
    wide = SyncScope.parse({"webhooks": {"entities": ["Tickets", "Contacts"]}})
    async with harness(sim, migrated_database, gateway=receiver.base_url, scope=wide) as h:
        assert (await h.apply()).outcome == "applied"
        assert sorted(w["root"] for w in ours(sim)) == ["ContactWebhooks", "TicketWebhooks"]
    async with harness(sim, migrated_database, gateway=receiver.base_url) as h:
        assert (await h.apply()).outcome == "applied"
        assert sorted(w["root"] for w in ours(sim)) == ["CompanyWebhooks", "TicketWebhooks"]
        states = {(r.entity, r.state) for r in await h.registrations()}
        assert ("Contacts", RegistrationState.RETIRED) in states


async def test_a_webhook_deactivated_by_failures_is_reactivated_and_a_sweep_requested(
    sim: Simulator, receiver: Receiver, migrated_database: str, kafka_bootstrap: str, unique: str
):
    async with harness(
        sim, migrated_database, gateway=receiver.base_url, kafka=kafka_bootstrap,
        topic_prefix=f"prov{unique}",
    ) as h:  # fmt: skip
        assert (await h.apply()).outcome == "applied"
        created = await h.control_events(at_least=2)
        assert {(e.entity, e.since) for e in created if isinstance(e, SweepRequested)} == {
            ("Tickets", None),
            ("Companies", None),
        }
        receiver.status_for = lambda r: 500 if "/v1/callouts/" in r.path else 200
        ticket_ids = [t["id"] for t in sim.state.entities("Tickets")]
        for n in range(25):
            sim.update_entity("Tickets", ticket_ids[n % len(ticket_ids)], {"title": f"down {n}"})
        assert await sim.wait_for_callouts(timedelta(seconds=20))
        tickets = next(w for w in ours(sim) if w["root"] == "TicketWebhooks")
        assert tickets["isActive"] is False  # Autotask gave up on it
        rid = (await h.live())["Tickets"].registration_id
        await receiver.wait_for(lambda rs: any(r.path == f"/v1/deactivations/{rid}" for r in rs))

        receiver.status_for = lambda r: 200
        healed = await h.apply()
        assert healed.outcome == "applied", healed.error
        assert [s.kind for s in healed.plan.steps] == ["reactivate", "record", "request_sweep"]
        tickets = next(w for w in ours(sim) if w["root"] == "TicketWebhooks")
        assert tickets["isActive"] is True
        events = await h.control_events(at_least=3)
        [sweep] = [e for e in events if isinstance(e, SweepRequested) and e.since is not None]
        assert sweep.connection == "acme"
        assert sweep.entity == "Tickets"
        registration = (await h.live())["Tickets"]
        assert sweep.since == registration.created_at  # no callout ever got through: all of it
        assert await h.sql("SELECT * FROM provisioner_owed_sweeps") == []


async def test_sweeps_stay_owed_without_kafka_and_are_sent_by_a_later_pass(
    sim: Simulator, receiver: Receiver, migrated_database: str, kafka_bootstrap: str, unique: str
):
    async with harness(sim, migrated_database, gateway=receiver.base_url) as h:
        result = await h.apply()
        assert {r.outcome for r in result.report.results if r.step.kind == "request_sweep"} == {
            "owed"
        }
        owed = await h.sql("SELECT entity FROM provisioner_owed_sweeps ORDER BY entity")
        assert [r["entity"] for r in owed] == ["Companies", "Tickets"]
    async with harness(
        sim, migrated_database, gateway=receiver.base_url, kafka=kafka_bootstrap,
        topic_prefix=f"prov{unique}",
    ) as h:  # fmt: skip
        assert (await h.apply()).outcome == "in_sync"
        events = await h.control_events(at_least=2)
        assert sorted(e.entity for e in events if isinstance(e, SweepRequested)) == [
            "Companies",
            "Tickets",
        ]
        assert await h.sql("SELECT * FROM provisioner_owed_sweeps") == []


async def test_rotation_sets_a_new_secret_and_keeps_the_old_one_verifying_for_the_overlap(
    hx: Harness, sim: Simulator
):
    assert (await hx.apply()).outcome == "applied"
    old = (await hx.live())["Tickets"]
    rotated = await hx.apply(rotate=["Tickets"])
    assert rotated.outcome == "applied", rotated.error
    new = (await hx.live())["Tickets"]
    tickets = next(w for w in ours(sim) if w["root"] == "TicketWebhooks")
    assert tickets["secretKey"] == new.secret_current.get_secret_value()
    assert new.secret_current.get_secret_value() != old.secret_current.get_secret_value()
    assert new.secret_previous is not None
    assert new.secret_previous.get_secret_value() == old.secret_current.get_secret_value()
    assert new.previous_valid_until is not None
    overlap = new.previous_valid_until - datetime.now(UTC)
    assert timedelta(minutes=9) < overlap <= timedelta(minutes=10)
    assert len(new.verifying_secrets()) == 2
    assert len(new.verifying_secrets(new.previous_valid_until)) == 1
    companies = next(w for w in ours(sim) if w["root"] == "CompanyWebhooks")
    assert (
        companies["secretKey"] == (await hx.live())["Companies"].secret_current.get_secret_value()
    )
    assert (await hx.apply()).outcome == "in_sync"

    # the overlap is over: the next pass forgets the previous secret
    await hx.sql(
        "UPDATE webhook_registrations SET previous_valid_until = now() - interval '1 second' "
        "WHERE registration_id = $1",
        new.registration_id,
    )
    ended = await hx.apply()
    assert [s.kind for s in ended.plan.steps] == ["end_rotation"]
    assert (await hx.live())["Tickets"].secret_previous is None


async def test_a_rotation_interrupted_before_autotask_had_the_secret_is_finished(
    hx: Harness, sim: Simulator
):
    assert (await hx.apply()).outcome == "applied"
    live = (await hx.live())["Tickets"]
    # the state a crash between the registration's update and Autotask's leaves
    async with hx.pool.acquire() as db:
        await registrations.begin_rotation(
            db, live.registration_id, hx.box,
            new_secret=registrations.new_webhook_secret(), overlap=timedelta(seconds=1),
        )  # fmt: skip
        await provisioning.mark_secret_unconfirmed(db, live.registration_id)
    tickets = next(w for w in ours(sim) if w["root"] == "TicketWebhooks")
    assert tickets["secretKey"] == live.secret_current.get_secret_value()  # still the old one

    result = await hx.apply()
    assert [s.kind for s in result.plan.steps] == ["rotate_secret", "record"]
    now = (await hx.live())["Tickets"]
    tickets = next(w for w in ours(sim) if w["root"] == "TicketWebhooks")
    assert tickets["secretKey"] == now.secret_current.get_secret_value()
    assert now.previous_valid_until is not None
    assert now.previous_valid_until - datetime.now(UTC) > timedelta(minutes=9)  # extended
    rows = await hx.sql(
        "SELECT secret_unconfirmed_since FROM webhook_registrations WHERE registration_id = $1",
        live.registration_id,
    )
    assert rows[0]["secret_unconfirmed_since"] is None
    assert (await hx.apply()).outcome == "in_sync"


async def test_the_api_users_own_changes_do_not_call_back(
    hx: Harness, sim: Simulator, receiver: Receiver
):
    assert (await hx.apply()).outcome == "applied"
    ticket = sim.state.entities("Tickets")[0]
    await hx.client.update("Tickets", {"id": ticket["id"], "title": "changed by the integration"})
    assert await sim.wait_for_callouts(timedelta(seconds=5))
    assert not [r for r in receiver.requests if "/v1/callouts/" in r.path]

    sim.update_entity("Tickets", ticket["id"], {"title": "changed by a technician"})
    await receiver.wait_for(lambda rs: any("/v1/callouts/" in r.path for r in rs))
    [callout] = [r for r in receiver.requests if "/v1/callouts/" in r.path]
    assert callout.json()["Id"] == ticket["id"]


async def test_without_the_webhook_permission_the_error_says_which_setting_to_change(
    hx: Harness, sim: Simulator
):
    sim.set_security(SecurityLevel(can_create_webhooks=False))
    result = await hx.apply()
    assert result.outcome == "failed"
    assert "'Can create WebHooks'" in (result.error or "")
    assert "Security Levels" in (result.error or "")
    assert "at least 2" in (result.error or "")
    assert ours(sim) == []


async def test_when_the_webhook_maximum_is_reached_the_error_says_what_to_raise_it_to(
    hx: Harness, sim: Simulator
):
    sim.set_security(SecurityLevel(max_webhooks=1))
    result = await hx.apply()
    assert result.outcome == "failed"
    assert "maximum number of webhooks" in (result.error or "")
    assert "at least 2" in (result.error or "")
    assert len(ours(sim)) == 1  # the other entity went ahead
    sim.set_security(SecurityLevel(max_webhooks=2))
    assert (await hx.apply()).outcome == "applied"
    assert len(ours(sim)) == 2


async def test_an_entity_the_api_user_cannot_read_is_named_and_the_rest_provisioned(
    hx: Harness, sim: Simulator
):
    sim.set_security(SecurityLevel(permissions={"Tickets": EntityPermission(read=False)}))
    result = await hx.apply()
    assert result.outcome == "applied"
    assert "cannot read Tickets" in result.plan.blocked["Tickets"]
    assert [w["root"] for w in ours(sim)] == ["CompanyWebhooks"]


async def test_bad_credentials_fail_the_pass_with_the_fix(
    sim: Simulator, receiver: Receiver, migrated_database: str
):
    wrong = ServedConnection(connection=connection_for(sim, name="acme", secret=SecretStr("no")))
    async with (
        harness(sim, migrated_database, gateway=receiver.base_url) as h,
        AutotaskClient(wrong.connection, config=CLIENT_CONFIG) as client,
    ):
        result = await h.provisioner.run(wrong, client, trigger="test")
    assert result.outcome == "failed"
    assert "rejected the credentials" in (result.error or "")


async def test_a_second_apply_waits_for_the_first_and_finds_nothing_to_do(
    hx: Harness, sim: Simulator
):
    sim.set_faults(latency=timedelta(milliseconds=5))
    first, second = await asyncio.gather(hx.apply(), hx.apply(lock_wait=timedelta(seconds=30)))
    assert sorted([first.outcome, second.outcome]) == ["applied", "in_sync"]
    assert len(ours(sim)) == 2


async def test_an_apply_that_cannot_get_the_connection_lock_changes_nothing(
    hx: Harness, sim: Simulator
):
    async with provisioning.apply_lock(hx.pool, "acme", wait=timedelta(0)) as taken:
        assert taken
        sim.reset_counters()
        result = await hx.apply(lock_wait=timedelta(milliseconds=300))
    assert result.outcome == "locked"
    assert "another provisioner is applying connection 'acme'" in (result.error or "")
    assert calls(sim) == 0
    assert (await hx.apply()).outcome == "applied"


async def test_child_rows_are_added_one_call_each(hx: Harness, sim: Simulator):
    sim.reset_counters()
    assert (await hx.apply()).outcome == "applied"
    tickets = next(w for w in ours(sim) if w["root"] == "TicketWebhooks")
    posts = [
        r for r in sim.state.requests.recent
        if r["method"] == "POST" and f"/TicketWebhooks/{tickets['id']}/" in r["path"]
    ]  # fmt: skip
    assert len(posts) == len(tickets["fields"]) + len(tickets["udfFields"]) + 1
