"""Change events as Kafka Connect's JSON with schema (``AUTOTASK_SYNC_CHANGE_VALUE_FORMAT``).

Kafka Connect's sinks need typed records. Its ``JsonConverter`` with ``schemas.enable=true``
reads every message as ``{"schema": ..., "payload": ...}``; this module gives both for a change
event (:func:`with_schema`) and for its key (:func:`key_with_schema`), typed from the entity
registry:

- the value is a struct named ``autotask.<table>.Envelope`` (Debezium's sinks recognise an
  envelope by that suffix and read ``before``, ``after`` and ``op`` from it) of ``before`` and
  ``after`` (optional structs ``autotask.<table>.Value``), ``op``, ``source`` (struct
  ``autotask.Source``) and ``ts_ms`` (int64);
- a record's fields come from :attr:`EntitySpec.fields`: ``long`` is int64, ``integer`` int32
  (Autotask's own widths), ``double`` double, ``string`` string, ``boolean`` boolean, and
  ``datetime`` an RFC 3339 string named ``io.debezium.time.ZonedTimestamp``: readable and
  exact in any sink, and a ``timestamptz`` column in Debezium's JDBC sink (Connect's
  ``Timestamp`` type would cut to milliseconds and land as a zone-less ``timestamp``);
  ``userDefinedFields`` is an array of struct ``{name, value}``, the value as text;
- every field but ``id`` is optional: Autotask enforces ``isRequired`` on writes only, and a
  null in a required field stops the sink's task;
- the key is a struct ``autotask.Key`` ``{connection, id}``, what a sink's primary key is read
  from; tombstones stay null values (JsonConverter reads null as a tombstone).

The payload is made to match the schema here, because JsonConverter checks nothing: it reads a
struct's declared fields and ignores the others, and reads a value of the wrong kind as
something else (an int32 past its range wraps around, anything but ``true`` in a boolean reads
false, a number in a string field reads null). So fields the registry does not declare are left
out (a consumer gets a new field once the registry lists it); numbers in numeric strings and
booleans written as 0 and 1 are converted; a timestamp without an offset gets ``Z`` (Autotask's
values are UTC; :mod:`shared.records` normalises them before the mirror anyway). A value that
still does not fit its field is sent as null and logged with the entity, id and field (never the
value): one odd value must not stop a sync (the rule of :mod:`shared.records`), and null is what
a sink can hold in its place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from shared.entities import EntitySpec, Field, FieldType
from shared.errors import MessageError
from shared.integers import parse_int
from shared.logging import get_logger

log = get_logger(__name__)

NAMESPACE = "autotask"
"""First segment of every schema name (a record type, not a topic: topic prefixes vary)."""

ZONED_TIMESTAMP = "io.debezium.time.ZonedTimestamp"
"""Debezium's name for an ISO 8601 timestamp with an offset, carried as a string."""

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

_CONNECT_TYPES: Mapping[FieldType, str] = {
    "long": "int64",
    "integer": "int32",
    "double": "double",
    "string": "string",
    "boolean": "boolean",
    "datetime": "string",
}
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?"
    r"(?P<offset>Z|[+-][0-9]{2}:[0-9]{2})?"
)
"""What Java's ISO_OFFSET_DATE_TIME (Debezium's parser) reads, the offset made optional."""

UDFS = "userDefinedFields"


def _field(
    name: str, connect_type: str, /, *, optional: bool = True, **extra: Any
) -> dict[str, Any]:
    """A struct field's schema; ``extra`` may name the field's own type (``name=...``)."""
    return {"field": name, "type": connect_type, "optional": optional, **extra}


_TIMESTAMP: Mapping[str, Any] = {"name": ZONED_TIMESTAMP, "version": 1}

KEY_SCHEMA: Mapping[str, Any] = {
    "type": "struct",
    "name": f"{NAMESPACE}.Key",
    "optional": False,
    "fields": [
        _field("connection", "string", optional=False),
        _field("id", "int64", optional=False),
    ],
}
"""The key of every change topic: the connection and the entity's id."""

_SOURCE_FIELDS = [
    _field("connection", "string", optional=False),
    _field("entity", "string", optional=False),
    _field("autotask_entity", "string", optional=False),
    _field("version", "string", **_TIMESTAMP),
    _field("origin", "string", optional=False),
    _field("callout_sequence", "int64"),
    _field("reason", "string"),
]

_UDF_ITEMS = {
    "type": "struct",
    "name": f"{NAMESPACE}.UserDefinedField",
    "optional": False,
    "fields": [_field("name", "string", optional=False), _field("value", "string")],
}


def key_with_schema(connection: str, entity_id: int) -> dict[str, Any]:
    """A change event's key (and its tombstone's) in Connect's JSON with schema."""
    return {"schema": KEY_SCHEMA, "payload": {"connection": connection, "id": entity_id}}


def with_schema(entity: EntitySpec, value: Mapping[str, Any]) -> dict[str, Any]:
    """``value``, a change event's envelope (:func:`shared.messages.change.envelope`), in
    Connect's JSON with schema. The schema is shared between calls: do not change it."""
    source = value["source"]
    return {
        "schema": envelope_schema(entity),
        "payload": {
            "before": _record(entity, value["before"]),
            "after": _record(entity, value["after"]),
            "op": value["op"],
            "source": {spec["field"]: source.get(spec["field"]) for spec in _SOURCE_FIELDS},
            "ts_ms": value["ts_ms"],
        },
    }


@cache
def envelope_schema(entity: EntitySpec) -> dict[str, Any]:
    """The Connect schema of ``entity``'s change events (built once per entity)."""
    record = _record_fields(entity)
    value_name = f"{NAMESPACE}.{entity.table}.Value"
    return {
        "type": "struct",
        "name": f"{NAMESPACE}.{entity.table}.Envelope",
        "optional": False,
        "fields": [
            {**_field("before", "struct"), "name": value_name, "fields": record},
            {**_field("after", "struct"), "name": value_name, "fields": record},
            _field("op", "string", optional=False),
            {
                **_field("source", "struct", optional=False),
                "name": f"{NAMESPACE}.Source",
                "fields": _SOURCE_FIELDS,
            },
            _field("ts_ms", "int64", optional=False),
        ],
    }


def _record_fields(entity: EntitySpec) -> list[dict[str, Any]]:
    """The Connect schemas of a record's fields: the registry's, then the UDFs."""
    fields = [_schema_of(field) for field in entity.fields]
    if entity.udfs:
        fields.append(_field(UDFS, "array", items=_UDF_ITEMS))
    return fields


def _schema_of(field: Field) -> dict[str, Any]:
    extra = _TIMESTAMP if field.type == "datetime" else {}
    return _field(field.name, _CONNECT_TYPES[field.type], optional=field.name != "id", **extra)


# --- the payload --------------------------------------------------------------------------
def _record(entity: EntitySpec, row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    record = {field.name: _typed(entity, row, field) for field in entity.fields}
    if entity.udfs:
        record[UDFS] = _udfs(entity, row)
    return record


def _typed(entity: EntitySpec, row: Mapping[str, Any], field: Field) -> Any:
    """The row's value of ``field`` as its Connect type reads it; null (logged) if it cannot."""
    value = row.get(field.name)
    typed = None if value is None else _READERS[field.type](value)
    if typed is None and field.name == "id":
        raise MessageError(f"{entity.rest_name} record without an id: no change event to send")
    if typed is None and value is not None:
        _misfit(entity, row, field.name, f"a {type(value).__name__}, not {field.type}")
    return typed


def _int32(value: Any) -> int | None:
    number = parse_int(value, minimum=INT32_MIN)
    return number if number is not None and number <= INT32_MAX else None


def _double(value: Any) -> float | int | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _boolean(value: Any) -> bool | None:
    """A JSON boolean, or 0 and 1 (some Autotask booleans are written as numbers)."""
    if isinstance(value, bool):
        return value
    return bool(value) if isinstance(value, int) and value in (0, 1) else None


def _timestamp(value: Any) -> str | None:
    """RFC 3339: ``value`` as it is, or with ``Z`` when it has no offset (Autotask's values
    are UTC, written with and without one)."""
    if not isinstance(value, str) or (match := _RFC3339.fullmatch(value)) is None:
        return None
    return value if match["offset"] else f"{value}Z"


_READERS: Mapping[FieldType, Callable[[Any], Any]] = {
    "long": parse_int,
    "integer": _int32,
    "double": _double,
    "string": _string,
    "boolean": _boolean,
    "datetime": _timestamp,
}
"""Each type's reader: the value as Connect reads it, None when it cannot carry it (numbers in
numeric strings are read as Autotask means them, :func:`shared.integers.parse_int`)."""


def _udfs(entity: EntitySpec, row: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    udfs = row.get(UDFS)
    if udfs is None:
        return None
    if not isinstance(udfs, list) or not all(
        isinstance(udf, Mapping) and isinstance(udf.get("name"), str) for udf in udfs
    ):
        _misfit(entity, row, UDFS, "not a list of objects with a name")
        return None
    return [{"name": udf["name"], "value": _text(udf.get("value"))} for udf in udfs]


def _text(value: Any) -> str | None:
    """A UDF's value as text: strings as they are, numbers and booleans as JSON writes them."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _misfit(entity: EntitySpec, row: Mapping[str, Any], field: str, held: str) -> None:
    # The value itself stays out of the log: records hold personal data.
    log.warning(
        "field sent as null: its value does not fit its Connect type",
        entity=entity.rest_name,
        id=row.get("id"),
        field=field,
        held=held,
        fix="correct the field's type in shared/entities.py if Autotask changed it",
    )


__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "KEY_SCHEMA",
    "NAMESPACE",
    "ZONED_TIMESTAMP",
    "envelope_schema",
    "key_with_schema",
    "with_schema",
]
