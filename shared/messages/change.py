"""``autotask.<entity>.v1``: change events for downstream consumers (the contract in ``schemas/``).

One compacted topic per entity. The topic's suffix (``tickets``, ``configuration_items``,
``ticket_notes``...) is the entity's one public spelling: it is also the entity in ``ce_type``,
``ce_source`` and ``source.entity``. The Autotask REST name (``ConfigurationItems``) appears only
in ``source.autotask_entity``, for consumers that call Autotask about the row.

Each message describes one change of one entity:

- key: ``{"connection": "acme", "id": 42}`` (compact JSON, keys sorted), so compaction keeps the
  latest state per entity and every change of one entity is in one partition, in order;
- value: a Debezium-style envelope ``{"before", "after", "op", "source", "ts_ms"}``; ``source``
  carries the connection, the entity (both spellings), the entity's version (its last-modified
  value), the origin (``webhook``, ``sweep``, ``backfill``), the callout sequence number when a
  callout caused it, and a ``reason`` for removals (``deleted`` or ``out_of_scope``);
- headers: CloudEvents binary mode (``ce_specversion``, ``ce_id``, ``ce_source``
  ``/autotask-sync/<connection>/<entity>``, ``ce_type`` ``autotask.<entity>.<kind>``,
  ``ce_time``, ``ce_subject`` the id, ``ce_reason`` on removals) and ``content-type``.

Snapshots and changes. A backfill or resync (``source.origin`` ``backfill``) reads every row and
publishes each row it creates or updates as a *snapshot*: ``op`` ``r``, ``ce_type``
``autotask.<entity>.snapshot``. Webhooks and sweeps publish *changes*: ``c`` / ``u``
(``.created`` / ``.updated``). Both carry the whole row in ``after``: a consumer that keeps state
treats them alike; one that reacts to changes (notifications, workflows) skips ``op`` ``r``.
A row the read finds unchanged publishes nothing.

Removals. ``op`` ``d`` (``after`` null) for a row deleted in Autotask (``ce_type ...deleted``,
``ce_reason: deleted``) or one that left the connection's sync scope and still exists in
Autotask (``ce_type ...out_of_scope``, ``ce_reason: out_of_scope``); ``source.reason`` says the
same for Debezium tooling, which knows only ``d``. Each removal is followed by a tombstone: same
key, null value, the same CloudEvents headers with ``ce_type autotask.<entity>.tombstone`` and its
own ``ce_id``, and no ``content-type`` (a tombstone has no data, and a CloudEvents reader given a
content type would try to parse the empty value). Compaction then drops the key; the tombstone
itself stays readable for the topic's ``delete.retention.ms`` (:mod:`shared.messages.topics`).

Ids. Delivery is at least once (architecture.md rule 6), so consumers deduplicate on ``ce_id``.
It is a hash of the connection, entity, id, the row's change counter (``change_seq``, counted by
the mirror in the same statement as the change: :mod:`shared.mirror.store`), the kind and the
content hash of ``after``. The write and its events are one transaction, rolled back when Kafka
does not acknowledge, so redone work finds the same counter: the same change published twice has
one id. A row that goes A -> B -> A -> B gets a new counter, hence a new id, for every change;
and should a rolled-back event have reached the broker after all while the redone work read
newer content, the content hash keeps the two ids apart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from shared.entities import EntitySpec
from shared.messages.callout import format_instant
from shared.messages.jsonconverter import key_with_schema, with_schema

Op = Literal["c", "u", "d", "r"]
Origin = Literal["webhook", "sweep", "backfill"]
Reason = Literal["deleted", "out_of_scope"]
Kind = Literal["created", "updated", "snapshot", "deleted", "out_of_scope", "tombstone"]
"""The last segment of ``ce_type``."""
ValueFormat = Literal["json", "connect-json"]
"""``json``: the envelope itself; ``connect-json``: wrapped as Kafka Connect's JsonConverter
with schemas enabled reads it (``{"schema", "payload"}``)."""

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
_KIND_BY_OP: dict[str, Kind] = {"c": "created", "u": "updated", "r": "snapshot"}


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
    reason: Reason | None = None
    """Why an ``op`` ``d`` removed the row (unset reads as ``deleted``)."""
    change_seq: int = 0
    """The row's change counter for this change (:mod:`shared.mirror.store`)."""

    @property
    def kind(self) -> Kind:
        """What happened: ``created``, ``updated``, ``snapshot``, ``deleted``, ``out_of_scope``."""
        if self.op == "d":
            return self.reason or "deleted"
        return _KIND_BY_OP[self.op]

    @property
    def event_id(self) -> str:
        """``ce_id``: the same for the same change, different for every other (module doc)."""
        return self._id(self.kind)

    @property
    def tombstone_id(self) -> str:
        """``ce_id`` of the tombstone that follows a removal."""
        return self._id("tombstone")

    @property
    def event_type(self) -> str:
        """``ce_type``: ``autotask.<topic suffix>.<kind>``, e.g. ``autotask.tickets.updated``."""
        return event_type(self.entity, self.kind)

    def _id(self, kind: Kind) -> str:
        content = _digest(self.after) if self.after is not None else "-"
        basis = (
            f"{self.connection}|{self.entity.topic_suffix}|{self.id}|{self.change_seq}|{kind}"
            f"|{content}"
        )
        return hashlib.sha256(basis.encode()).hexdigest()[:32]


def _digest(record: Mapping[str, Any]) -> str:
    """sha256 of ``record`` as JSON with sorted keys: equal records, equal digests."""
    encoded = orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(encoded).hexdigest()


def event_type(entity: EntitySpec, kind: Kind) -> str:
    """The CloudEvents type of ``kind`` events of ``entity``."""
    return f"autotask.{entity.topic_suffix}.{kind}"


def event_source(connection: str, entity: EntitySpec) -> str:
    """The CloudEvents source: ``/autotask-sync/<connection>/<topic suffix>``."""
    return f"/autotask-sync/{connection}/{entity.topic_suffix}"


def change_key(connection: str, entity_id: int) -> bytes:
    """The key of an entity's change events (and of its tombstone)."""
    return json.dumps(
        {"connection": connection, "id": entity_id}, separators=(",", ":"), sort_keys=True
    ).encode()


def envelope(event: ChangeEvent) -> dict[str, Any]:
    """The value of a change event as a JSON-ready dict."""
    source: dict[str, Any] = {
        "connection": event.connection,
        "entity": event.entity.topic_suffix,
        "autotask_entity": event.entity.rest_name,
        "version": format_instant(event.version) if event.version else None,
        "origin": event.origin,
        "callout_sequence": event.callout_sequence,
    }
    if event.op == "d":
        source["reason"] = event.kind
    return {
        "before": dict(event.before) if event.before is not None else None,
        "after": dict(event.after) if event.after is not None else None,
        "op": event.op,
        "source": source,
        "ts_ms": int(event.at.timestamp() * 1000),
    }


def encode_change(
    event: ChangeEvent, *, value_format: ValueFormat = "json"
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of a change event."""
    value = envelope(event)
    if value_format == "connect-json":
        value = with_schema(event.entity, value)
    encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return _key(event, value_format), encoded, cloudevent_headers(event)


def _key(event: ChangeEvent, value_format: ValueFormat) -> bytes:
    """The record key in ``value_format``: Connect's sinks take the primary key from it, so in
    ``connect-json`` it carries its schema too (and a record and its tombstone share it)."""
    if value_format == "connect-json":
        keyed = key_with_schema(event.connection, event.id)
        return json.dumps(keyed, separators=(",", ":"), sort_keys=True).encode()
    return change_key(event.connection, event.id)


def cloudevent_headers(event: ChangeEvent) -> list[tuple[str, bytes]]:
    """CloudEvents binary-mode headers (``ce_`` prefix, as the Kafka protocol binding says)."""
    return [
        *_context(event, event_id=event.event_id, kind=event.kind),
        ("content-type", CONTENT_TYPE.encode()),
    ]


def tombstone(
    event: ChangeEvent, *, value_format: ValueFormat = "json"
) -> tuple[bytes, None, list[tuple[str, bytes]]]:
    """The null-value message that follows a removal: a CloudEvent of its own, without data."""
    headers = _context(event, event_id=event.tombstone_id, kind="tombstone")
    return _key(event, value_format), None, headers


def _context(event: ChangeEvent, *, event_id: str, kind: Kind) -> list[tuple[str, bytes]]:
    """The CloudEvents context attributes; ``ce_reason`` (an extension) on removals and their
    tombstones, so a consumer reading headers only tells a delete from a scope change."""
    headers = [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", event_id.encode()),
        ("ce_source", event_source(event.connection, event.entity).encode()),
        ("ce_type", event_type(event.entity, kind).encode()),
        ("ce_time", format_instant(event.at).encode()),
        ("ce_subject", str(event.id).encode()),
    ]
    if event.op == "d":
        headers.append(("ce_reason", event.kind.encode()))
    return headers


__all__ = [
    "CONTENT_TYPE",
    "ChangeEvent",
    "Kind",
    "Op",
    "Origin",
    "Reason",
    "ValueFormat",
    "change_key",
    "cloudevent_headers",
    "encode_change",
    "envelope",
    "event_source",
    "event_type",
    "tombstone",
]
