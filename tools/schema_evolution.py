"""Which edits of a topic contract its consumers survive (docs/adr/0011-change-topic-contract.md).

A consumer is written against the published schema and must read every message the producers
send after the edit, so an edit is compatible when every message valid under the new schema was
valid under the old one: the new schema may only narrow. Adding a typed field to ``after`` (which
always allowed more fields), a constraint, a header or a ``ce_type`` value is compatible;
removing, renaming or retyping a field, a new ``op`` or ``origin``, a property where none was
allowed, a dropped header or a changed key is not, and needs a new topic version (``v2``).

:func:`breaking_changes` compares the two schemas structurally, in the shapes ``tools/schemas.py``
generates. It is conservative: an edit of a keyword it cannot judge counts as breaking.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

Schema = Mapping[str, Any]

_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "$comment", "examples"})
_LOWER_BOUNDS = frozenset({"minimum", "exclusiveMinimum", "minLength", "minItems"})
_UPPER_BOUNDS = frozenset({"maximum", "exclusiveMaximum", "maxLength", "maxItems"})


def compatible(old: Schema, new: Schema) -> bool:
    """Whether every consumer of ``old`` can read what producers of ``new`` send."""
    return not breaking_changes(old, new)


def breaking_changes(old: Schema, new: Schema, path: str = "") -> list[str]:
    """Why consumers of ``old`` may fail on messages valid under ``new`` (empty: compatible),
    one line per problem, each naming where (``properties.after....``)."""
    problems: list[str] = []
    for keyword in sorted(old.keys() | new.keys()):
        if keyword in _ANNOTATIONS:
            continue
        where = f"{path}.{keyword}" if path else keyword
        if keyword not in old:
            continue  # a new constraint narrows (one the checks below judge when both have it)
        if keyword not in new:
            problems.append(f"{where}: removed (it constrained what consumers receive)")
            continue
        problems += _keyword(keyword, old[keyword], new[keyword], where)
    if old.get("additionalProperties") is False:
        added = sorted(new.get("properties", {}).keys() - old.get("properties", {}).keys())
        if added:
            where = f"{path}.properties" if path else "properties"
            problems.append(f"{where}: {added} added where no other property was allowed")
    return problems


def _keyword(keyword: str, old: Any, new: Any, where: str) -> list[str]:
    handler = _HANDLERS.get(keyword)
    if handler is not None:
        return handler(old, new, where)
    if keyword in _LOWER_BOUNDS:
        return [] if new >= old else [f"{where}: lowered from {old} to {new}"]
    if keyword in _UPPER_BOUNDS:
        return [] if new <= old else [f"{where}: raised from {old} to {new}"]
    # Anything else (pattern, format, $ref, if, not...) must stay as it was.
    return [] if old == new else [f"{where}: changed from {old!r} to {new!r}"]


def _types(old: Any, new: Any, where: str) -> list[str]:
    added = _as_set(new) - _as_set(old)
    return [f"{where}: now also {sorted(added)} (was {old!r})"] if added else []


def _enum(old: Any, new: Any, where: str) -> list[str]:
    added = [value for value in new if value not in old]
    return [f"{where}: new values {added}"] if added else []


def _const(old: Any, new: Any, where: str) -> list[str]:
    return [] if old == new else [f"{where}: {old!r} became {new!r}"]


def _required(old: Any, new: Any, where: str) -> list[str]:
    dropped = sorted(set(old) - set(new))
    return [f"{where}: no longer required: {dropped}"] if dropped else []


def _properties(old: Any, new: Any, where: str) -> list[str]:
    problems = [f"{where}.{name}: removed or renamed" for name in sorted(old.keys() - new.keys())]
    for name in sorted(old.keys() & new.keys()):
        problems += breaking_changes(old[name], new[name], f"{where}.{name}")
    return problems


def _additional(old: Any, new: Any, where: str) -> list[str]:
    if old is False and new is not False:
        return [f"{where}: properties no consumer expected are now allowed"]
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return breaking_changes(old, new, where)
    return []


def _alternatives(old: Any, new: Any, where: str) -> list[str]:
    """``anyOf`` / ``oneOf``: each new alternative narrows the old one at its place."""
    if len(new) > len(old):
        return [f"{where}: {len(new) - len(old)} more alternatives"]
    return _pairwise(old[: len(new)], new, where)


def _all_of(old: Any, new: Any, where: str) -> list[str]:
    """``allOf``: every old rule still holds (narrowed or equal); added rules narrow."""
    if len(new) < len(old):
        return [f"{where}: {len(old) - len(new)} rules dropped"]
    return _pairwise(old, new[: len(old)], where)


def _pairwise(old: Sequence[Schema], new: Sequence[Schema], where: str) -> list[str]:
    problems: list[str] = []
    for index, (before, after) in enumerate(zip(old, new, strict=True)):
        problems += breaking_changes(before, after, f"{where}[{index}]")
    return problems


def _kafka(old: Any, new: Any, where: str) -> list[str]:
    """Headers and compaction (keys have schemas of their own): a header dropped or a
    ``ce_type`` value gone breaks the consumers that read it; a new header or value does not
    (consumers ignore what they do not know)."""
    problems: list[str] = []
    old_headers, new_headers = _headers(old), _headers(new)
    for name in sorted(old_headers.keys() - new_headers.keys()):
        problems.append(f"{where}.headers: {name} dropped")
    for name in sorted(old_headers.keys() & new_headers.keys()):
        gone = [
            v for v in old_headers[name].get("values", ()) if v not in _values(new_headers, name)
        ]
        if gone:
            problems.append(f"{where}.headers.{name}: values no longer sent: {gone}")
    if old.get("cleanup.policy") != new.get("cleanup.policy"):
        problems.append(f"{where}.cleanup.policy: changed from {old.get('cleanup.policy')!r}")
    return problems


def _headers(kafka: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {row["name"]: row for row in kafka.get("headers", ())}


def _values(headers: Mapping[str, Mapping[str, Any]], name: str) -> Sequence[Any]:
    return list(headers[name].get("values", ()))


def _as_set(types: Any) -> set[str]:
    return {types} if isinstance(types, str) else set(types)


_HANDLERS: dict[str, Callable[[Any, Any, str], list[str]]] = {
    "type": _types,
    "enum": _enum,
    "const": _const,
    "required": _required,
    "properties": _properties,
    "additionalProperties": _additional,
    "items": breaking_changes,
    "then": breaking_changes,
    "else": breaking_changes,
    "anyOf": _alternatives,
    "oneOf": _alternatives,
    "allOf": _all_of,
    "$defs": _properties,  # named schemas, compared like properties
    "x-kafka": _kafka,
}

__all__ = ["Schema", "breaking_changes", "compatible"]
