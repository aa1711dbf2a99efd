"""``python -m tools schemas``: write the topic contracts in ``schemas/`` from the code.

Each topic gets ``schemas/<topic>.schema.json`` (JSON Schema 2020-12 of the value, with the key
and headers described under ``x-kafka``) and ``schemas/examples/<topic>.json`` (one example
message: key, headers, value). They are generated from the entity registry and the message
modules, so they cannot drift from what the services produce; ``tests/contracts`` checks that the
committed files equal a fresh generation and that produced messages validate.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from shared.entities import REGISTRY, EntitySpec, webhook_entities
from shared.messages.callout import callout_headers, callout_key
from shared.messages.change import ChangeEvent, encode_change, envelope
from shared.messages.control import ControlEvent, SweepRequested, encode_control
from shared.messages.deadletter import dead_letter_headers
from shared.messages.topics import Topics

SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "schemas"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
EXAMPLE_TIME = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _callout_schema(topics: Topics) -> dict[str, Any]:
    return {
        "$schema": DRAFT,
        "$id": f"{topics.callouts}.schema.json",
        "title": topics.callouts,
        "description": "A verified Autotask callout, byte for byte as Autotask sent and signed it. "
        "Keys are PascalCase as Autotask writes them; readers should match keys "
        "case-insensitively and accept numbers as strings (shared/messages/callout.py).",
        "type": "object",
        "required": ["EntityType", "Id"],
        "properties": {
            "Action": {"type": "string", "description": "Create, Update, Delete (or Deactivated)"},
            "Guid": {"type": "string"},
            "EntityType": {"type": "string", "minLength": 1},
            "Id": {"type": ["integer", "string"]},
            "Fields": {"type": "object"},
            "EventTime": {"type": "string"},
            "SequenceNumber": {"type": ["integer", "string"]},
            "PersonID": {"type": ["integer", "string", "null"]},
        },
        "additionalProperties": True,
        "x-kafka": {
            "key": "{connection}:{EntityType}:{Id}, EntityType canonical for the registration's "
            f"entity ({', '.join(spec.callout_type for spec in webhook_entities())})",
            "headers": {
                "connection": "connection name",
                "registration": "webhook registration id",
                "entity": "REST entity name",
                "received-at": "ISO 8601 UTC with milliseconds",
                "request-id": "the gateway's request id",
            },
        },
    }


def _record_schema(entity: EntitySpec) -> dict[str, Any]:
    properties: dict[str, Any] = {"id": {"type": "integer"}}
    sql_types = {
        "text": ["string", "null"],
        "bigint": ["integer", "null"],
        "integer": ["integer", "null"],
        "boolean": ["boolean", "integer", "null"],
        "timestamptz": ["string", "null"],
    }
    for column in entity.promoted:
        properties[column.json_field] = {"type": sql_types[column.sql_type]}
    if entity.last_modified_field:
        properties[entity.last_modified_field] = {"type": ["string", "null"]}
    return {
        "type": "object",
        "required": ["id"],
        "properties": properties,
        "additionalProperties": True,
        "description": f"The {entity.rest_name} record as the Autotask REST API returns it.",
    }


def _change_schema(topics: Topics, entity: EntitySpec) -> dict[str, Any]:
    record = _record_schema(entity)
    topic = topics.changes(entity)
    return {
        "$schema": DRAFT,
        "$id": f"{topic}.schema.json",
        "title": topic,
        "description": f"One change of one {entity.rest_name} record (Debezium-style envelope). "
        "A null value (tombstone) follows every delete. At least once: deduplicate on ce_id.",
        "type": "object",
        "required": ["before", "after", "op", "source", "ts_ms"],
        "properties": {
            "before": {"oneOf": [{"type": "null"}, record]},
            "after": {"oneOf": [{"type": "null"}, record]},
            "op": {"enum": ["c", "u", "d", "r"]},
            "source": {
                "type": "object",
                "required": ["connection", "entity", "version", "origin", "callout_sequence"],
                "properties": {
                    "connection": {"type": "string"},
                    "entity": {"const": entity.rest_name},
                    "version": {"type": ["string", "null"], "description": "last-modified value"},
                    "origin": {"enum": ["webhook", "sweep", "backfill"]},
                    "callout_sequence": {"type": ["integer", "null"]},
                    "reason": {"enum": ["deleted", "out_of_scope"]},
                },
                "additionalProperties": False,
            },
            "ts_ms": {"type": "integer"},
        },
        "allOf": [
            {
                "if": {"properties": {"op": {"const": "d"}}},
                "then": {"properties": {"after": {"type": "null"}}},
            },
            {
                "if": {"properties": {"op": {"enum": ["c", "u", "r"]}}},
                "then": {"properties": {"after": record}},
            },
        ],
        "additionalProperties": False,
        "x-kafka": {
            "key": '{"connection": <name>, "id": <id>} (compact JSON, keys sorted)',
            "headers": {
                "ce_specversion": "1.0",
                "ce_id": "stable per change: deduplicate on it",
                "ce_source": "/autotask-sync/{connection}/{entity}",
                "ce_type": f"autotask.{entity.callout_type.lower()}."
                "created|updated|deleted|snapshot",
                "ce_time": "ISO 8601 UTC",
                "ce_subject": "entity id",
                "content-type": "application/json",
            },
            "cleanup.policy": "compact",
        },
    }


def _control_schema(topics: Topics) -> dict[str, Any]:
    schema: dict[str, Any] = TypeAdapter(ControlEvent).json_schema()
    return {
        "$schema": DRAFT,
        "$id": f"{topics.control}.schema.json",
        "title": topics.control,
        "description": "Requests between components: webhook_deactivated (gateway -> "
        "provisioner), reprovision_requested, sweep_requested (provisioner -> reconciler), "
        "backfill_finished. Unknown types must be ignored.",
        **schema,
        "x-kafka": {"key": "connection name"},
    }


def _dlq_schema(topics: Topics) -> dict[str, Any]:
    return {
        "$schema": DRAFT,
        "$id": f"{topics.callouts_dlq}.schema.json",
        "title": topics.callouts_dlq,
        "description": "A callout that could not be processed, with its original key, value and "
        "headers. The value is the original bytes and need not be JSON.",
        "x-kafka": {
            "key": "the original key",
            "headers": {
                "error-class": "exception class",
                "error-message": "why (at most 1,000 characters, never a secret)",
                "attempts": "how many attempts failed",
                "first-failed-at": "ISO 8601 UTC",
                "original-topic": "where it came from (replay puts it back there)",
            },
        },
    }


def _headers(pairs: list[tuple[str, bytes]]) -> dict[str, str]:
    return {name: value.decode() for name, value in pairs}


def _examples(topics: Topics) -> dict[str, dict[str, Any]]:
    from shared.entities import TICKETS

    examples: dict[str, dict[str, Any]] = {}
    body = {
        "Action": "Update",
        "Guid": "9b2f6f0e-3f4d-4a8e-9c1b-2d7e5f6a8b90",
        "EntityType": "Ticket",
        "Id": 7012,
        "Fields": {"status": 5, "ticketNumber": "T20261201.0004"},
        "EventTime": "2026-12-01T12:00:00.000Z",
        "SequenceNumber": 41,
        "PersonID": 29682885,
    }
    examples[topics.callouts] = {
        "key": callout_key("acme", TICKETS, 7012).decode(),
        "headers": _headers(
            callout_headers(
                connection="acme",
                registration_id="kq3V8t0d2m9xX4YpJc7GfB1sLw6nRh5A",
                entity=TICKETS,
                received_at=EXAMPLE_TIME,
                request_id="3f1c9a2b7d6e4f50",
            )
        ),
        "value": body,
    }
    for entity in REGISTRY:
        after: dict[str, Any] = {"id": 7012 if entity is TICKETS else 42}
        for column in entity.promoted:
            after[column.json_field] = {
                "text": "example",
                "bigint": 29683512,
                "integer": 5,
                "boolean": True,
                "timestamptz": "2026-12-01T12:00:00.000Z",
            }[column.sql_type]
        if entity.last_modified_field:
            after[entity.last_modified_field] = "2026-12-01T11:59:59.870Z"
        event = ChangeEvent(
            connection="acme",
            entity=entity,
            id=after["id"],
            op="u",
            before={**after, **({"title": "before"} if "title" in after else {})},
            after=after,
            version=datetime(2026, 12, 1, 11, 59, 59, 870000, tzinfo=UTC)
            if entity.last_modified_field
            else None,
            origin="webhook",
            at=EXAMPLE_TIME,
            callout_sequence=41,
        )
        key, _value, headers = encode_change(event)
        examples[topics.changes(entity)] = {
            "key": key.decode(),
            "headers": _headers(headers),
            "value": envelope(event),
        }
    control = SweepRequested(
        event_id="5d0b6c1e9a7f4e2d8c3b1a0f9e8d7c6b",
        connection="acme",
        at=EXAMPLE_TIME,
        entity="Tickets",
        since=datetime(2026, 12, 1, 11, 40, tzinfo=UTC),
        reason="webhook reactivated",
    )
    key, value = encode_control(control)
    examples[topics.control] = {"key": key.decode(), "headers": {}, "value": json.loads(value)}
    examples[topics.callouts_dlq] = {
        "key": "acme:Ticket:7012",
        "headers": _headers(
            dead_letter_headers(
                [(n, v.encode()) for n, v in examples[topics.callouts]["headers"].items()],
                error_class="PermissionDeniedError",
                message="Tickets: the API user's security level lacks query (view) permission",
                attempts=3,
                first_failed_at=EXAMPLE_TIME,
                original_topic=topics.callouts,
            )
        ),
        "value": body,
    }
    return examples


def generate(topics: Topics | None = None) -> dict[str, str]:
    """Relative path -> file content, for every contract file."""
    topics = topics or Topics()
    schemas = {
        topics.callouts: _callout_schema(topics),
        topics.control: _control_schema(topics),
        topics.callouts_dlq: _dlq_schema(topics),
        **{topics.changes(e): _change_schema(topics, e) for e in REGISTRY},
    }
    files = {
        f"{topic}.schema.json": json.dumps(schema, indent=2, sort_keys=True) + "\n"
        for topic, schema in schemas.items()
    }
    for topic, example in _examples(topics).items():
        files[f"examples/{topic}.json"] = json.dumps(example, indent=2, sort_keys=True) + "\n"
    return files


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="fail if the files are out of date")


def run(args: argparse.Namespace) -> int:
    files = generate()
    stale = [path for path, text in files.items() if _read(SCHEMAS_DIR / path) != text]
    if args.check:
        if stale:
            print("out of date (run `python -m tools schemas`): " + ", ".join(sorted(stale)))
            return 1
        print(f"{len(files)} contract files up to date")
        return 0
    for path in stale:
        target = SCHEMAS_DIR / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(files[path])
    print(f"wrote {len(stale)} of {len(files)} contract files in {SCHEMAS_DIR}")
    return 0


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None
