"""``autotask.<entity>.v1``: change events for downstream consumers (the contract in ``schemas/``).

One compacted topic per entity. Each message describes one change of one entity:

- key: ``{"connection": "acme", "id": 42}`` (compact JSON, keys sorted), so compaction keeps the
  latest state per entity and every change of one entity is in one partition, in order;
- value: a Debezium-style envelope ``{"before", "after", "op", "source", "ts_ms"}`` where ``op``
  is ``c`` (created), ``u`` (updated), ``d`` (deleted) or ``r`` (read: a snapshot from a
  backfill); ``source`` carries the connection, entity, the entity's version (its last-modified
  value), the origin (``webhook``, ``sweep``, ``backfill``), the callout sequence number when a
  callout caused it, and a ``reason`` for deletes (``deleted`` or ``out_of_scope``);
- headers: CloudEvents binary mode (``ce_specversion``, ``ce_id``, ``ce_source``, ``ce_type``
  such as ``autotask.ticket.updated``, ``ce_time``, ``ce_subject``) and ``content-type``;
- after each delete, a tombstone (same key, null value) so compaction eventually drops the key.

Delivery is at least once (architecture.md rule 6): ``ce_id`` is derived from the connection,
entity, id, version and op, so a change published twice (a replay, a redelivery) carries the same
id and consumers can drop the second copy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shared.entities import EntitySpec
from shared.messages.callout import format_instant

Op = Literal["c", "u", "d", "r"]
Origin = Literal["webhook", "sweep", "backfill"]

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
_TYPE_BY_OP = {"c": "created", "u": "updated", "d": "deleted", "r": "snapshot"}


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change, ready to encode."""

    connection: str
    entity: EntitySpec
    id: int
    op: Op
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    version: datetime | None
    origin: Origin
    at: datetime
    """When the change was committed to the mirror."""
    callout_sequence: int | None = None
    reason: str | None = None

    @property
    def event_id(self) -> str:
        """Stable for the same change: connection, entity, id, version and op."""
        version = format_instant(self.version) if self.version else "-"
        basis = f"{self.connection}|{self.entity.rest_name}|{self.id}|{version}|{self.op}"
        if self.op == "d" and self.reason:
            basis += f"|{self.reason}"
        return hashlib.sha256(basis.encode()).hexdigest()[:32]

    @property
    def event_type(self) -> str:
        """CloudEvents type: ``autotask.<callout type, lower case>.<created|updated|...>``."""
        return f"autotask.{self.entity.callout_type.lower()}.{_TYPE_BY_OP[self.op]}"


def change_key(connection: str, entity_id: int) -> bytes:
    """The key of an entity's change events (and of its tombstone)."""
    return json.dumps(
        {"connection": connection, "id": entity_id}, separators=(",", ":"), sort_keys=True
    ).encode()


def envelope(event: ChangeEvent) -> dict[str, Any]:
    """The value of a change event as a JSON-ready dict."""
    source: dict[str, Any] = {
        "connection": event.connection,
        "entity": event.entity.rest_name,
        "version": format_instant(event.version) if event.version else None,
        "origin": event.origin,
        "callout_sequence": event.callout_sequence,
    }
    if event.reason:
        source["reason"] = event.reason
    return {
        "before": dict(event.before) if event.before is not None else None,
        "after": dict(event.after) if event.after is not None else None,
        "op": event.op,
        "source": source,
        "ts_ms": int(event.at.timestamp() * 1000),
    }


def encode_change(event: ChangeEvent) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of a change event."""
    value = json.dumps(envelope(event), separators=(",", ":"), ensure_ascii=False).encode()
    return change_key(event.connection, event.id), value, cloudevent_headers(event)


def cloudevent_headers(event: ChangeEvent) -> list[tuple[str, bytes]]:
    """CloudEvents binary-mode headers (``ce_`` prefix, as the Kafka protocol binding says)."""
    return [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", event.event_id.encode()),
        ("ce_source", f"/autotask-sync/{event.connection}/{event.entity.rest_name}".encode()),
        ("ce_type", event.event_type.encode()),
        ("ce_time", format_instant(event.at).encode()),
        ("ce_subject", str(event.id).encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]


def tombstone(event: ChangeEvent) -> tuple[bytes, None, list[tuple[str, bytes]]]:
    """The null-value message that follows a delete (headers say what it tombstones)."""
    return change_key(event.connection, event.id), None, [("ce_subject", str(event.id).encode())]


__all__ = [
    "ChangeEvent",
    "Op",
    "Origin",
    "change_key",
    "cloudevent_headers",
    "encode_change",
    "envelope",
    "tombstone",
]
