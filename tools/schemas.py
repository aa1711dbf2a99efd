"""``python -m tools schemas``: write the topic contracts in ``schemas/`` from the code.

Each topic gets ``schemas/<topic>.schema.json`` (JSON Schema 2020-12 of the value, its headers
and compaction under ``x-kafka``), ``schemas/<topic>.key.schema.json`` (the key) and
``schemas/examples/<topic>.json`` (example messages: key, headers, value; a change topic has one
of every kind, its tombstone included). They are generated from the entity registry (each
entity's ``fields``) and the message modules, so they cannot drift from what the services
produce; ``tests/contracts`` checks that the committed files equal a fresh generation, that
produced messages validate, and that the published contract only changed compatibly
(:mod:`tools.schema_evolution`). Writing an incompatible edit takes ``--allow-breaking``, for a
topic no consumer reads yet (docs/adr/0011-change-topic-contract.md).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, get_args

from pydantic import TypeAdapter

from shared.entities import REGISTRY, TICKETS, EntitySpec, Field, FieldType, webhook_entities
from shared.messages.callout import (
    HEADER_CONNECTION,
    HEADER_ENTITY,
    HEADER_RECEIVED_AT,
    HEADER_REGISTRATION,
    HEADER_REQUEST_ID,
    callout_headers,
    callout_key,
    parse_instant,
)
from shared.messages.change import (
    ChangeEvent,
    Kind,
    Op,
    Origin,
    Reason,
    encode_change,
    event_type,
    tombstone,
)
from shared.messages.control import ControlEvent, SweepRequested, encode_control
from shared.messages.deadletter import (
    HEADER_ATTEMPTS,
    HEADER_ERROR_CLASS,
    HEADER_ERROR_MESSAGE,
    HEADER_FIRST_FAILED_AT,
    HEADER_ORIGINAL_TOPIC,
    dead_letter_headers,
)
from shared.messages.topics import Topics
from shared.records import INSTANT_PATTERN
from shared.settings import CONNECTION_NAME_PATTERN
from tools.schema_evolution import breaking_changes

SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "schemas"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
EXAMPLE_TIME = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EXAMPLE_CONNECTION = "acme"
ADR = "docs/adr/0011-change-topic-contract.md"

Schema = dict[str, Any]
Message = dict[str, Any]
"""An example message: ``key`` (text), ``headers`` (name -> text) and ``value``."""


class SchemaGap(Exception):
    """The code produces something the generator does not describe yet (add it here)."""


def value_schema_file(topic: str) -> str:
    return f"{topic}.schema.json"


def key_schema_file(topic: str) -> str:
    return f"{topic}.key.schema.json"


# --- change topics: autotask.<entity>.v1 ----------------------------------------------------
_JSON_TYPES: dict[FieldType, str] = {
    "long": "integer",
    "integer": "integer",
    "double": "number",
    "string": "string",
    "boolean": "boolean",
    "datetime": "string",
}
_INSTANT = {"format": "date-time", "pattern": INSTANT_PATTERN}
_USER_DEFINED_FIELDS = {
    "type": "array",
    "description": "The tenant's user-defined fields: a name and a text value (null when empty).",
    "items": {
        "type": "object",
        "required": ["name", "value"],
        "properties": {"name": {"type": "string"}, "value": {"type": ["string", "null"]}},
    },
}
_CHANGE_HEADERS = {
    "ce_specversion": "CloudEvents version",
    "ce_id": "the event's id: a change delivered twice carries the same id, deduplicate on it",
    "ce_source": "/autotask-sync/<connection>/<entity>",
    "ce_type": "what happened, autotask.<entity>.<kind>; ignore types you do not know",
    "ce_time": "when the change was committed to the mirror (RFC 3339, UTC, Z)",
    "ce_subject": "the row's id",
    "ce_reason": "why the row was removed: deleted (in Autotask), out_of_scope (it left the "
    "connection's sync scope and still exists) or purged (its connection was removed with "
    "--purge: a tombstone with no op d before it)",
    "content-type": "the value's media type",
}
_OPS = {
    "c": "created",
    "u": "updated",
    "r": "snapshot: a backfill or resync read the row (a state, not a change someone made)",
    "d": "removed: deleted, or out of the sync scope (source.reason); a tombstone follows",
}
_WITH_BEFORE = ["u", "d"]
_WITHOUT_BEFORE = "c"
_WITH_AFTER = ["c", "u", "r"]
_REMOVAL = "d"


def _field_schema(field: Field) -> Schema:
    json_type = _JSON_TYPES[field.type]
    schema: Schema = {"type": json_type if field.required else [json_type, "null"]}
    if field.type == "datetime":
        schema.update(_INSTANT)
    return schema


def _record_schema(entity: EntitySpec) -> Schema:
    properties = {field.name: _field_schema(field) for field in entity.fields}
    if entity.udfs:
        properties["userDefinedFields"] = _USER_DEFINED_FIELDS
    return {
        "type": "object",
        "description": f"A {entity.rest_name} record as the Autotask REST API returns it, every "
        "timestamp in UTC with Z. Every field listed is in every record, null where the type "
        "allows it. Autotask adds fields to its entities over time, so a record may carry "
        "fields not listed here, of any type.",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": True,
    }


def _source_schema(sources: Sequence[Mapping[str, Any]]) -> Schema:
    """``source``, its properties those the code produces (every example's), typed here."""
    sample = sources[0]
    described: dict[str, Schema] = {
        "connection": {
            "type": "string",
            "pattern": CONNECTION_NAME_PATTERN,
            "description": "the connection (Autotask tenant) the row belongs to",
        },
        "entity": {"const": sample.get("entity"), "description": "the entity (topic suffix)"},
        "autotask_entity": {
            "const": sample.get("autotask_entity"),
            "description": "the entity's Autotask REST name, for calls about the row",
        },
        "version": {
            "type": ["string", "null"],
            **_INSTANT,
            "description": "the row's last-modified value (null: the entity has none)",
        },
        "origin": {"enum": list(get_args(Origin)), "description": "what read the row"},
        "callout_sequence": {
            "type": ["integer", "null"],
            "minimum": 0,
            "description": "the SequenceNumber of the callout that caused the change, if any",
        },
        "reason": {
            "enum": list(get_args(Reason)),
            "description": "why an op d removed the row (on op d only)",
        },
    }
    produced = {name for source in sources for name in source}
    _require_described("source", produced, described)
    always = set.intersection(*(set(source) for source in sources))
    return {
        "type": "object",
        "required": [name for name in described if name in always],
        "properties": {name: schema for name, schema in described.items() if name in produced},
        "additionalProperties": False,
    }


def _op_rules(source: Schema) -> list[Schema]:
    """What ``before``, ``after`` and ``source.reason`` hold for each ``op``."""
    if set(_OPS) != set(get_args(Op)):
        raise SchemaGap(f"describe the ops {sorted(set(get_args(Op)) ^ set(_OPS))} in _OPS")
    record = {"$ref": "#/$defs/record"}
    reason = "reason" in source["properties"]
    removal: Schema = {"after": {"type": "null"}}
    kept: Schema = {"after": record}
    if reason:
        removal["source"] = {"required": ["reason"]}
        kept["source"] = {"not": {"required": ["reason"]}}
    return [
        {"if": _op_is(_WITH_BEFORE), "then": {"properties": {"before": record}}},
        {"if": _op_is([_WITHOUT_BEFORE]), "then": {"properties": {"before": {"type": "null"}}}},
        {"if": _op_is([_REMOVAL]), "then": {"properties": removal}},
        {"if": _op_is(_WITH_AFTER), "then": {"properties": kept}},
    ]


def _op_is(ops: list[str]) -> Schema:
    return {"properties": {"op": {"enum": ops}}, "required": ["op"]}


def _change_schema(topics: Topics, entity: EntitySpec, examples: list[Message]) -> Schema:
    topic = topics.changes(entity)
    values = [message["value"] for message in examples if message["value"] is not None]
    _require_described(
        "the envelope", {name for value in values for name in value}, _ENVELOPE_FIELDS
    )
    source = _source_schema([value["source"] for value in values])
    nullable_record = {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/record"}]}
    return {
        "$schema": DRAFT,
        "$id": value_schema_file(topic),
        "title": topic,
        "description": f"One change of one {entity.rest_name} record (Debezium-style "
        "envelope). A null value (tombstone) follows every removal. At least once: "
        "deduplicate on ce_id. Timestamps are RFC 3339 UTC with milliseconds and Z.",
        "type": "object",
        "required": list(_ENVELOPE_FIELDS),
        "properties": {
            "before": {**nullable_record, "description": _ENVELOPE_FIELDS["before"]},
            "after": {**nullable_record, "description": _ENVELOPE_FIELDS["after"]},
            "op": {
                "enum": list(get_args(Op)),
                "description": "; ".join(f"{op}: {meaning}" for op, meaning in _OPS.items()),
            },
            "source": source,
            "ts_ms": {
                "type": "integer",
                "minimum": 0,
                "description": _ENVELOPE_FIELDS["ts_ms"],
            },
        },
        "additionalProperties": False,
        "allOf": _op_rules(source),
        "$defs": {"record": _record_schema(entity)},
        "x-kafka": {
            "key": {
                "schema": key_schema_file(topic),
                "encoding": "compact JSON with sorted keys: one row always has the same key "
                "bytes, so compaction keeps its latest state and its changes share a partition",
            },
            "headers": _change_headers(entity, examples),
            "tombstone": "after every op d, and alone for each row of a purged connection: the "
            "same key, a null value, the headers of the rows marked tombstone",
            "cleanup.policy": _topic_config(topics, topic)["cleanup.policy"],
        },
    }


_ENVELOPE_FIELDS = {
    "before": "the row before the change (u, d; r when a backfill changed it; c: null)",
    "after": "the row after the change (c, u, r; d: null)",
    "op": "the kind of change",
    "source": "where the change comes from",
    "ts_ms": "when the change was committed to the mirror, milliseconds since the epoch",
}


def _change_headers(entity: EntitySpec, examples: list[Message]) -> list[Schema]:
    """The header table, each row saying on which kinds of message the header is (the kind is
    the last part of ``ce_type``) and, for ``ce_type``, every value the code can send."""
    kinds = [message["headers"]["ce_type"].rsplit(".", 1)[-1] for message in examples]
    rows = _header_rows(_CHANGE_HEADERS, examples)
    for row in rows:
        row["on"] = [
            kind
            for kind, message in zip(kinds, examples, strict=True)
            if row["name"] in message["headers"]
        ]
        if row["name"] == "ce_type":
            row["values"] = [event_type(entity, kind) for kind in get_args(Kind)]
    return rows


def _change_key_schema(topic: str) -> Schema:
    return _key_schema(
        topic,
        'Which row: compact JSON with sorted keys, {"connection":"acme","id":42}.',
        type="object",
        required=["connection", "id"],
        properties={
            "connection": {"type": "string", "pattern": CONNECTION_NAME_PATTERN},
            "id": {"type": "integer", "minimum": 0},
        },
        additionalProperties=False,
    )


def _change_examples(entity: EntitySpec) -> list[Message]:
    """One message of every kind the services publish: c, u, r, d (deleted, out of scope) and
    the tombstone after a removal, encoded by the real code."""
    after = _example_record(entity)
    before = {**after, **_an_earlier_edit(entity)}
    version = (
        parse_instant(after[entity.last_modified_field]) if entity.last_modified_field else None
    )

    change = partial(
        ChangeEvent,
        connection=EXAMPLE_CONNECTION,
        entity=entity,
        id=after["id"],
        version=version,
        at=EXAMPLE_TIME,
        change_seq=3,
    )
    events = [
        change(op="c", origin="webhook", before=None, after=after, callout_sequence=41),
        change(op="u", origin="webhook", before=before, after=after, callout_sequence=41),
        change(op="r", origin="backfill", before=None, after=after),
        change(op="d", origin="sweep", before=after, after=None, reason="deleted"),
        change(op="d", origin="sweep", before=after, after=None, reason="out_of_scope"),
    ]
    messages = [_message(*encode_change(e)) for e in events]
    messages.append(_message(*tombstone(events[3])))
    return messages


def _example_record(entity: EntitySpec) -> dict[str, Any]:
    values: dict[FieldType, Any] = {
        "long": 7012,
        "integer": 5,
        "double": 1.5,
        "string": "example",
        "boolean": True,
        "datetime": "2026-12-01T11:59:59.870Z",
    }
    record = {field.name: values[field.type] for field in entity.fields}
    if entity.udfs:
        record["userDefinedFields"] = [{"name": "Customer Impact", "value": "High"}]
    return record


def _an_earlier_edit(entity: EntitySpec) -> dict[str, Any]:
    text = next(field.name for field in entity.fields if field.type == "string")
    return {text: "before the edit"}


# --- callouts, control, dead letters ---------------------------------------------------------
_CALLOUT_HEADERS = {
    HEADER_CONNECTION: "connection name",
    HEADER_REGISTRATION: "webhook registration id",
    HEADER_ENTITY: "REST entity name",
    HEADER_RECEIVED_AT: "when the gateway received it (RFC 3339, UTC, Z)",
    HEADER_REQUEST_ID: "the gateway's request id",
}
_DEAD_LETTER_HEADERS = {
    **_CALLOUT_HEADERS,
    HEADER_ERROR_CLASS: "exception class",
    HEADER_ERROR_MESSAGE: "why (at most 1,000 characters, never a secret)",
    HEADER_ATTEMPTS: "how many attempts failed",
    HEADER_FIRST_FAILED_AT: "RFC 3339, UTC, Z",
    HEADER_ORIGINAL_TOPIC: "where it came from (replay puts it back there)",
}


def _callout_schema(topics: Topics, examples: list[Message]) -> Schema:
    return {
        "$schema": DRAFT,
        "$id": value_schema_file(topics.callouts),
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
            "key": {"schema": key_schema_file(topics.callouts), "encoding": "text"},
            "headers": _header_rows(_CALLOUT_HEADERS, examples),
        },
    }


def _callout_key_schema(topic: str, description: str) -> Schema:
    connection = CONNECTION_NAME_PATTERN.removeprefix("^").removesuffix("$")
    entity_types = "|".join(spec.callout_type for spec in webhook_entities())
    return _key_schema(
        topic, description, type="string", pattern=f"^{connection}:({entity_types}):[0-9]+$"
    )


def _control_schema(topics: Topics) -> Schema:
    schema: Schema = TypeAdapter(ControlEvent).json_schema()
    return {
        "$schema": DRAFT,
        "$id": value_schema_file(topics.control),
        "title": topics.control,
        "description": "Requests between components: webhook_deactivated (gateway -> "
        "provisioner), reprovision_requested, sweep_requested (provisioner -> reconciler), "
        "backfill_finished. Unknown types must be ignored.",
        **schema,
        "x-kafka": {"key": {"schema": key_schema_file(topics.control), "encoding": "text"}},
    }


def _control_key_schema(topic: str) -> Schema:
    return _key_schema(
        topic,
        "The connection the event is about (text).",
        type="string",
        pattern=CONNECTION_NAME_PATTERN,
    )


def _dlq_schema(topics: Topics, examples: list[Message]) -> Schema:
    return {
        "$schema": DRAFT,
        "$id": value_schema_file(topics.callouts_dlq),
        "title": topics.callouts_dlq,
        "description": "A callout that could not be processed, with its original key, value and "
        "headers. The value is the original bytes and need not be JSON.",
        "x-kafka": {
            "key": {"schema": key_schema_file(topics.callouts_dlq), "encoding": "text"},
            "headers": _header_rows(_DEAD_LETTER_HEADERS, examples),
        },
    }


def _callout_examples() -> list[Message]:
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
    headers = callout_headers(
        connection=EXAMPLE_CONNECTION,
        registration_id="kq3V8t0d2m9xX4YpJc7GfB1sLw6nRh5A",
        entity=TICKETS,
        received_at=EXAMPLE_TIME,
        request_id="3f1c9a2b7d6e4f50",
    )
    return [_message(callout_key(EXAMPLE_CONNECTION, TICKETS, 7012), body, headers)]


def _dlq_examples(topics: Topics, callout: Message) -> list[Message]:
    headers = dead_letter_headers(
        [(name, value.encode()) for name, value in callout["headers"].items()],
        error_class="PermissionDeniedError",
        message="Tickets: the API user's security level lacks query (view) permission",
        attempts=3,
        first_failed_at=EXAMPLE_TIME,
        original_topic=topics.callouts,
    )
    return [_message(callout["key"].encode(), callout["value"], headers)]


def _control_examples() -> list[Message]:
    control = SweepRequested(
        event_id="5d0b6c1e9a7f4e2d8c3b1a0f9e8d7c6b",
        connection=EXAMPLE_CONNECTION,
        at=EXAMPLE_TIME,
        entity="Tickets",
        since=datetime(2026, 12, 1, 11, 40, tzinfo=UTC),
        reason="webhook reactivated",
    )
    key, value = encode_control(control)
    return [_message(key, value, [])]


# --- shared by every topic -------------------------------------------------------------------
def _message(key: bytes, value: Any, headers: Iterable[tuple[str, bytes]]) -> Message:
    """An example message; a JSON value given as bytes is decoded, None is a tombstone."""
    if isinstance(value, bytes):
        value = json.loads(value)
    return {
        "key": key.decode(),
        "headers": {name: raw.decode() for name, raw in headers},
        "value": value,
    }


def _header_rows(meanings: Mapping[str, str], examples: list[Message]) -> list[Schema]:
    """The header table: each header the examples carry, what it means and an example."""
    names = list(dict.fromkeys(name for message in examples for name in message["headers"]))
    _require_described("headers", set(names), meanings)
    return [
        {
            "name": name,
            "meaning": meanings[name],
            "example": next(m["headers"][name] for m in examples if name in m["headers"]),
        }
        for name in names
    ]


def _require_described(what: str, produced: set[str], described: Mapping[str, Any]) -> None:
    missing = sorted(produced - described.keys())
    if missing:
        raise SchemaGap(f"{what}: the code produces {missing}: describe them in tools/schemas.py")


def _key_schema(topic: str, description: str, **shape: Any) -> Schema:
    """The schema of ``topic``'s keys, of the given ``shape`` (``type``, ``pattern``, ...)."""
    return {
        "$schema": DRAFT,
        "$id": key_schema_file(topic),
        "title": f"{topic} key",
        "description": description,
        **shape,
    }


def _topic_config(topics: Topics, topic: str) -> Mapping[str, str]:
    return next(spec.config for spec in topics.declarations() if spec.name == topic)


def generate(topics: Topics | None = None) -> dict[str, str]:
    """Relative path -> file content, for every contract file."""
    topics = topics or Topics()
    callouts = _callout_examples()
    examples = {
        topics.callouts: callouts,
        topics.control: _control_examples(),
        topics.callouts_dlq: _dlq_examples(topics, callouts[0]),
        **{topics.changes(entity): _change_examples(entity) for entity in REGISTRY},
    }
    callout_key_text = "{connection}:{EntityType}:{Id} (text), EntityType canonical"
    schemas = {
        value_schema_file(topics.callouts): _callout_schema(topics, callouts),
        key_schema_file(topics.callouts): _callout_key_schema(topics.callouts, callout_key_text),
        value_schema_file(topics.control): _control_schema(topics),
        key_schema_file(topics.control): _control_key_schema(topics.control),
        value_schema_file(topics.callouts_dlq): _dlq_schema(topics, examples[topics.callouts_dlq]),
        key_schema_file(topics.callouts_dlq): _callout_key_schema(
            topics.callouts_dlq, f"The original callout's key: {callout_key_text}"
        ),
    }
    for entity in REGISTRY:
        topic = topics.changes(entity)
        schemas[value_schema_file(topic)] = _change_schema(topics, entity, examples[topic])
        schemas[key_schema_file(topic)] = _change_key_schema(topic)
    files = {path: _dump(schema) for path, schema in schemas.items()}
    files.update(
        {f"examples/{topic}.json": _dump(messages) for topic, messages in examples.items()}
    )
    return files


def incompatible_edits(files: Mapping[str, str], directory: Path = SCHEMAS_DIR) -> list[str]:
    """How ``files`` (a generation) would break consumers of the schemas in ``directory``: one
    line per problem, each naming its file. A topic new in ``files`` breaks nothing."""
    problems = []
    for path, text in sorted(files.items()):
        published = directory / path
        if path.endswith(".schema.json") and published.exists():
            old, new = json.loads(published.read_text()), json.loads(text)
            problems += [f"{path}: {problem}" for problem in breaking_changes(old, new)]
    return problems


def _dump(content: Any) -> str:
    return json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="fail if the files are out of date")
    parser.add_argument(
        "--allow-breaking",
        action="store_true",
        help=f"write edits that break the published contract (only for topics no consumer "
        f"reads yet; otherwise publish a new topic version: {ADR})",
    )


def run(args: argparse.Namespace) -> int:
    files = generate()
    stale = [path for path, text in files.items() if _read(SCHEMAS_DIR / path) != text]
    if args.check:
        if stale:
            print("out of date (run `python -m tools schemas`): " + ", ".join(sorted(stale)))
            return 1
        print(f"{len(files)} contract files up to date")
        return 0
    problems = [] if args.allow_breaking else incompatible_edits(files)
    if problems:
        print("\n".join(["these edits break consumers of the published contract:", *problems]))
        print(f"publish them as a new topic version instead ({ADR})")
        return 1
    for path in stale:
        target = SCHEMAS_DIR / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(files[path])
    print(f"wrote {len(stale)} of {len(files)} contract files in {SCHEMAS_DIR}")
    return 0


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None
