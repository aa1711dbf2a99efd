"""Where a verified callout goes: pure, no I/O.

A verified body is never refused. When it names an entity id it becomes a message on the
callouts topic keyed ``{connection}:{canonical EntityType}:{Id}``, where the connection and the
entity come from the registration (the URL), not from the body; when it cannot be routed (no
``EntityType`` or ``Id``, not JSON, a deactivation notice, an entity this build does not know) it
becomes a dead letter with the reason. The value is always the raw body, byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from shared.entities import EntitySpec, find_rest_name
from shared.errors import MessageError
from shared.kafka import Headers
from shared.messages.callout import (
    HEADER_CONNECTION,
    HEADER_ENTITY,
    HEADER_RECEIVED_AT,
    HEADER_REGISTRATION,
    HEADER_REQUEST_ID,
    Callout,
    callout_headers,
    callout_key,
    format_instant,
    parse_callout,
)
from shared.messages.deadletter import dead_letter_headers
from shared.messages.topics import Topics
from shared.registrations import Registration

DEACTIVATED_ACTION = "deactivated"
"""``Action`` of the deactivation notice some receivers see on the callout URL (§8.4)."""


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One message the gateway must make durable: on Kafka, or in the spool until it is."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers
    connection: str
    registration_id: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Routed:
    """A verified callout's message, with what the log line and the metrics need."""

    message: OutboundMessage
    callout: Callout | None
    """What the body says; None when it is dead-lettered for lack of it."""
    dead_letter_reason: str | None = None
    entity_mismatch: bool = False
    """The body's EntityType is not one of the registration's entity (routed by the URL)."""
    deactivation_notice: bool = False
    """The body is Autotask's ``Deactivated`` notice (signed, on the callout URL)."""

    @property
    def dead_lettered(self) -> bool:
        return self.dead_letter_reason is not None


def route(
    registration: Registration,
    body: bytes,
    *,
    topics: Topics,
    received_at: datetime,
    request_id: str,
) -> Routed:
    """The message for a callout whose signature verified against ``registration``."""
    entity = find_rest_name(registration.entity)
    headers = _headers(registration, entity, received_at, request_id)
    if entity is None:
        return _dead_letter(
            registration,
            body,
            headers,
            topics=topics,
            received_at=received_at,
            reason=f"the registration's entity {registration.entity!r} is not in this build's "
            "entity registry",
        )
    try:
        callout = parse_callout(body)
    except MessageError as exc:
        return _dead_letter(
            registration,
            body,
            headers,
            topics=topics,
            received_at=received_at,
            reason=str(exc),
            notice=_is_deactivation_notice(body),
        )
    if (callout.action or "").lower() == DEACTIVATED_ACTION:
        # Its Id is the webhook's, not an entity's: keyed as an entity it would mislead the worker.
        return _dead_letter(
            registration,
            body,
            headers,
            topics=topics,
            received_at=received_at,
            reason="a webhook deactivation notice, not an entity change",
            notice=True,
            callout=callout,
        )
    mismatch = callout.entity_type.lower() not in {t.lower() for t in entity.callout_types}
    message = OutboundMessage(
        topic=topics.callouts,
        key=callout_key(registration.connection, entity, callout.id),
        value=body,
        headers=headers,
        connection=registration.connection,
        registration_id=registration.registration_id,
        received_at=received_at,
    )
    return Routed(message=message, callout=callout, entity_mismatch=mismatch)


def _headers(
    registration: Registration,
    entity: EntitySpec | None,
    received_at: datetime,
    request_id: str,
) -> list[tuple[str, bytes]]:
    if entity is not None:
        return callout_headers(
            connection=registration.connection,
            registration_id=registration.registration_id,
            entity=entity,
            received_at=received_at,
            request_id=request_id,
        )
    return [
        (HEADER_CONNECTION, registration.connection.encode()),
        (HEADER_REGISTRATION, registration.registration_id.encode()),
        (HEADER_ENTITY, registration.entity.encode()),
        (HEADER_RECEIVED_AT, format_instant(received_at).encode()),
        (HEADER_REQUEST_ID, request_id.encode()),
    ]


def _dead_letter(
    registration: Registration,
    body: bytes,
    headers: list[tuple[str, bytes]],
    *,
    topics: Topics,
    received_at: datetime,
    reason: str,
    notice: bool = False,
    callout: Callout | None = None,
) -> Routed:
    entity = find_rest_name(registration.entity)
    entity_type = entity.callout_type if entity is not None else registration.entity
    message = OutboundMessage(
        topic=topics.callouts_dlq,
        # No entity id to key by: one key per registration's entity keeps them together.
        key=f"{registration.connection}:{entity_type}".encode(),
        value=body,
        headers=dead_letter_headers(
            headers,
            error_class=MessageError.__name__,
            message=reason,
            attempts=1,
            first_failed_at=received_at,
            original_topic=topics.callouts,
        ),
        connection=registration.connection,
        registration_id=registration.registration_id,
        received_at=received_at,
    )
    return Routed(
        message=message,
        callout=callout,
        dead_letter_reason=reason,
        deactivation_notice=notice,
    )


def _is_deactivation_notice(body: bytes) -> bool:
    """Whether an unroutable body is Autotask's ``Deactivated`` notice (keys in any case)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    action = next((v for k, v in data.items() if str(k).lower() == "action"), None)
    return isinstance(action, str) and action.strip().lower() == DEACTIVATED_ACTION


__all__ = ["DEACTIVATED_ACTION", "OutboundMessage", "Routed", "route"]
