"""Reads against the simulator over real HTTP: results must equal the simulator's truth."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC
from typing import Any

import pytest

from shared.autotask import AutotaskClient, Child, F, Query, and_, or_, parse_timestamp, udf
from shared.autotask._query import Condition
from shared.errors import NotFoundError
from tests.helpers.clients import api_rows, requests_to
from tools.autotask_sim import ApiBehaviour, SimulatorConfig
from tools.autotask_sim.server import Simulator


def ids(rows: list[dict[str, Any]]) -> list[int]:
    return [row["id"] for row in rows]


async def test_get_by_id_equals_truth(sim: Simulator, client: AutotaskClient):
    for expected in api_rows(sim, "Tickets")[:5]:
        assert await client.get("Tickets", expected["id"]) == expected


async def test_paging_walks_every_page_posting_the_same_body(sim, client):
    expected = api_rows(sim, "Tickets")
    pages = [page async for page in client.query_pages("Tickets", Query.all().limit(37))]
    assert len(pages) == math.ceil(len(expected) / 37) == 6
    assert [page.number for page in pages] == [1, 2, 3, 4, 5, 6]
    assert all(len(page.items) == 37 for page in pages[:-1])
    assert pages[-1].next_page_url is None
    assert [item for page in pages for item in page.items] == expected
    assert requests_to(sim, "Tickets") == 6
    assert sim.state.requests.by_status.get(405, 0) == 0  # never GETs a POST query's next page


async def test_query_items_and_count(sim, client):
    query = Query.where(F("status").eq(1)).limit(7)
    expected = [t for t in api_rows(sim, "Tickets") if t["status"] == 1]
    assert len(expected) > 7  # so paging is involved
    assert [t async for t in client.query("Tickets", query)] == expected
    assert await client.count("Tickets", query) == len(expected)
    assert await client.count("Companies") == 50


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _when(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """SQL semantics: a null field matches no comparison."""
    return lambda v: v is not None and test(_lower(v))


OPERATOR_CASES: list[tuple[str, Callable[[list[dict]], tuple[Condition, Callable]]]] = [
    ("eq", lambda rows: (F("status").eq(1), _when(lambda v: v == 1))),
    ("noteq", lambda rows: (F("status").noteq(1), _when(lambda v: v != 1))),
    ("gt", lambda rows: (F("id").gt(rows[50]["id"]), _when(lambda v: v > rows[50]["id"]))),
    ("gte", lambda rows: (F("id").gte(rows[50]["id"]), _when(lambda v: v >= rows[50]["id"]))),
    ("lt", lambda rows: (F("id").lt(rows[50]["id"]), _when(lambda v: v < rows[50]["id"]))),
    ("lte", lambda rows: (F("id").lte(rows[50]["id"]), _when(lambda v: v <= rows[50]["id"]))),
    ("beginsWith", lambda _: (F("title").begins_with("VPN"), _when(lambda v: v[:3] == "vpn"))),
    ("endsWith", lambda _: (F("title").ends_with("HOURS>"), _when(lambda v: v[-6:] == "hours>"))),
    ("contains", lambda rows: (F("title").contains("& EMAIL"), _when(lambda v: "& email" in v))),
    ("exist", lambda rows: (F("completedDate").exists(), lambda v: v is not None)),
    ("notExist", lambda rows: (F("assignedResourceID").not_exists(), lambda v: v is None)),
    ("in", lambda rows: (F("priority").in_([1, 3]), _when(lambda v: v in (1, 3)))),
    ("notIn", lambda rows: (F("priority").not_in([1, 3]), _when(lambda v: v not in (1, 3)))),
]  # fmt: skip


@pytest.mark.parametrize(("op", "case"), OPERATOR_CASES, ids=[c[0] for c in OPERATOR_CASES])
async def test_every_operator_returns_what_the_simulator_holds(sim, client, op, case):
    rows = api_rows(sim, "Tickets")
    condition, matches = case(rows)
    assert condition.op.value == op
    expected = [r for r in rows if matches(r.get(condition.field))]
    assert 0 < len(expected) < len(rows), "the case must discriminate"
    got = await client.query_all("Tickets", Query.where(condition))
    assert ids(got) == ids(expected)


async def test_nested_groups(sim, client):
    rows = api_rows(sim, "Tickets")
    query = Query.where(
        F("priority").noteq(4),
        or_(
            F("title").contains("vpn"),
            and_(F("status").eq(1), F("assignedResourceID").not_exists()),
        ),
    )
    expected = [
        r
        for r in rows
        if r["priority"] != 4
        and ("vpn" in r["title"].lower() or (r["status"] == 1 and r["assignedResourceID"] is None))
    ]
    assert expected
    assert ids(await client.query_all("Tickets", query)) == ids(expected)


async def test_udf_condition(sim, client):
    rows = api_rows(sim, "Tickets")

    def impact(row: dict[str, Any]) -> str | None:
        return next(
            (u["value"] for u in row["userDefinedFields"] if u["name"] == "Customer Impact"), None
        )

    wanted = impact(rows[0])
    expected = [r for r in rows if (impact(r) or "").lower() == wanted.lower()]
    got = await client.query_all("Tickets", Query.where(udf("Customer Impact").eq(wanted)))
    assert ids(got) == ids(expected)
    assert 0 < len(got) < len(rows)


async def test_include_fields_trims_rows(sim, client):
    query = Query.where(F("id").lte(api_rows(sim, "Companies")[9]["id"])).include("companyName")
    got = await client.query_all("Companies", query)
    assert got == [
        {"id": c["id"], "companyName": c["companyName"]} for c in api_rows(sim, "Companies")[:10]
    ]


async def test_batch_fetch_returns_found_and_missing_in_few_calls(sim, client):
    rows = api_rows(sim, "Tickets")
    present = [r["id"] for r in rows[::2]] + [rows[3]["id"], rows[3]["id"]]  # duplicates too
    absent = [10**9 + i for i in range(7)]
    before = requests_to(sim, "Tickets")
    result = await client.fetch_by_ids("Tickets", [*absent[:3], *present, *absent[3:]])
    by_id = {r["id"]: r for r in rows}
    assert result.found == {i: by_id[i] for i in present}
    assert result.missing == absent
    unique = len(set(present)) + len(absent)
    assert result.calls == math.ceil(unique / 200) == 1
    assert requests_to(sim, "Tickets") - before == result.calls

    small = await client.fetch_by_ids("Tickets", [*present, *absent], chunk_size=25)
    assert small.found == result.found
    assert small.missing == absent
    assert small.calls == math.ceil(unique / 25)


async def test_batch_fetch_with_include_fields(sim, client):
    rows = api_rows(sim, "Companies")[:5]
    result = await client.fetch_by_ids("Companies", ids(rows), include_fields=["companyName"])
    assert result.found == {r["id"]: {"id": r["id"], "companyName": r["companyName"]} for r in rows}


async def test_child_collection_lists_the_parents_rows(sim, client):
    notes = api_rows(sim, "TicketNotes")
    ticket_id = notes[0]["ticketID"]
    expected = [n for n in notes if n["ticketID"] == ticket_id]
    got = await client.list_children(Child("Tickets", ticket_id, "Notes"))
    assert sorted(ids(got)) == ids(expected)


@pytest.fixture
def sim_config(request) -> SimulatorConfig:
    missing = getattr(request, "param", "404")
    return SimulatorConfig(
        seed=7, companies=50, tickets=200, api=ApiBehaviour(missing_item=missing)
    )


@pytest.mark.parametrize("sim_config", ["404", "null"], indirect=True)
async def test_missing_id_is_not_found_whether_404_or_null_item(sim, client, sim_config):
    with pytest.raises(NotFoundError) as info:
        await client.get("Tickets", 123_456_789)
    assert "Tickets 123456789 was not found" in str(info.value)
    assert info.value.status == (404 if sim_config.api.missing_item == "404" else 200)


@pytest.mark.parametrize("sim_config", ["404"], indirect=True)
async def test_timestamps_with_and_without_z_parse_to_the_same_utc(sim, client):
    rows = await client.query_all("Tickets", Query.all().include("createDate", "dueDateTime"))
    texts = [r[k] for r in rows for k in ("createDate", "dueDateTime") if r[k]]
    assert any(t.endswith("Z") for t in texts)
    assert any(not t.endswith("Z") for t in texts)
    for text in texts:
        parsed = parse_timestamp(text)
        assert parsed.tzinfo is UTC
        assert parsed.replace(tzinfo=None).isoformat(timespec="milliseconds") == text.rstrip("Z")


async def test_metadata_picklists_webhook_fields_udfs_and_usage(sim, client: AutotaskClient):
    info = await client.entity_information("Tickets")
    assert info.can_query
    assert info.name == "Ticket"
    fields = {f.name: f for f in await client.field_info("Tickets")}
    status = fields["status"]
    assert status.is_pick_list
    assert status.picklist()  # value -> label
    assert all(isinstance(v, str) for v in status.picklist())
    assert any(f.is_supported_webhook_field for f in fields.values())
    udfs = await client.udf_definitions("Tickets")
    assert {u.name for u in udfs} == {"External Reference", "Customer Impact"}
    usage = await client.threshold_information()
    assert usage.external_request_threshold == 10_000
    assert usage.current_timeframe_request_count == sim.state.limits.usage()  # counts itself
    assert client.budget.reading == usage
