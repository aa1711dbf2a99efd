"""Routing a verified callout: topic, key, headers, dead letters; pure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from services.webhook_gateway.routing import route
from shared.entities import COMPANIES
from shared.messages.callout import callout_headers
from shared.messages.topics import Topics
from shared.registrations import Registration, RegistrationState

TOPICS = Topics(prefix="autotask")
AT = datetime(2026, 12, 1, 12, 0, 0, 123000, tzinfo=UTC)


def _registration(entity: str = "Tickets", connection: str = "acme") -> Registration:
    return Registration(
        registration_id="r" * 32,
        connection=connection,
        entity=entity,
        state=RegistrationState.ACTIVE,
        secret_current=SecretStr("secret"),
    )


def _route(body: bytes, registration: Registration | None = None):  # type: ignore[no-untyped-def]
    return route(
        registration or _registration(), body, topics=TOPICS, received_at=AT, request_id="req-1"
    )


def test_a_callout_goes_to_the_callouts_topic_keyed_by_connection_type_and_id() -> None:
    body = b'{"Action":"Update","EntityType":"Ticket","Id":42,"Fields":{}}'
    routed = _route(body)
    assert not routed.dead_lettered
    assert routed.message.topic == "autotask.callouts.v1"
    assert routed.message.key == b"acme:Ticket:42"
    assert routed.message.value is body  # the raw bytes, untouched
    assert list(routed.message.headers) == [
        ("connection", b"acme"),
        ("registration", b"r" * 32),
        ("entity", b"Tickets"),
        ("received-at", b"2026-12-01T12:00:00.123Z"),
        ("request-id", b"req-1"),
    ]
    assert routed.callout is not None
    assert routed.callout.action == "Update"


@pytest.mark.parametrize(
    ("body", "key", "mismatch"),
    [
        (b'{"entitytype":"Account","id":"17"}', b"acme:Company:17", False),  # alias, string id
        (b'{"EntityType":"company","Id":17.0}', b"acme:Company:17", False),
        (b'{"EntityType":"Contact","Id":17,"Extra":{"x":1}}', b"acme:Company:17", True),
    ],
)
def test_the_key_uses_the_registrations_canonical_type(
    body: bytes, key: bytes, mismatch: bool
) -> None:
    routed = _route(body, _registration("Companies"))
    assert routed.message.key == key
    assert routed.message.topic == TOPICS.callouts
    assert routed.entity_mismatch is mismatch
    assert routed.message.headers == callout_headers(
        connection="acme",
        registration_id="r" * 32,
        entity=COMPANIES,
        received_at=AT,
        request_id="req-1",
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"Action":"Update","EntityType":"Ticket"}', "Id"),
        (b'{"EntityType":"Ticket","Id":-1}', "Id"),
        (b'{"EntityType":"Ticket","Id":"abc"}', "Id"),
        (b'{"EntityType":"Ticket","Id":true}', "Id"),
        (b'{"Id":5}', "EntityType"),
        (b"[1,2,3]", "not an object"),
        (b"\xff not json", "not JSON"),
        (b"[" * 50_000, "not JSON"),
    ],
)
def test_what_cannot_be_routed_is_dead_lettered_with_the_reason(body: bytes, reason: str) -> None:
    routed = _route(body)
    assert routed.dead_lettered
    assert reason in (routed.dead_letter_reason or "")
    message = routed.message
    assert message.topic == "autotask.callouts.dlq.v1"
    assert message.key == b"acme:Ticket"
    assert message.value is body
    headers = dict(message.headers)
    assert headers["error-class"] == b"MessageError"
    assert reason.encode() in headers["error-message"]
    assert headers["attempts"] == b"1"
    assert headers["first-failed-at"] == b"2026-12-01T12:00:00.123Z"
    assert headers["original-topic"] == b"autotask.callouts.v1"
    assert headers["registration"] == b"r" * 32
    assert not routed.deactivation_notice


@pytest.mark.parametrize(
    "body",
    [
        b'{"Action":"Deactivated","Guid":"g","Id":77,"EventTime":"2026-12-01T00:00:00Z"}',
        b'{"action":"deactivated","EntityType":"Ticket","Id":77}',
    ],
)
def test_a_deactivation_notice_is_dead_lettered_and_flagged(body: bytes) -> None:
    routed = _route(body)
    assert routed.dead_lettered
    assert routed.deactivation_notice
    assert routed.message.topic == TOPICS.callouts_dlq


def test_a_registration_for_an_entity_this_build_does_not_know_is_dead_lettered() -> None:
    routed = _route(b'{"EntityType":"Opportunity","Id":3}', _registration("Opportunities"))
    assert routed.dead_lettered
    assert "Opportunities" in (routed.dead_letter_reason or "")
    assert dict(routed.message.headers)["entity"] == b"Opportunities"
    assert routed.message.key == b"acme:Opportunities"


@given(body=st.binary(max_size=500))
def test_any_verified_body_is_routed_somewhere_unchanged(body: bytes) -> None:
    routed = _route(body)
    assert routed.message.value is body
    assert routed.message.topic in (TOPICS.callouts, TOPICS.callouts_dlq)
    assert routed.dead_lettered == (routed.message.topic == TOPICS.callouts_dlq)
