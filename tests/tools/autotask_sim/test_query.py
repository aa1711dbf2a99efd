"""The query grammar (§4): every operator, groups, UDFs, validation, count, IncludeFields."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest

from tests.helpers.simapi import CATCH_ALL, Api, fast_config
from tools.autotask_sim import ApiBehaviour, Simulator, run_simulator
from tools.autotask_sim.query.grammar import MAX_RECORDS_ERROR, TOO_MANY_CONDITIONS


@pytest.fixture
def companies(sim: Simulator) -> dict[str, int]:
    """Four companies with known values, created in this order (ids and stamps increase)."""
    rows = {
        "a": {"companyName": "Zeta Alpha", "companyType": 1, "city": "Leeds", "isActive": True},
        "b": {"companyName": "zeta beta", "companyType": 2, "city": "Austin", "isActive": False},
        "c": {"companyName": "Gamma Zeta", "companyType": 3, "city": None, "isActive": True},
        "d": {"companyName": "Omega", "companyType": 7, "city": "Dublin", "isActive": True},
    }
    ids = {}
    for key, fields in rows.items():
        body = {**fields, "phone": "+1-555-0000", "ownerResourceID": sim.api_user_resource_id}
        ids[key] = sim.create_entity("Companies", body)["id"]
    return ids


def _scoped(ids: dict[str, int], condition: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"op": "in", "field": "id", "value": sorted(ids.values())}, condition]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"op": "eq", "field": "companyName", "value": "ZETA ALPHA"}, "a"),
        ({"op": "noteq", "field": "companyName", "value": "zeta alpha"}, "bcd"),
        ({"op": "gt", "field": "companyType", "value": 2}, "cd"),
        ({"op": "gte", "field": "companyType", "value": 2}, "bcd"),
        ({"op": "lt", "field": "companyType", "value": 3}, "ab"),
        ({"op": "lte", "field": "companyType", "value": 3}, "abc"),
        ({"op": "beginsWith", "field": "companyName", "value": "ZETA"}, "ab"),
        ({"op": "endsWith", "field": "companyName", "value": "zeta"}, "c"),
        ({"op": "contains", "field": "companyName", "value": "eTa"}, "abc"),
        ({"op": "exist", "field": "city"}, "abd"),
        ({"op": "notExist", "field": "city"}, "c"),
        ({"op": "in", "field": "companyType", "value": [1, 7]}, "ad"),
        ({"op": "notIn", "field": "companyType", "value": [1, 7]}, "bc"),
        ({"op": "eq", "field": "isActive", "value": False}, "b"),
        ({"op": "noteq", "field": "city", "value": "leeds"}, "bd"),  # null never matches
        ({"op": "in", "field": "city", "value": ["LEEDS", "dublin"]}, "ad"),
    ],
)
async def test_each_operator(
    api: Api, companies: dict[str, int], condition: dict[str, Any], expected: str
) -> None:
    ids = await api.ids("Companies", _scoped(companies, condition))
    assert ids == sorted(companies[k] for k in expected)


async def test_datetime_comparisons_ignore_trailing_z(api: Api, companies: dict[str, int]) -> None:
    b = (await api.get(f"Companies/{companies['b']}")).body["item"]
    stamp = b["createDate"].rstrip("Z")
    # The same instant written three ways: no zone (UTC), "Z", and an explicit +02:00 offset.
    shifted = (datetime.fromisoformat(stamp) + timedelta(hours=2)).isoformat(
        timespec="milliseconds"
    )
    for value in (stamp, stamp + "Z", shifted + "+02:00"):
        flt = _scoped(companies, {"op": "gt", "field": "createDate", "value": value})
        assert await api.ids("Companies", flt) == [companies["c"], companies["d"]], value
    same = await api.ids(
        "Companies", _scoped(companies, {"op": "eq", "field": "createDate", "value": stamp + "Z"})
    )
    assert same == [companies["b"]]


async def test_nested_groups(api: Api, companies: dict[str, int]) -> None:
    group = {
        "op": "or",
        "items": [
            {"op": "eq", "field": "companyType", "value": 7},
            {
                "op": "and",
                "items": [
                    {"op": "beginsWith", "field": "companyName", "value": "zeta"},
                    {"op": "eq", "field": "isActive", "value": True},
                ],
            },
        ],
    }
    ids = await api.ids("Companies", _scoped(companies, group))
    assert ids == sorted([companies["a"], companies["d"]])


async def test_top_level_conditions_are_anded(api: Api, companies: dict[str, int]) -> None:
    flt = [
        {"op": "in", "field": "id", "value": list(companies.values())},
        {"op": "contains", "field": "companyName", "value": "zeta"},
        {"op": "eq", "field": "isActive", "value": True},
    ]
    assert await api.ids("Companies", flt) == sorted([companies["a"], companies["c"]])


async def test_results_sorted_by_id_and_match_truth(api: Api, sim: Simulator) -> None:
    flt = [{"op": "in", "field": "status", "value": [1, 5]}]
    expected = [t["id"] for t in sim.state.entities("Tickets") if t["status"] in (1, 5)]
    assert expected
    assert await api.ids("Tickets", flt) == expected


async def test_udf_condition(api: Api, sim: Simulator) -> None:
    some = next(
        t for t in sim.state.entities("Tickets") if t["userDefinedFields"][0]["value"] is not None
    )
    value = some["userDefinedFields"][0]["value"]
    flt = [{"op": "eq", "field": "External Reference", "value": value.lower(), "udf": True}]
    assert await api.ids("Tickets", flt) == [some["id"]]
    none_ids = await api.ids(
        "Tickets", [{"op": "notExist", "field": "External Reference", "udf": True}]
    )
    truth = [
        t["id"] for t in sim.state.entities("Tickets") if t["userDefinedFields"][0]["value"] is None
    ]
    assert none_ids == truth


@pytest.mark.parametrize(
    "body",
    [
        {"filter": []},  # empty filter rejected (pessimistic reading)
        {"filter": "id gt 0"},
        {"nofilter": CATCH_ALL},
        {"filter": [{"op": "like", "field": "id", "value": 1}]},
        {"filter": [{"op": "eq", "field": "noSuchField", "value": 1}]},
        {"filter": [{"op": "eq", "field": "isActive", "value": "yes"}]},  # converts to no bit
        {"filter": [{"op": "eq", "field": "companyType", "value": "two"}]},
        {"filter": [{"op": "gt", "field": "createDate", "value": True}]},
        {"filter": [{"op": "in", "field": "id", "value": 5}]},
        {"filter": [{"op": "gt", "field": "createDate", "value": "yesterday"}]},
        {"filter": [{"op": "contains", "field": "companyType", "value": "1"}]},
        {"filter": [{"op": "or", "items": []}]},
        {
            "filter": [{"op": "eq", "field": "Account Tier", "value": "Gold"}]
        },  # UDF without udf flag
        {"filter": [{"op": "eq", "field": "Account Tier", "value": "Gold", "udf": "yes"}]},
        {
            "filter": [
                {"op": "eq", "field": "Account Tier", "value": "Gold", "udf": True},
                {"op": "eq", "field": "Billing Code", "value": "X", "udf": True},
            ]
        },  # one UDF per query
        {"filter": CATCH_ALL, "IncludeFields": ["noSuchField"]},
    ],
)
async def test_invalid_queries_are_500_with_errors(api: Api, body: dict[str, Any]) -> None:
    reply = await api.post("Companies/query", body)
    assert reply.status == 500
    assert reply.body["errors"]
    assert all(isinstance(e, str) for e in reply.body["errors"])


@pytest.mark.parametrize("max_records", [0, 501, -1, "10", True, 10.5])
async def test_max_records_bounds_exact_text(api: Api, max_records: Any) -> None:
    reply = await api.query("Companies", CATCH_ALL, MaxRecords=max_records)
    assert reply.status == 500
    assert reply.body == {"errors": [MAX_RECORDS_ERROR]}


async def test_max_records_limits_page(api: Api) -> None:
    for size in (1, 7, 500):
        reply = await api.query("Tickets", CATCH_ALL, MaxRecords=size)
        assert reply.status == 200
        assert reply.body["pageDetails"]["count"] == min(size, 120)
        assert reply.body["pageDetails"]["requestCount"] == size


async def test_condition_ceiling_counts_in_members(api: Api) -> None:
    ok = await api.query("Tickets", [{"op": "in", "field": "id", "value": list(range(500))}])
    assert ok.status == 200
    too_many = await api.query(
        "Tickets",
        [
            {"op": "in", "field": "id", "value": list(range(499))},
            {"op": "gte", "field": "id", "value": 0},
            {"op": "gte", "field": "priority", "value": 0},
        ],
    )
    assert too_many.status == 500
    assert too_many.body == {"errors": [TOO_MANY_CONDITIONS]}


async def test_include_fields_trims_and_always_returns_id(api: Api) -> None:
    reply = await api.query("Tickets", CATCH_ALL, MaxRecords=5, IncludeFields=["Title", "status"])
    assert reply.status == 200
    for item in reply.body["items"]:
        assert set(item) == {"id", "title", "status"}
    udf = await api.query(
        "Tickets", CATCH_ALL, MaxRecords=2, IncludeFields=["ticketNumber", "Customer Impact"]
    )
    for item in udf.body["items"]:
        assert set(item) == {"id", "ticketNumber", "userDefinedFields"}
        assert [u["name"] for u in item["userDefinedFields"]] == ["Customer Impact"]


async def test_count_both_verbs(api: Api, sim: Simulator) -> None:
    flt = [{"op": "eq", "field": "priority", "value": 2}]
    truth = sum(1 for t in sim.state.entities("Tickets") if t["priority"] == 2)
    posted = await api.post("Tickets/query/count", {"filter": flt})
    assert posted.status == 200
    assert posted.body == {"queryCount": truth}
    got = await api.get("Tickets/query/count", params={"search": json.dumps({"filter": flt})})
    assert got.body == {"queryCount": truth}


async def test_get_query_with_search(api: Api, sim: Simulator) -> None:
    search = json.dumps({"filter": [{"op": "eq", "field": "id", "value": 0}]})
    reply = await api.get("Companies/query", params={"search": search})
    assert reply.status == 200
    assert [i["id"] for i in reply.body["items"]] == [0]
    assert (await api.get("Companies/query")).status == 500  # search is required


# Filters as production clients send them: values dropped, or of another JSON type (§4).

DROPPED_OR_NULL = [
    {"op": "eq", "field": "isActive"},  # a client dropped `false`
    {"op": "eq", "field": "companyType"},  # ... or `0`
    {"op": "noteq", "field": "city", "value": None},
    {"op": "contains", "field": "companyName"},  # ... or ""
    {"op": "notIn", "field": "companyType", "value": [1, None]},  # NOT IN (..., NULL)
]
CONVERTED = [
    ({"op": "eq", "field": "isActive", "value": "true"}, "acd"),
    ({"op": "eq", "field": "isActive", "value": "FALSE"}, "b"),
    ({"op": "eq", "field": "isActive", "value": 0}, "b"),
    ({"op": "eq", "field": "isActive", "value": "1"}, "acd"),
    ({"op": "eq", "field": "companyType", "value": True}, "a"),
    ({"op": "in", "field": "companyType", "value": ["true", 7, None]}, "ad"),
]


@pytest.mark.parametrize("condition", DROPPED_OR_NULL)
async def test_a_missing_or_null_value_is_null_and_matches_no_row(
    api: Api, companies: dict[str, int], condition: dict[str, Any]
) -> None:
    assert await api.ids("Companies", _scoped(companies, condition)) == []


@pytest.mark.parametrize(("condition", "expected"), CONVERTED)
async def test_values_of_another_json_type_are_converted(
    api: Api, companies: dict[str, int], condition: dict[str, Any], expected: str
) -> None:
    ids = await api.ids("Companies", _scoped(companies, condition))
    assert ids == sorted(companies[k] for k in expected)


async def test_boolean_text_on_an_integer_flag(api: Api, sim: Simulator) -> None:
    # Contacts keep isActive as 0/1: `isActive = "true"` means 1, as does JSON `true`.
    active = [c["id"] for c in sim.state.entities("Contacts") if c["isActive"] == 1]
    assert active
    for value in ("true", True, 1):
        assert await api.ids("Contacts", [{"op": "eq", "field": "isActive", "value": value}]) == (
            active
        )


async def test_strict_settings_refuse_dropped_and_mistyped_values(
    session: aiohttp.ClientSession,
) -> None:
    strict = ApiBehaviour(filter_missing_value="reject", filter_value_coercion="strict")
    async with run_simulator(fast_config(api=strict)) as sim:
        api = Api(sim, session)
        for condition in [*DROPPED_OR_NULL, *(c for c, _ in CONVERTED)]:
            reply = await api.query("Companies", [*CATCH_ALL, condition])
            assert reply.status == 500, condition
            assert all(isinstance(e, str) for e in reply.body["errors"])
        # The strict type rules still allow what they always did.
        ok = [{"op": "eq", "field": "companyType", "value": "3"}]
        assert (await api.query("Companies", ok)).status == 200


async def test_each_filter_setting_alone(session: aiohttp.ClientSession) -> None:
    only_reject = ApiBehaviour(filter_missing_value="reject")
    async with run_simulator(fast_config(api=only_reject)) as sim:
        api = Api(sim, session)
        assert (await api.query("Companies", [DROPPED_OR_NULL[0]])).status == 500
        converted = [{"op": "eq", "field": "isActive", "value": "true"}]
        assert (await api.query("Companies", converted)).status == 200
    only_strict = ApiBehaviour(filter_value_coercion="strict")
    async with run_simulator(fast_config(api=only_strict)) as sim:
        api = Api(sim, session)
        assert (await api.query("Companies", [DROPPED_OR_NULL[0]])).status == 200
        converted = [{"op": "eq", "field": "isActive", "value": "true"}]
        assert (await api.query("Companies", converted)).status == 500


async def test_create_and_update_bodies_stay_strict(api: Api, sim: Simulator) -> None:
    body = {
        "companyName": "Strict Ltd",
        "companyType": 1,
        "phone": "1",
        "ownerResourceID": sim.api_user_resource_id,
        "isActive": "true",
    }
    assert (await api.post("Companies", body)).status == 500
    assert (await api.patch("Companies", {"id": 0, "isActive": 1})).status == 500


@pytest.mark.parametrize("reject", [True, False])
async def test_empty_filter_setting(session: aiohttp.ClientSession, reject: bool) -> None:
    async with run_simulator(fast_config(api=ApiBehaviour(reject_empty_filter=reject))) as sim:
        api = Api(sim, session)
        reply = await api.query("Companies", [])
        if reject:
            assert reply.status == 500
            assert reply.body["errors"]
        else:
            assert reply.status == 200
            assert [c["id"] for c in reply.body["items"]] == [
                c["id"] for c in sim.state.entities("Companies")
            ]
