"""Signed callouts through a real gateway to real Kafka: what lands, what is refused.

The gateway runs in this process, wired as in production, against the session's PostgreSQL and
Kafka; callouts come from the simulator's webhooks (pointed at the gateway) or are signed here.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import aiohttp
import pytest

from shared.db import connect
from shared.messages.callout import parse_instant
from shared.messages.control import WebhookDeactivated, decode_control
from shared.registrations import RegistrationState, begin_rotation, fetch_one
from shared.secrets import SecretBox
from tests.helpers.simapi import Api, fast_config, make_webhook
from tests.helpers.waiting import eventually
from tests.services.webhook_gateway.helpers import (
    Deployment,
    by_value,
    callout_body,
    headers_of,
    read_topic,
    serve_gateway,
    signature,
    signed_headers,
    spooled,
)
from tools.autotask_sim import Simulator, run_simulator

pytestmark = pytest.mark.integration

SECRET = "s3cret-key-0123"


async def _post(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    async with http.post(url, data=body, headers=headers) as response:
        return response.status, await response.read()


async def _ticket_hook(api: Api, url: str, *, secret: str = SECRET, **kw: object) -> int:
    return await make_webhook(
        api,
        "TicketWebhooks",
        url,
        subscribed=("title", "status"),
        display=("ticketNumber",),
        secret=secret,
        **kw,  # type: ignore[arg-type]
    )


def _delivered(sim: Simulator) -> list[dict[str, object]]:
    return [e for e in sim.state.callout_log if e["outcome"] == "delivered"]


async def test_simulator_callouts_land_on_the_topic_byte_identical_with_key_and_headers(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    acme = await deployment.registration(connection="acme", secret=SECRET)
    globex = await deployment.registration(connection="globex", secret="globex-secret-99")
    async with (
        serve_gateway(deployment.settings()) as served,
        run_simulator(fast_config(seed=1)) as sim_a,
        run_simulator(fast_config(seed=2)) as sim_b,
    ):
        await _ticket_hook(Api(sim_a, http), served.callout_url(acme.registration_id))
        await _ticket_hook(
            Api(sim_b, http), served.callout_url(globex.registration_id), secret="globex-secret-99"
        )
        ticket_a = sim_a.state.entities("Tickets")[0]["id"]
        ticket_b = sim_b.state.entities("Tickets")[0]["id"]
        for n in range(3):
            sim_a.update_entity("Tickets", ticket_a, {"title": f"printer down {n}"})
            sim_b.update_entity("Tickets", ticket_b, {"title": f"café & <co> +{n}"})
        assert await sim_a.wait_for_callouts(timedelta(seconds=10))
        assert await sim_b.wait_for_callouts(timedelta(seconds=10))
        sent = {"acme": _delivered(sim_a), "globex": _delivered(sim_b)}
        assert [len(v) for v in sent.values()] == [3, 3]
        records = await read_topic(deployment.bootstrap, deployment.topics.callouts, at_least=6)

    assert len(records) == 6
    for connection, registration, ticket in (
        ("acme", acme, ticket_a),
        ("globex", globex, ticket_b),
    ):
        mine = [r for r in records if headers_of(r)["connection"] == connection]
        # Byte-identical values, in the order the simulator delivered them (one key: one
        # partition, in order).
        assert [r.value for r in mine] == [str(e["body"]).encode() for e in sent[connection]]
        for record in mine:
            assert record.key == f"{connection}:Ticket:{ticket}".encode()
            headers = headers_of(record)
            assert headers["registration"] == registration.registration_id
            assert headers["entity"] == "Tickets"
            assert len(headers["request-id"]) >= 16
            assert (
                abs(parse_instant(headers["received-at"]).timestamp() - record.timestamp / 1000) < 5
            )
    assert await spooled(deployment.dsn) == []


async def test_every_refusal_has_its_status_and_stores_nothing(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    live = await deployment.registration(secret=SECRET)
    retired = await deployment.registration(
        connection="old", secret=SECRET, state=RegistrationState.RETIRED
    )
    body = callout_body(42)
    async with serve_gateway(deployment.settings(max_body_size=4096)) as served:
        url = served.callout_url(live.registration_id)
        cases = {
            "bad signature": (url, body, {"X-Hook-Signature": "sha1=" + "A" * 27 + "="}),
            "not base64": (url, body, {"X-Hook-Signature": "sha1=not-a-signature"}),
            "tampered body": (url, body.replace(b"42", b"43"), signed_headers(SECRET, body)),
            "wrong secret": (url, body, signed_headers("another-secret-1", body)),
            "missing header": (url, body, {"Content-Type": "application/json"}),
            "unknown registration": (
                served.callout_url("x" * 32),
                body,
                signed_headers(SECRET, body),
            ),
            "retired": (
                served.callout_url(retired.registration_id),
                body,
                signed_headers(SECRET, body),
            ),
            "oversize": (
                url,
                big := callout_body(42, padding="x" * 5000),
                signed_headers(SECRET, big),
            ),
        }
        statuses = {}
        for name, (target, data, headers) in cases.items():
            statuses[name] = (await _post(http, target, data, headers))[0]

        # Chunked (no Content-Length) and over the cap: refused once the cap is passed.
        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(10):
                yield b"x" * 1000

        async with http.post(url, data=chunks(), headers=signed_headers(SECRET, body)) as answer:
            statuses["oversize chunked"] = answer.status
        marker = callout_body(7, sequence=99)
        assert (await _post(http, url, marker, signed_headers(SECRET, marker)))[0] == 200
        records = await read_topic(deployment.bootstrap, deployment.topics.callouts, at_least=1)
        dead = await read_topic(deployment.bootstrap, deployment.topics.callouts_dlq)

    assert statuses == {
        "bad signature": 401,
        "not base64": 401,
        "tampered body": 401,
        "wrong secret": 401,
        "missing header": 401,
        "unknown registration": 404,
        "retired": 410,
        "oversize": 413,
        "oversize chunked": 413,
    }
    assert [r.value for r in records] == [marker]  # only the signed one got in
    assert dead == []
    assert await spooled(deployment.dsn) == []


async def test_401_says_nothing_about_which_secret_was_tried(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    registration = await deployment.registration(secret=SECRET)
    db = await connect(deployment.dsn)
    try:
        await begin_rotation(
            db,
            registration.registration_id,
            SecretBox([deployment.key]),
            new_secret=_secret("rotated-secret-2"),
            overlap=timedelta(minutes=5),
        )
    finally:
        await db.close()
    body = callout_body(1)
    async with serve_gateway(deployment.settings()) as served:
        url = served.callout_url(registration.registration_id)
        answers = {
            await _post(http, url, body, {"X-Hook-Signature": value})
            for value in (signature("wrong-secret-77", body), "sha1=" + "B" * 27 + "=")
        }
    assert len(answers) == 1  # same status, same body, whatever was wrong
    [(status, answer)] = answers
    assert status == 401
    assert b"secret" not in answer.lower()


def _secret(value: str):  # type: ignore[no-untyped-def]
    from pydantic import SecretStr

    return SecretStr(value)


async def test_rotation_window_accepts_both_secrets_and_only_the_new_one_after(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    registration = await deployment.registration(secret="old-secret-0001")
    async with serve_gateway(deployment.settings()) as served:
        store = served.gateway.registrations  # type: ignore[union-attr]
        overlap = timedelta(seconds=5)  # far longer than the NOTIFY and two requests take
        db = await connect(deployment.dsn)
        try:
            await begin_rotation(
                db,
                registration.registration_id,
                SecretBox([deployment.key]),
                new_secret=_secret("new-secret-0002"),
                overlap=overlap,
            )
        finally:
            await db.close()
        overlap_over = asyncio.get_running_loop().time() + overlap.total_seconds()
        # The change arrives by NOTIFY, not at the (30 s) reload.
        await eventually(
            lambda: store.get(registration.registration_id).secret_previous is not None,  # type: ignore[union-attr]
            within=timedelta(seconds=5),
        )
        url = served.callout_url(registration.registration_id)
        during = [
            (await _post(http, url, b, signed_headers(s, b)))[0]
            for s, b in (("old-secret-0001", callout_body(1)), ("new-secret-0002", callout_body(2)))
        ]
        await asyncio.sleep(overlap_over - asyncio.get_running_loop().time() + 0.1)
        after = [
            (await _post(http, url, b, signed_headers(s, b)))[0]
            for s, b in (("old-secret-0001", callout_body(3)), ("new-secret-0002", callout_body(4)))
        ]
        records = await read_topic(deployment.bootstrap, deployment.topics.callouts, at_least=3)
    assert during == [200, 200]
    assert after == [401, 200]
    assert sorted(json.loads(r.value)["Id"] for r in records) == [1, 2, 4]  # type: ignore[arg-type]


async def test_signed_bodies_that_cannot_be_routed_go_to_the_dead_letter_topic(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    registration = await deployment.registration(secret=SECRET)
    no_id = b'{"Action":"Update","EntityType":"Ticket","Fields":{}}'
    not_json = b"\x00\xffnot json at all"
    async with serve_gateway(deployment.settings()) as served:
        url = served.callout_url(registration.registration_id)
        statuses = [
            (await _post(http, url, body, signed_headers(SECRET, body)))[0]
            for body in (no_id, not_json)
        ]
        dead = await read_topic(deployment.bootstrap, deployment.topics.callouts_dlq, at_least=2)
        callouts = await read_topic(deployment.bootstrap, deployment.topics.callouts)
    assert statuses == [200, 200]  # signed: never refused, or Autotask would retry it for ever
    assert callouts == []
    assert {r.value for r in dead} == {no_id, not_json}
    for record in dead:
        headers = headers_of(record)
        assert record.key == b"acme:Ticket"
        assert headers["error-class"] == "MessageError"
        assert headers["original-topic"] == deployment.topics.callouts
        assert headers["registration"] == registration.registration_id
        assert headers["connection"] == "acme"
    reasons = {headers_of(r)["error-message"] for r in dead}
    assert any("Id" in reason for reason in reasons)
    assert any("not JSON" in reason for reason in reasons)


async def test_routing_follows_the_registration_whatever_the_body_says(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    """Key casing, string numbers, unknown fields and a foreign EntityType are all tolerated;
    the key uses the registration's entity (its canonical callout type)."""
    companies = await deployment.registration(entity="Companies", secret=SECRET)
    bodies = [
        b'{"action":"update","entitytype":"Account","id":"17","Unknown":[1,2]}',
        b'{"ACTION":"Create","EntityType":"Contact","Id":18.0}',
    ]
    async with serve_gateway(deployment.settings()) as served:
        url = served.callout_url(companies.registration_id)
        statuses = [(await _post(http, url, b, signed_headers(SECRET, b)))[0] for b in bodies]
        records = await read_topic(deployment.bootstrap, deployment.topics.callouts, at_least=2)
    assert statuses == [200, 200]
    assert sorted((r.key, r.value) for r in records) == [
        (b"acme:Company:17", bodies[0]),
        (b"acme:Company:18", bodies[1]),
    ]


async def test_a_body_unescaped_on_the_way_verifies_in_its_dotnet_form_and_is_kept_as_received(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    """autotask-api.md §8.5: the second test vector, signed in the .NET-escaped form."""
    registration = await deployment.registration(secret="test-secret-123")
    escaped = (
        b'{"Action":"Update","Guid":"00000000-0000-0000-0000-000000000001","EntityType":"Ticket",'
        b'"Id":42,"Fields":{"Title":"Caf\\u00E9 \\u0026 \\u003Cbar\\u003E \\u002B1"},'
        b'"EventTime":"2025-01-01T00:00:00Z","SequenceNumber":8,"PersonID":29682885}'
    )
    unescaped = escaped.decode("unicode_escape").encode("utf-8")
    assert b"Caf\xc3\xa9 & <bar> +1" in unescaped
    header = {"X-Hook-Signature": "sha1=ybHoJPzwVk0fTylIJFd1G8tM/C8="}
    async with serve_gateway(deployment.settings()) as served:
        url = served.callout_url(registration.registration_id)
        statuses = [
            (await _post(http, url, unescaped, header))[0],
            # The same event as signed: a re-send, recognised as one however it is written.
            (await _post(http, url, escaped, header))[0],
        ]
        records = await read_topic(deployment.bootstrap, deployment.topics.callouts, at_least=1)
    assert statuses == [200, 200]
    assert [r.value for r in records] == [unescaped]  # as received, once


async def test_exact_resends_are_acknowledged_but_stored_once(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    registration = await deployment.registration(secret=SECRET)
    async with (
        serve_gateway(deployment.settings()) as served,
        run_simulator(fast_config()) as sim,
    ):
        sim.set_faults(callout_duplicate_rate=1.0)  # every callout is delivered twice
        await _ticket_hook(Api(sim, http), served.callout_url(registration.registration_id))
        ticket = sim.state.entities("Tickets")[3]["id"]
        for n in range(4):
            sim.update_entity("Tickets", ticket, {"title": f"again {n}"})
        assert await sim.wait_for_callouts(timedelta(seconds=10))
        log = sim.state.callout_log
        records = await read_topic(deployment.bootstrap, deployment.topics.callouts, at_least=4)
    duplicates = [e for e in log if e["outcome"] == "duplicated"]
    assert len(duplicates) == 4
    assert all(e["status"] == 200 for e in duplicates)  # acknowledged, so no retry
    assert sorted(by_value(records).values()) == [1, 1, 1, 1]
    assert {r.value for r in records} == {str(e["body"]).encode() for e in duplicates}


async def test_registrations_added_or_retired_while_running_take_effect_within_moments(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    async with serve_gateway(deployment.settings()) as served:
        registration = await deployment.registration(secret=SECRET)
        url = served.callout_url(registration.registration_id)
        body = callout_body(5)

        async def accepted_now() -> bool:
            return (await _post(http, url, body, signed_headers(SECRET, body)))[0] != 404

        await eventually(accepted_now, within=timedelta(seconds=5))  # NOTIFY, not the reload
        db = await connect(deployment.dsn)
        try:
            from shared.registrations import set_state

            await set_state(db, registration.registration_id, RegistrationState.RETIRED)
        finally:
            await db.close()
        accepted = [body]
        numbers = iter(range(6, 10_000))

        async def refused_as_retired() -> bool:
            later = callout_body(next(numbers))
            status, _ = await _post(http, url, later, signed_headers(SECRET, later))
            if status == 200:
                accepted.append(later)
            assert status in (200, 410), status
            return status == 410

        # The retirement arrives by NOTIFY, not at the (30 s) reload.
        await eventually(refused_as_retired, within=timedelta(seconds=5))
        final = callout_body(1)
        assert (await _post(http, url, final, signed_headers(SECRET, final)))[0] == 410
        records = await read_topic(
            deployment.bootstrap, deployment.topics.callouts, at_least=len(accepted)
        )
    assert sorted(r.value for r in records) == sorted(accepted)  # nothing after the 410s


async def test_ops_endpoints_report_readiness_and_metrics(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    registration = await deployment.registration(secret=SECRET)
    async with serve_gateway(deployment.settings()) as served:
        body = callout_body(9)
        await _post(
            http,
            served.callout_url(registration.registration_id),
            body,
            signed_headers(SECRET, body),
        )
        async with http.get(served.ops_url + "/readyz") as response:
            ready = (response.status, await response.json())
        async with http.get(served.ops_url + "/healthz") as response:
            health = response.status
        async with http.get(served.base_url + "/metrics") as response:
            public_metrics = response.status
        async with http.get(served.ops_url + "/metrics") as response:
            metrics = await response.text()
    assert ready == (200, {"status": "ready", "checks": ["durability", "registrations"]})
    assert health == 200
    assert public_metrics == 404  # the ops routes are not on the public port
    assert (
        'autotask_sync_gateway_requests_total{connection="acme",outcome="accepted",route="callout"}'
        in metrics
    )
    for name in (
        "autotask_sync_gateway_request_seconds_bucket",
        "autotask_sync_gateway_produce_seconds_bucket",
        "autotask_sync_gateway_body_bytes_bucket",
        "autotask_sync_gateway_spool_rows",
        "autotask_sync_gateway_spool_oldest_age_seconds",
    ):
        assert name in metrics


async def test_last_callout_time_is_recorded_in_the_background(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    registration = await deployment.registration(secret=SECRET)
    async with serve_gateway(deployment.settings()) as served:
        body = callout_body(10)
        url = served.callout_url(registration.registration_id)
        assert (await _post(http, url, body, signed_headers(SECRET, body)))[0] == 200
        db = await connect(deployment.dsn)
        try:
            box = SecretBox([deployment.key])

            async def recorded() -> bool:
                found = await fetch_one(db, registration.registration_id, box)
                return found is not None and found.last_callout_at is not None

            await eventually(recorded)
        finally:
            await db.close()


# --- the deactivation URL -----------------------------------------------------------------------
async def test_a_flood_of_deactivation_calls_yields_one_control_event_and_changes_nothing(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    registration = await deployment.registration(secret=SECRET)
    settings = deployment.settings()
    async with serve_gateway(settings) as first, serve_gateway(settings) as second:
        statuses = await asyncio.gather(
            *(
                _post(http, gw.deactivation_url(registration.registration_id), b"{}", {})
                for gw in (first, second)
                for _ in range(25)
            )
        )
        unknown = await _post(http, first.deactivation_url("y" * 32), b"{}", {})
        events = await read_topic(deployment.bootstrap, deployment.topics.control, at_least=1)
        await asyncio.sleep(2)  # a second event would have had time to arrive
        events = await read_topic(deployment.bootstrap, deployment.topics.control)
        body = callout_body(11)
        still = await _post(
            http,
            first.callout_url(registration.registration_id),
            body,
            signed_headers(SECRET, body),
        )
    assert {status for status, _ in statuses} == {200}
    assert unknown[0] == 404
    assert len(events) == 1
    event = decode_control(events[0].value)  # type: ignore[arg-type]
    assert isinstance(event, WebhookDeactivated)
    assert (event.connection, event.registration_id, event.entity) == (
        "acme",
        registration.registration_id,
        "Tickets",
    )
    assert events[0].key == b"acme"
    db = await connect(deployment.dsn)
    try:
        after = await fetch_one(db, registration.registration_id, SecretBox([deployment.key]))
    finally:
        await db.close()
    assert after is not None
    assert after.last_deactivated_at is not None
    assert after.state is RegistrationState.ACTIVE  # no state change
    assert after.secret_current.get_secret_value() == SECRET  # no secret change
    assert still[0] == 200  # callouts keep verifying


async def test_simulator_deactivation_notice_asks_the_provisioner_to_check(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    registration = await deployment.registration(secret=SECRET)
    async with (
        serve_gateway(deployment.settings()) as served,
        run_simulator(fast_config()) as sim,
    ):
        api = Api(sim, http)
        webhook_id = await _ticket_hook(
            api,
            served.callout_url(registration.registration_id),
            deactivation_url=served.deactivation_url(registration.registration_id),
        )
        reply = await api.patch("TicketWebhooks", {"id": webhook_id, "IsActive": False})
        assert reply.status == 200, reply.body
        assert await sim.wait_for_callouts(timedelta(seconds=5))
        events = await read_topic(deployment.bootstrap, deployment.topics.control, at_least=1)
        calls = [e for e in sim.state.callout_log if e["outcome"] == "deactivation_call"]
    assert [c["status"] for c in calls] == [200]
    assert len(events) == 1
    event = decode_control(events[0].value)  # type: ignore[arg-type]
    assert isinstance(event, WebhookDeactivated)
    assert event.registration_id == registration.registration_id


async def test_a_signed_deactivation_notice_on_the_callout_url_is_kept_and_reported(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    registration = await deployment.registration(secret=SECRET)
    notice = b'{"Action":"Deactivated","Guid":"abc","Id":77,"EventTime":"2026-12-01T00:00:00Z"}'
    async with serve_gateway(deployment.settings()) as served:
        status, _ = await _post(
            http,
            served.callout_url(registration.registration_id),
            notice,
            signed_headers(SECRET, notice),
        )
        dead = await read_topic(deployment.bootstrap, deployment.topics.callouts_dlq, at_least=1)
        events = await read_topic(deployment.bootstrap, deployment.topics.control, at_least=1)
        callouts = await read_topic(deployment.bootstrap, deployment.topics.callouts)
    assert status == 200
    assert [r.value for r in dead] == [notice]
    assert len(events) == 1
    assert callouts == []  # its Id is the webhook's: never keyed as a ticket
