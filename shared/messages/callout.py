"""``autotask.callouts.v1``: the gateway's record of each verified callout, for the worker.

The value is the callout body exactly as Autotask sent (and signed) it: nothing is re-encoded, so
the worker, a replay or an audit sees the bytes the signature covered. Routing facts travel as
headers and in the key:

- key ``{connection}:{EntityType}:{Id}``: every change to one entity lands in one partition, in
  order (architecture.md rule 2). ``EntityType`` is the registry's canonical callout type of the
  registration's entity (``Ticket``, ``Company``, ``ConfigurationItem``...), whatever spelling the
  body used, so an alias (``Account``, ``InstalledProduct``) cannot split one entity's changes
  over two partitions;
- headers (UTF-8): ``connection``, ``registration``, ``entity`` (REST name), ``received-at``
  (ISO 8601 UTC, milliseconds), ``request-id``.

:func:`parse_callout` reads a body tolerantly, as the gateway and the worker both must: keys in
any case, unknown keys ignored, numbers as strings of ASCII digits accepted (strictly, within
64 bits: :func:`shared.integers.parse_int`; an unusable ``SequenceNumber`` or ``PersonID`` is
None). A body it cannot route raises :class:`~shared.errors.MessageError` with the reason (the
gateway dead-letters it), and nothing else, whatever the bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.entities import EntitySpec
from shared.errors import MessageError
from shared.integers import parse_int

HEADER_CONNECTION = "connection"
HEADER_REGISTRATION = "registration"
HEADER_ENTITY = "entity"
HEADER_RECEIVED_AT = "received-at"
HEADER_REQUEST_ID = "request-id"

ACTIONS = ("Create", "Update", "Delete")


@dataclass(frozen=True, slots=True)
class Callout:
    """What a callout body says, read tolerantly; ``fields`` keeps the body's own keys."""

    entity_type: str
    """As written in the body (``Ticket``, ``InstalledProduct``...)."""
    id: int
    action: str | None = None
    """``Create``, ``Update``, ``Delete`` (normalised casing), another value, or None."""
    guid: str | None = None
    sequence_number: int | None = None
    event_time: str | None = None
    person_id: int | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_delete(self) -> bool:
        return self.action == "Delete"


def callout_key(connection: str, entity: EntitySpec, entity_id: int) -> bytes:
    """The Kafka key of a callout: ``{connection}:{canonical EntityType}:{Id}``."""
    return f"{connection}:{entity.callout_type}:{entity_id}".encode()


def callout_headers(
    *,
    connection: str,
    registration_id: str,
    entity: EntitySpec,
    received_at: datetime,
    request_id: str,
) -> list[tuple[str, bytes]]:
    """The headers the gateway sets on every callout message."""
    return [
        (HEADER_CONNECTION, connection.encode()),
        (HEADER_REGISTRATION, registration_id.encode()),
        (HEADER_ENTITY, entity.rest_name.encode()),
        (HEADER_RECEIVED_AT, format_instant(received_at).encode()),
        (HEADER_REQUEST_ID, request_id.encode()),
    ]


def header_map(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    """Headers as text, by name (the last value wins; undecodable bytes are replaced)."""
    return {name: value.decode("utf-8", "replace") for name, value in headers or ()}


def format_instant(moment: datetime) -> str:
    """``2026-12-01T12:00:00.123Z``: UTC, milliseconds."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(text: str) -> datetime:
    """The inverse of :func:`format_instant` (any ISO 8601 form with a zone)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_callout(raw: bytes) -> Callout:
    """Read a callout body; MessageError says why one cannot be routed (never the body)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: nesting too deep for the decoder; as unroutable as any other bad body.
        raise MessageError(f"the callout body is not JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise MessageError(f"the callout body is a JSON {type(data).__name__}, not an object")
    lowered = {str(key).lower(): value for key, value in data.items()}
    entity_type = lowered.get("entitytype")
    if not isinstance(entity_type, str) or not entity_type.strip():
        raise MessageError("the callout has no EntityType")
    # Id 0 is real: the tenant's own company is Companies/0.
    entity_id = parse_int(lowered.get("id"), minimum=0)
    if entity_id is None:
        raise MessageError(
            "the callout has no usable Id (missing, not an integer of ASCII digits within 64 "
            "bits, or < 0)"
        )
    fields = lowered.get("fields")
    return Callout(
        entity_type=entity_type.strip(),
        id=entity_id,
        action=_action(lowered.get("action")),
        guid=_text(lowered.get("guid")),
        sequence_number=parse_int(lowered.get("sequencenumber"), minimum=0),
        event_time=_text(lowered.get("eventtime")),
        person_id=parse_int(lowered.get("personid"), minimum=1),
        fields=fields if isinstance(fields, dict) else {},
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _action(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    for action in ACTIONS:
        if value.strip().lower() == action.lower():
            return action
    return value.strip() or None


__all__ = [
    "ACTIONS",
    "HEADER_CONNECTION",
    "HEADER_ENTITY",
    "HEADER_RECEIVED_AT",
    "HEADER_REGISTRATION",
    "HEADER_REQUEST_ID",
    "Callout",
    "callout_headers",
    "callout_key",
    "format_instant",
    "header_map",
    "parse_callout",
    "parse_instant",
]
