"""Paging (§3): absolute next/prev URLs, same-body POST rule, 405 for GET on a POST page."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from tests.helpers.simapi import CATCH_ALL, Api
from tools.autotask_sim import Simulator
from tools.autotask_sim.query.paging import BODY_MISMATCH

BODY = {"filter": [{"op": "gte", "field": "priority", "value": 1}], "MaxRecords": 25}


async def _walk(api: Api, body: dict[str, object]) -> list[list[int]]:
    pages = []
    reply = await api.post("Tickets/query", body)
    while True:
        assert reply.status == 200, reply.body
        pages.append([item["id"] for item in reply.body["items"]])
        next_url = reply.body["pageDetails"]["nextPageUrl"]
        if next_url is None:
            return pages
        reply = await api.post(next_url, body)


async def test_post_paging_walks_every_row_once_in_id_order(api: Api, sim: Simulator) -> None:
    pages = await _walk(api, BODY)
    truth = [t["id"] for t in sim.state.entities("Tickets")]
    assert len(pages) == 5  # 120 tickets / 25
    assert [len(p) for p in pages] == [25, 25, 25, 25, 20]
    flat = [i for page in pages for i in page]
    assert flat == truth


async def test_page_details_shape(api: Api, sim: Simulator) -> None:
    first = await api.post("Tickets/query", BODY)
    details = first.body["pageDetails"]
    assert details["count"] == 25
    assert details["requestCount"] == 25
    assert details["prevPageUrl"] is None
    next_url = details["nextPageUrl"]
    assert next_url.startswith(f"{sim.rest_url}/v1.0/Tickets/query/next?paging=")
    assert parse_qs(urlsplit(next_url).query)["paging"]


async def test_get_on_post_next_page_is_405(api: Api) -> None:
    first = await api.post("Tickets/query", BODY)
    reply = await api.get(first.body["pageDetails"]["nextPageUrl"])
    assert reply.status == 405


async def test_next_page_with_different_body_is_rejected(api: Api) -> None:
    first = await api.post("Tickets/query", BODY)
    other = {**BODY, "MaxRecords": 10}
    reply = await api.post(first.body["pageDetails"]["nextPageUrl"], other)
    assert reply.status == 500
    assert reply.body == {"errors": [BODY_MISMATCH]}
    missing = await api.post(first.body["pageDetails"]["nextPageUrl"])
    assert missing.status == 500


async def test_same_body_with_other_whitespace_and_key_order_is_accepted(api: Api) -> None:
    first = await api.post("Tickets/query", BODY)
    reordered = json.dumps({"MaxRecords": 25, "filter": BODY["filter"]}, indent=2).encode()
    async with api.session.post(
        first.body["pageDetails"]["nextPageUrl"], data=reordered, headers=api.headers()
    ) as response:
        assert response.status == 200


async def test_prev_page_url_walks_back(api: Api) -> None:
    first = await api.post("Tickets/query", BODY)
    second = await api.post(first.body["pageDetails"]["nextPageUrl"], BODY)
    third = await api.post(second.body["pageDetails"]["nextPageUrl"], BODY)
    back = await api.post(third.body["pageDetails"]["prevPageUrl"], BODY)
    assert back.status == 200
    assert back.body["items"] == second.body["items"]
    back_again = await api.post(back.body["pageDetails"]["prevPageUrl"], BODY)
    assert back_again.body["items"] == first.body["items"]
    assert back_again.body["pageDetails"]["prevPageUrl"] is None


async def test_get_search_paging_uses_get(api: Api, sim: Simulator) -> None:
    search = json.dumps({"filter": CATCH_ALL, "MaxRecords": 50})
    reply = await api.get("Tickets/query", params={"search": search})
    ids = [i["id"] for i in reply.body["items"]]
    while reply.body["pageDetails"]["nextPageUrl"]:
        next_url = reply.body["pageDetails"]["nextPageUrl"]
        assert (await api.post(next_url, {"filter": CATCH_ALL})).status == 405
        reply = await api.get(next_url)
        assert reply.status == 200
        ids += [i["id"] for i in reply.body["items"]]
    assert ids == [t["id"] for t in sim.state.entities("Tickets")]


async def test_tampered_or_foreign_token_is_rejected(api: Api) -> None:
    first = await api.post("Tickets/query", BODY)
    next_url = first.body["pageDetails"]["nextPageUrl"]
    tampered = next_url[:-3] + ("AAA" if not next_url.endswith("AAA") else "BBB")
    assert (await api.post(tampered, BODY)).status == 500
    foreign = next_url.replace("/Tickets/", "/Companies/")
    assert (await api.post(foreign, BODY)).status == 500


async def test_paging_survives_inserts_and_deletes(api: Api, sim: Simulator) -> None:
    first = await api.post("Tickets/query", BODY)
    seen = [i["id"] for i in first.body["items"]]
    # Rows change between pages: a delete ahead of the cursor and a brand-new row.
    doomed = sim.state.entities("Tickets")[60]["id"]
    sim.delete_entity("Tickets", doomed)
    created = sim.create_entity(
        "Tickets", {"companyID": 0, "title": "new", "status": 1, "priority": 2}
    )
    reply = first
    while reply.body["pageDetails"]["nextPageUrl"]:
        reply = await api.post(reply.body["pageDetails"]["nextPageUrl"], BODY)
        seen += [i["id"] for i in reply.body["items"]]
    assert doomed not in seen
    assert seen[-1] == created["id"]
    assert seen == sorted(set(seen))
