"""The REST query grammar (§4): parse, validate and compile a query body into a predicate.

A body looks like ``{"filter": [...], "MaxRecords": 500, "IncludeFields": [...]}``. Conditions
listed side by side at the top level are ANDed; ``{"op": "and"|"or", "items": [...]}`` groups
nest. Validation follows the pessimistic readings of the fact sheet: one UDF condition per
query, at most 500 leaf conditions (``in`` members counted, configurable), and an empty
``filter`` is rejected (configurable).

Values are read the way production clients send them (each behind an ``ApiBehaviour`` setting):

- a condition without ``value`` (clients drop ``0``, ``false`` and empty values), or with
  ``"value": null``, compares with null (``filter_missing_value="null"``), or is a 500
  (``"reject"``);
- a value of another JSON type is converted as SQL Server would (``filter_value_coercion=
  "convert"``): ``"true"``/``"false"``/``"1"``/``"0"`` and 0/1 for booleans, JSON booleans and
  ``"true"``/``"false"`` as 1/0 for numbers, booleans as text for strings; or only JSON
  ``true``/``false`` for booleans and never a boolean elsewhere (``"strict"``). Text that does
  not convert is a 500 either way.

Evaluation follows SQL semantics (Autotask is SQL Server backed): a null field matches no
comparison (not even ``noteq``/``notIn``), only ``notExist``; a comparison with a null value
matches no row (``notIn`` a list holding null included); string comparisons ignore case.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tools.autotask_sim.apierror import ApiError, business_error
from tools.autotask_sim.clock import CANONICAL_LENGTH, canonical_from_text
from tools.autotask_sim.config import ApiBehaviour
from tools.autotask_sim.jsontypes import Record
from tools.autotask_sim.query.projection import include_fields
from tools.autotask_sim.store.schema import INTEGER_TYPES, NUMERIC_TYPES, EntitySchema

Predicate = Callable[[Record], bool]

LEAF_OPERATORS = (
    "eq",
    "noteq",
    "gt",
    "gte",
    "lt",
    "lte",
    "beginsWith",
    "endsWith",
    "contains",
    "exist",
    "notExist",
    "in",
    "notIn",
)
_OPS = {op.lower(): op for op in LEAF_OPERATORS}
_ORDERING = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
_STRING_OPS = {"beginsWith", "endsWith", "contains"}

MAX_RECORDS_ERROR = "maxCountOfRecordsToReturn must be between 1 and 500"
TOO_MANY_CONDITIONS = "Invalid query syntax. Queries are limited to 500 or fewer 'OR' conditions."


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """A validated query, ready to run against a table."""

    predicate: Predicate
    max_records: int
    include_fields: tuple[str, ...] | None
    include_udfs: frozenset[str] | None
    """UDF names to keep when ``IncludeFields`` is given (None: all UDFs)."""
    id_candidates: frozenset[int] | None
    """Ids the result must be drawn from (from top-level ``id`` eq/in), or None."""
    min_id: int | None
    """Exclusive lower id bound implied by top-level ``id`` gt/gte, or None."""


def _get(body: Mapping[str, Any], name: str) -> Any:
    """A top-level body key, case-insensitively (``MaxRecords`` / ``maxRecords`` ...)."""
    lowered = name.lower()
    for key, value in body.items():
        if key.lower() == lowered:
            return value
    return None


class _Compiler:
    """One compilation: walks the filter tree, counting conditions and UDF uses."""

    def __init__(self, schema: EntitySchema, config: ApiBehaviour) -> None:
        self.schema = schema
        self.config = config
        self.conditions = 0
        self.udfs = 0

    def condition(self, node: Any) -> Predicate:
        if not isinstance(node, Mapping):
            raise business_error("Invalid query: each filter item must be an object.")
        raw_op = node.get("op")
        if not isinstance(raw_op, str):
            raise business_error("Invalid query: a filter item has no 'op'.")
        lowered = raw_op.lower()
        if lowered in ("and", "or"):
            return self.group(lowered, node.get("items"))
        op = _OPS.get(lowered)
        if op is None:
            raise business_error(f"Invalid query: unknown operator '{raw_op}'.")
        return self.leaf(op, node)

    def group(self, op: str, items: Any) -> Predicate:
        if not isinstance(items, list) or not items:
            raise business_error(f"Invalid query: an '{op}' group needs a non-empty 'items' list.")
        preds = [self.condition(item) for item in items]
        if op == "and":
            return lambda r: all(p(r) for p in preds)
        return lambda r: any(p(r) for p in preds)

    def leaf(self, op: str, node: Mapping[str, Any]) -> Predicate:
        field_name = node.get("field")
        if not isinstance(field_name, str) or not field_name:
            raise business_error(f"Invalid query: the '{op}' condition has no 'field'.")
        is_udf = node.get("udf", False)
        if not isinstance(is_udf, bool):
            raise business_error("Invalid query: 'udf' must be true or false.")
        getter, data_type = self._field(field_name, is_udf)
        if op in ("exist", "notExist"):
            self.conditions += 1
            if op == "exist":
                return lambda r: getter(r) is not None
            return lambda r: getter(r) is None
        if op in _STRING_OPS and data_type != "string":
            raise business_error(f"Invalid query: '{op}' needs a string field, not {field_name}.")
        if op in _ORDERING and data_type == "boolean":
            raise business_error(f"Invalid query: '{op}' cannot compare boolean {field_name}.")
        raw = node.get("value")
        if raw is None:
            self._null_allowed(op, field_name)
            self.conditions += 1
            return _no_row
        if op in ("in", "notIn"):
            return self._list(op, field_name, data_type, getter, raw)
        self.conditions += 1
        target = self._coerce(field_name, data_type, raw)
        return _leaf_predicate(op, getter, _normaliser(data_type), target)

    def _list(
        self,
        op: str,
        field_name: str,
        data_type: str,
        getter: Callable[[Record], Any],
        raw: Any,
    ) -> Predicate:
        if not isinstance(raw, list) or not raw:
            raise business_error(f"Invalid query: '{op}' on {field_name} needs a value list.")
        self.conditions += len(raw) if self.config.count_in_members else 1
        has_null = any(v is None for v in raw)
        if has_null:
            self._null_allowed(op, field_name)
            if op == "notIn":
                return _no_row  # SQL: NOT IN (..., NULL) is never true
        members = frozenset(self._coerce(field_name, data_type, v) for v in raw if v is not None)
        norm = _normaliser(data_type)
        if op == "in":
            return lambda r: (v := getter(r)) is not None and norm(v) in members
        return lambda r: (v := getter(r)) is not None and norm(v) not in members

    def _null_allowed(self, op: str, field_name: str) -> None:
        """A missing or null value is read as null, unless configured to be refused."""
        if self.config.filter_missing_value == "reject":
            raise business_error(
                f"Invalid query: the '{op}' condition on {field_name} needs a value."
            )

    def _field(self, name: str, is_udf: bool) -> tuple[Callable[[Record], Any], str]:
        if is_udf:
            udf = self.schema.udf(name)
            if udf is None:
                raise business_error(
                    f"Invalid query: {name} is not a user-defined field of {self.schema.name}."
                )
            self.udfs += 1
            if self.udfs > self.config.max_udf_conditions:
                raise business_error("Invalid query: only one user-defined field per query.")
            data_type = "double" if udf.udf_type == "double" else "string"
            return _udf_getter(udf.name, data_type), data_type
        spec = self.schema.field(name)
        if spec is None:
            hint = ' (add "udf": true for user-defined fields)' if self.schema.udf(name) else ""
            entity = self.schema.name
            raise business_error(
                f"Invalid query: unable to find field {name} in the {entity} entity{hint}."
            )
        if not spec.queryable:
            raise business_error(f"Invalid query: field {spec.name} cannot be queried.")
        key = spec.name
        return (lambda r: r.get(key)), spec.data_type

    def _coerce(self, field_name: str, data_type: str, value: Any) -> Any:
        """The filter value in the form stored values are compared in."""
        bad = business_error(f"Invalid query: value {value!r} is not valid for {field_name}.")
        convert = self.config.filter_value_coercion == "convert"
        if data_type == "boolean":
            if isinstance(value, bool):
                return value
            converted = _as_boolean(value) if convert else None
            if converted is None:
                raise bad
            return converted
        if isinstance(value, bool):
            if not convert or data_type == "datetime":
                raise bad
            if data_type in NUMERIC_TYPES:
                return int(value) if data_type in INTEGER_TYPES else float(value)
            return str(value).lower()
        if isinstance(value, Mapping | list):
            raise bad
        if data_type in NUMERIC_TYPES:
            if convert and isinstance(value, str) and value.strip().lower() in _TEXT_BOOLEANS:
                value = int(_TEXT_BOOLEANS[value.strip().lower()])
            try:
                number = float(value) if not isinstance(value, int) else value
            except (TypeError, ValueError):
                raise bad from None
            if data_type in INTEGER_TYPES:
                if isinstance(number, float) and not number.is_integer():
                    raise bad
                return int(number)
            return number
        if data_type == "datetime":
            if not isinstance(value, str):
                raise bad
            try:
                return canonical_from_text(value)
            except ValueError:
                raise bad from None
        return str(value).lower()


_TEXT_BOOLEANS = {"true": True, "false": False}


def _as_boolean(value: Any) -> bool | None:
    """SQL Server's conversion to ``bit``: 'true'/'false'/'1'/'0' and integers; else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TEXT_BOOLEANS:
            return _TEXT_BOOLEANS[text]
        if text in ("1", "0"):
            return text == "1"
    return None


def _no_row(_record: Record) -> bool:
    return False


def _udf_getter(name: str, data_type: str) -> Callable[[Record], Any]:
    lowered = name.lower()

    def get(record: Record) -> Any:
        udfs = record.get("userDefinedFields")
        if not isinstance(udfs, Sequence):
            return None
        for item in udfs:
            if isinstance(item, Mapping) and str(item.get("name", "")).lower() == lowered:
                value = item.get("value")
                if value is None or value == "":
                    return None
                if data_type == "double":
                    try:
                        return float(str(value))
                    except ValueError:
                        return None
                return value
        return None

    return get


def _normaliser(data_type: str) -> Callable[[Any], Any]:
    if data_type == "string":
        return lambda v: str(v).lower()
    if data_type == "datetime":
        return lambda v: str(v)[:CANONICAL_LENGTH]
    return lambda v: v


def _leaf_predicate(
    op: str, getter: Callable[[Record], Any], norm: Callable[[Any], Any], target: Any
) -> Predicate:
    if op == "eq":
        return lambda r: (v := getter(r)) is not None and norm(v) == target
    if op == "noteq":
        return lambda r: (v := getter(r)) is not None and norm(v) != target
    if op in _ORDERING:
        cmp = _ORDERING[op]
        return lambda r: (v := getter(r)) is not None and cmp(norm(v), target)
    if op == "beginsWith":
        return lambda r: (v := getter(r)) is not None and norm(v).startswith(target)
    if op == "endsWith":
        return lambda r: (v := getter(r)) is not None and norm(v).endswith(target)
    return lambda r: (v := getter(r)) is not None and target in norm(v)


def _id_hints(filters: list[Any]) -> tuple[frozenset[int] | None, int | None]:
    """Candidate ids and a lower bound from top-level ``id`` conditions (an index, in effect)."""
    candidates: frozenset[int] | None = None
    min_id: int | None = None
    for node in filters:
        if not isinstance(node, Mapping) or str(node.get("field", "")).lower() != "id":
            continue
        if node.get("udf"):
            continue
        op = str(node.get("op", "")).lower()
        value = node.get("value")
        found: frozenset[int] | None = None
        if op == "eq" and isinstance(value, int) and not isinstance(value, bool):
            found = frozenset({value})
        elif op == "in" and isinstance(value, list):
            if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                found = frozenset(value)
        elif op in ("gt", "gte") and isinstance(value, int) and not isinstance(value, bool):
            bound = value if op == "gt" else value - 1
            min_id = bound if min_id is None else max(min_id, bound)
        if found is not None:
            candidates = found if candidates is None else candidates & found
    return candidates, min_id


def compile_query(schema: EntitySchema, body: Any, config: ApiBehaviour) -> CompiledQuery:
    """Validate ``body`` against ``schema`` and compile it; raises ApiError (500) if invalid."""
    if not isinstance(body, Mapping):
        raise business_error("Invalid query: the request body must be a JSON object.")
    filters = _get(body, "filter")
    if not isinstance(filters, list):
        raise business_error("Invalid query: 'filter' must be a list of conditions.")
    if not filters and config.reject_empty_filter:
        raise business_error(
            "Invalid query: 'filter' must contain at least one condition "
            '(e.g. {"op":"gte","field":"id","value":0}).'
        )
    max_records = _get(body, "MaxRecords")
    if max_records is None:
        max_records = config.max_page_size
    if (
        not isinstance(max_records, int)
        or isinstance(max_records, bool)
        or not 1 <= max_records <= config.max_page_size
    ):
        raise ApiError(500, MAX_RECORDS_ERROR)
    compiler = _Compiler(schema, config)
    preds = [compiler.condition(node) for node in filters]
    if compiler.conditions > config.max_conditions:
        raise business_error(TOO_MANY_CONDITIONS)
    include, include_udfs = include_fields(schema, _get(body, "IncludeFields"))
    candidates, min_id = _id_hints(filters)
    predicate = preds[0] if len(preds) == 1 else _all_of(preds)
    return CompiledQuery(predicate, max_records, include, include_udfs, candidates, min_id)


def _all_of(preds: list[Predicate]) -> Predicate:
    return lambda r: all(p(r) for p in preds)


__all__ = [
    "LEAF_OPERATORS",
    "MAX_RECORDS_ERROR",
    "TOO_MANY_CONDITIONS",
    "CompiledQuery",
    "compile_query",
]
