"""Type aliases for JSON values as the simulator stores and serves them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

JsonScalar: TypeAlias = str | int | float | bool | None
JsonValue: TypeAlias = JsonScalar | Sequence["JsonValue"] | Mapping[str, "JsonValue"]

# Records and JSON objects are dynamically typed data (values depend on the field's schema, which
# mypy cannot see), so they are plain ``Any``-valued dicts; ``JsonValue`` types the serialiser.
Record: TypeAlias = dict[str, Any]
"""One stored entity as the API returns it (camelCase keys)."""

JsonObject: TypeAlias = dict[str, Any]

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON as the REST API answers (tuples on records become arrays)."""
    return _ENCODER.encode(value).encode("utf-8")


__all__ = ["JsonObject", "JsonScalar", "JsonValue", "Record", "encode_json"]
