"""Check Kafka messages against the topic contracts in ``schemas/``: the key against the key
schema, the value (unless a tombstone) against the value schema, the headers against the
contract's header table."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from tools.schemas import SCHEMAS_DIR, key_schema_file, value_schema_file


@lru_cache(maxsize=64)
def contract(file: str) -> Draft202012Validator:
    """The validator of ``schemas/<file>`` (the schema itself checked first)."""
    schema = json.loads((SCHEMAS_DIR / file).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def contract_of(topic: str) -> str:
    """The default topic name whose contract applies (``w123.tickets.v1`` -> ``autotask...``)."""
    return "autotask." + topic.split(".", 1)[1]


def validate_message(topic: str, key: bytes | str, value: Any, headers: Mapping[str, str]) -> None:
    """Raise ValidationError unless the message keeps the contract of ``topic``. ``value`` is
    the decoded JSON value, or None for a tombstone."""
    name = contract_of(topic)
    key_contract = contract(key_schema_file(name))
    text = key.decode() if isinstance(key, bytes) else key
    key_contract.validate(_json(text) if key_contract.schema["type"] == "object" else text)
    values = contract(value_schema_file(name))
    if value is not None:
        values.validate(value)
    _validate_headers(values.schema.get("x-kafka", {}).get("headers"), headers)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ValidationError(f"the key {text!r} is not JSON") from None


def _validate_headers(table: list[dict[str, Any]] | None, headers: Mapping[str, str]) -> None:
    if table is None:
        return
    rows = {row["name"]: row for row in table}
    for name, text in headers.items():
        if name not in rows:
            raise ValidationError(f"header {name!r} is not in the contract's header table")
        allowed = rows[name].get("values")
        if allowed is not None and text not in allowed:
            raise ValidationError(f"header {name}={text!r} is none of {allowed}")


def assert_valid(topic: str, messages: Iterable[Any]) -> int:
    """Validate every message read from ``topic`` (key, value, headers); returns how many
    carried a value (tombstones are checked too, not counted)."""
    checked = 0
    for message in messages:
        value = json.loads(message.value) if message.value is not None else None
        headers = {name: raw.decode() for name, raw in message.headers or ()}
        validate_message(topic, message.key, value, headers)
        checked += value is not None
    return checked
