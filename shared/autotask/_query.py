"""A small typed builder for Autotask query bodies (autotask-api.md §4).

    Query.where(
        F("status").noteq(5),
        or_(F("title").contains("printer"), F("queueID").in_([8, 9])),
        udf("Customer Ref").exists(),
    ).include("id", "title").limit(100)

renders ``{"filter": [...], "IncludeFields": [...], "MaxRecords": 100}``. Conditions side by
side are AND-ed by Autotask; ``and_``/``or_`` nest. The builder checks what the API would reject
anyway (page size, one UDF per query, the 500-condition ceiling, values for each operator) so a
mistake costs no API call. A raw ``dict`` body is accepted wherever a Query is, unchecked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal, TypeAlias

from shared.autotask._timestamps import format_timestamp
from shared.errors import InvalidQueryError

MAX_PAGE_SIZE = 500
MAX_CONDITIONS = 500  # leaf conditions, counting each in/notIn member (the pessimistic reading)

Scalar: TypeAlias = str | int | float | bool | datetime | date


class Op(StrEnum):
    """The 13 leaf operators, spelled exactly as the API expects."""

    EQ = "eq"
    NOTEQ = "noteq"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    BEGINS_WITH = "beginsWith"
    ENDS_WITH = "endsWith"
    CONTAINS = "contains"
    EXIST = "exist"
    NOT_EXIST = "notExist"
    IN = "in"
    NOT_IN = "notIn"


_NO_VALUE = frozenset({Op.EXIST, Op.NOT_EXIST})
_LIST_VALUE = frozenset({Op.IN, Op.NOT_IN})


def _json_value(value: Scalar) -> str | int | float | bool:
    if isinstance(value, datetime | date):
        return format_timestamp(value)
    return value


@dataclass(frozen=True, slots=True)
class Condition:
    """One leaf: ``{"op", "field", "value"}`` plus ``"udf": true`` for user-defined fields."""

    op: Op
    field: str
    value: Scalar | tuple[Scalar, ...] | None = None
    udf: bool = False

    def __post_init__(self) -> None:
        if not self.field:
            raise ValueError("a condition needs a field name")
        if self.op in _NO_VALUE and self.value is not None:
            raise ValueError(f"{self.op} takes no value")
        if self.op in _LIST_VALUE:
            if not isinstance(self.value, tuple) or not self.value:
                raise ValueError(f"{self.op} needs a non-empty list of values")
        elif self.op not in _NO_VALUE and (self.value is None or isinstance(self.value, tuple)):
            raise ValueError(f"{self.op} needs a single value")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"op": self.op.value, "field": self.field}
        if isinstance(self.value, tuple):
            body["value"] = [_json_value(v) for v in self.value]
        elif self.value is not None:
            body["value"] = _json_value(self.value)
        if self.udf:
            body["udf"] = True
        return body


@dataclass(frozen=True, slots=True)
class Group:
    """``{"op": "and"|"or", "items": [...]}``; groups nest."""

    op: Literal["and", "or"]
    items: tuple[Condition | Group, ...]

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError(f"an '{self.op}' group needs at least one item")

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "items": [item.to_json() for item in self.items]}


Filter: TypeAlias = Condition | Group


def and_(*items: Filter) -> Group:
    """All of ``items`` must hold."""
    return Group("and", tuple(items))


def or_(*items: Filter) -> Group:
    """At least one of ``items`` must hold."""
    return Group("or", tuple(items))


class F:
    """A field to compare: ``F("status").eq(1)``; ``F("Ref", udf=True)`` or :func:`udf`."""

    __slots__ = ("name", "udf")

    def __init__(self, name: str, *, udf: bool = False) -> None:
        self.name = name
        self.udf = udf

    def _c(self, op: Op, value: Scalar | tuple[Scalar, ...] | None = None) -> Condition:
        return Condition(op, self.name, value, udf=self.udf)

    def eq(self, value: Scalar) -> Condition:
        return self._c(Op.EQ, value)

    def noteq(self, value: Scalar) -> Condition:
        return self._c(Op.NOTEQ, value)

    def gt(self, value: Scalar) -> Condition:
        return self._c(Op.GT, value)

    def gte(self, value: Scalar) -> Condition:
        return self._c(Op.GTE, value)

    def lt(self, value: Scalar) -> Condition:
        return self._c(Op.LT, value)

    def lte(self, value: Scalar) -> Condition:
        return self._c(Op.LTE, value)

    def begins_with(self, value: str) -> Condition:
        return self._c(Op.BEGINS_WITH, value)

    def ends_with(self, value: str) -> Condition:
        return self._c(Op.ENDS_WITH, value)

    def contains(self, value: str) -> Condition:
        return self._c(Op.CONTAINS, value)

    def exists(self) -> Condition:
        return self._c(Op.EXIST)

    def not_exists(self) -> Condition:
        return self._c(Op.NOT_EXIST)

    def in_(self, values: Iterable[Scalar]) -> Condition:
        return self._c(Op.IN, tuple(values))

    def not_in(self, values: Iterable[Scalar]) -> Condition:
        return self._c(Op.NOT_IN, tuple(values))

    def __repr__(self) -> str:
        return f"F({self.name!r}{', udf=True' if self.udf else ''})"


def udf(name: str) -> F:
    """A user-defined field (the condition carries ``"udf": true``)."""
    return F(name, udf=True)


# Autotask has no "match everything" query; GDS found a catch-all condition is required.
MATCH_ALL: Condition = F("id").gte(0)


@dataclass(frozen=True, slots=True)
class Query:
    """An immutable query body; each method returns a new Query."""

    filter: tuple[Filter, ...] = ()
    include_fields: tuple[str, ...] = ()
    max_records: int | None = None

    @classmethod
    def where(cls, *conditions: Filter) -> Query:
        return cls(filter=tuple(conditions))

    @classmethod
    def all(cls) -> Query:
        """Every row (the catch-all ``id >= 0``)."""
        return cls(filter=(MATCH_ALL,))

    def and_where(self, *conditions: Filter) -> Query:
        return replace(self, filter=self.filter + tuple(conditions))

    def include(self, *fields: str) -> Query:
        """Ask only for these fields (``IncludeFields``); ``id`` is always useful to keep."""
        return replace(self, include_fields=tuple(fields))

    def limit(self, max_records: int) -> Query:
        """Rows per page (``MaxRecords``, 1..500)."""
        return replace(self, max_records=max_records)

    def leaves(self) -> list[Condition]:
        """Every leaf condition, depth first."""
        out: list[Condition] = []
        stack: list[Filter] = list(reversed(self.filter))
        while stack:
            item = stack.pop()
            if isinstance(item, Group):
                stack.extend(reversed(item.items))
            else:
                out.append(item)
        return out

    def validate(self) -> None:
        """Raise InvalidQueryError for what Autotask would refuse, before spending a call."""
        if self.max_records is not None and not 1 <= self.max_records <= MAX_PAGE_SIZE:
            raise InvalidQueryError(
                f"MaxRecords must be between 1 and {MAX_PAGE_SIZE}, got {self.max_records}"
            )
        leaves = self.leaves()
        # One UDF condition per query (n8n's MAX_UDF_PER_QUERY); whether two conditions on
        # the same UDF pass is unknown, so the pessimistic reading is enforced.
        udfs = [leaf.field for leaf in leaves if leaf.udf]
        if len(udfs) > 1:
            raise InvalidQueryError(
                f"Autotask allows one user-defined field condition per query; got {udfs}: "
                "split the query or filter the rest locally"
            )
        size = sum(len(leaf.value) if isinstance(leaf.value, tuple) else 1 for leaf in leaves)
        if size > MAX_CONDITIONS:
            raise InvalidQueryError(
                f"query has {size} conditions (in/notIn members counted); Autotask refuses "
                f"more than {MAX_CONDITIONS}: split it (fetch_by_ids chunks id lists for you)"
            )

    def to_body(self) -> dict[str, Any]:
        """The JSON body for ``POST /{Entity}/query``."""
        self.validate()
        body: dict[str, Any] = {
            "filter": [item.to_json() for item in (self.filter or (MATCH_ALL,))]
        }
        if self.include_fields:
            body["IncludeFields"] = list(self.include_fields)
        if self.max_records is not None:
            body["MaxRecords"] = self.max_records
        return body

    def count_body(self) -> dict[str, Any]:
        """The JSON body for ``POST /{Entity}/query/count`` (filter only)."""
        return {"filter": self.to_body()["filter"]}


QueryLike: TypeAlias = Query | Mapping[str, Any]


def query_body(query: QueryLike) -> dict[str, Any]:
    """Render a Query, or pass a raw mapping through untouched (an escape hatch)."""
    return query.to_body() if isinstance(query, Query) else dict(query)


def count_body(query: QueryLike) -> dict[str, Any]:
    """The count body of a Query, or the raw mapping without paging keys."""
    if isinstance(query, Query):
        return query.count_body()
    return {k: v for k, v in query.items() if k not in ("MaxRecords", "IncludeFields")}


__all__ = [
    "MATCH_ALL",
    "MAX_PAGE_SIZE",
    "Condition",
    "F",
    "Filter",
    "Group",
    "Op",
    "Query",
    "QueryLike",
    "and_",
    "count_body",
    "or_",
    "query_body",
    "udf",
]
