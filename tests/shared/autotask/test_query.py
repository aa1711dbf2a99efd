"""The query builder renders Autotask's filter grammar and refuses what the API would."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from shared.autotask._query import MATCH_ALL, F, Op, Query, and_, count_body, or_, query_body, udf
from shared.errors import InvalidQueryError


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (F("status").eq(5), {"op": "eq", "field": "status", "value": 5}),
        (F("status").noteq(5), {"op": "noteq", "field": "status", "value": 5}),
        (F("id").gt(10), {"op": "gt", "field": "id", "value": 10}),
        (F("id").gte(10), {"op": "gte", "field": "id", "value": 10}),
        (F("id").lt(10), {"op": "lt", "field": "id", "value": 10}),
        (F("id").lte(10), {"op": "lte", "field": "id", "value": 10}),
        (F("title").begins_with("Pr"), {"op": "beginsWith", "field": "title", "value": "Pr"}),
        (F("title").ends_with("er"), {"op": "endsWith", "field": "title", "value": "er"}),
        (F("title").contains("int"), {"op": "contains", "field": "title", "value": "int"}),
        (F("dueDateTime").exists(), {"op": "exist", "field": "dueDateTime"}),
        (F("dueDateTime").not_exists(), {"op": "notExist", "field": "dueDateTime"}),
        (F("id").in_([1, 2]), {"op": "in", "field": "id", "value": [1, 2]}),
        (F("id").not_in((3,)), {"op": "notIn", "field": "id", "value": [3]}),
    ],
)
def test_each_operator_renders_as_the_api_spells_it(condition, expected):
    assert condition.to_json() == expected


def test_all_thirteen_operators_are_covered():
    assert {op.value for op in Op} == {
        "eq", "noteq", "gt", "gte", "lt", "lte", "beginsWith", "endsWith", "contains",
        "exist", "notExist", "in", "notIn",
    }  # fmt: skip


def test_groups_nest_and_udf_conditions_carry_the_flag():
    query = Query.where(
        F("status").noteq(5),
        or_(F("title").contains("printer"), and_(F("queueID").in_([8, 9]), udf("Ref").exists())),
    )
    assert query.to_body() == {
        "filter": [
            {"op": "noteq", "field": "status", "value": 5},
            {
                "op": "or",
                "items": [
                    {"op": "contains", "field": "title", "value": "printer"},
                    {
                        "op": "and",
                        "items": [
                            {"op": "in", "field": "queueID", "value": [8, 9]},
                            {"op": "exist", "field": "Ref", "udf": True},
                        ],
                    },
                ],
            },
        ]
    }


def test_dates_are_sent_as_utc_milliseconds_with_z():
    when = datetime(2025, 4, 8, 21, 18, 19, 738_900, tzinfo=UTC)
    assert F("createDate").gt(when).to_json()["value"] == "2025-04-08T21:18:19.738Z"
    assert F("dueDate").eq(date(2025, 4, 8)).to_json()["value"] == "2025-04-08T00:00:00.000Z"


def test_paging_keys_and_include_fields():
    body = Query.where(F("id").gt(0)).include("id", "title").limit(25).to_body()
    assert body["IncludeFields"] == ["id", "title"]
    assert body["MaxRecords"] == 25


def test_empty_query_becomes_the_catch_all_and_count_body_drops_paging():
    assert Query().to_body() == {"filter": [MATCH_ALL.to_json()]}
    assert Query.all().limit(5).count_body() == {
        "filter": [{"op": "gte", "field": "id", "value": 0}]
    }
    raw = {"filter": [{"op": "eq", "field": "id", "value": 1}], "MaxRecords": 9}
    assert query_body(raw) == raw
    assert count_body(raw) == {"filter": raw["filter"]}


@pytest.mark.parametrize("size", [0, 501])
def test_page_size_outside_1_to_500_is_refused_before_a_call(size):
    with pytest.raises(InvalidQueryError, match="MaxRecords must be between 1 and 500"):
        Query.all().limit(size).to_body()


def test_only_one_udf_per_query():
    query = Query.where(udf("A").eq("x"), udf("B").eq("y"))
    with pytest.raises(InvalidQueryError, match="one user-defined field condition"):
        query.to_body()
    with pytest.raises(InvalidQueryError):
        Query.where(udf("A").gte("a"), or_(udf("A").lte("b"))).to_body()


def test_more_than_500_conditions_is_refused():
    with pytest.raises(InvalidQueryError, match="501 conditions"):
        Query.where(F("id").in_(range(501))).to_body()


@pytest.mark.parametrize(
    "build",
    [
        lambda: F("id").in_([]),
        lambda: F("x").eq(None),  # type: ignore[arg-type]
        lambda: and_(),
        lambda: F("").eq(1),
    ],
)
def test_malformed_conditions_fail_at_build_time(build):
    with pytest.raises(ValueError):
        build()
