"""A connection's sync scope followed through every change, with no manual command: the first
load, a widened and a narrowed scope, and rows moving across the boundary by their own edits;
children (contacts and configuration items of companies, notes of tickets) follow their parent.

The expected rows are computed here from the tenant's data with the scope's plain meaning (ids
and queues listed), apart from the product's rules.

simulator -> gateway -> Kafka -> worker with sweeps (scheduler) -> PostgreSQL + change topics
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from shared.connections import store as rows
from shared.db import connect
from shared.entities import (
    COMPANIES,
    CONFIGURATION_ITEMS,
    CONTACTS,
    TICKET_NOTES,
    TICKETS,
    EntitySpec,
)
from shared.mirror.store import live_rows
from shared.scope.rules import SyncScope
from shared.secrets import SecretBox
from tests.e2e.harness import Pipeline, callout_tenant, pipeline_for
from tests.helpers.clients import truth
from tests.helpers.pipeline import read_topic
from tests.helpers.tenants import new_connection
from tests.helpers.waiting import eventually
from tools.autotask_sim import run_simulator

pytestmark = pytest.mark.e2e

CONVERGES_WITHIN = timedelta(seconds=90)
"""A scope change of a small tenant takes seconds (a complete read is a few pages); the sweeps
it replaces run every 15 minutes, and nothing else would ever load what the scope let in."""

Expected = Callable[[EntitySpec, dict[str, Any]], bool]


@pytest_asyncio.fixture
async def pipeline(migrated_database, kafka_bootstrap, unique, tmp_path) -> AsyncIterator[Pipeline]:
    async with pipeline_for(migrated_database, kafka_bootstrap, unique, tmp_path) as running:
        yield running


async def _connect(pipeline: Pipeline, name: str, sim: Any, scope: dict[str, Any]) -> None:
    db = await connect(pipeline.dsn)
    try:
        box = SecretBox([pipeline.deployment.secret_key])
        await rows.insert(db, new_connection(name, sim, scope=SyncScope.parse(scope)), box)
    finally:
        await db.close()


async def _edit_scope(pipeline: Pipeline, name: str, scope: dict[str, Any]) -> float:
    """Store a new scope (as ``connections edit --scope`` does); returns when."""
    db = await connect(pipeline.dsn)
    try:
        assert await rows.update(db, name, scope=SyncScope.parse(scope))
    finally:
        await db.close()
    return time.monotonic()


async def _differences(
    pipeline: Pipeline, name: str, sim: Any, entities: list[EntitySpec], expected: Expected
) -> dict[str, Any]:
    db = await connect(pipeline.dsn)
    try:
        problems: dict[str, Any] = {}
        for entity in entities:
            mirrored = await live_rows(db, entity, name)
            wanted = {r["id"]: r for r in truth(sim, entity.rest_name) if expected(entity, r)}
            missing = sorted(wanted.keys() - mirrored.keys())
            extra = sorted(mirrored.keys() - wanted.keys())
            stale = sorted(i for i in wanted.keys() & mirrored.keys() if wanted[i] != mirrored[i])
            if missing or extra or stale:
                problems[entity.rest_name] = {
                    "missing": missing[:10],
                    "outside the scope or gone": extra[:10],
                    "stale": stale[:10],
                }
        return problems
    finally:
        await db.close()


async def _converges(
    pipeline: Pipeline,
    name: str,
    sim: Any,
    entities: list[EntitySpec],
    expected: Expected,
    what: str,
) -> float:
    """Wait until the mirror holds exactly the expected rows; returns how long it took."""
    began = time.monotonic()
    last: dict[str, Any] = {}

    async def equal() -> bool:
        nonlocal last
        last = await _differences(pipeline, name, sim, entities, expected)
        return not last

    try:
        await eventually(equal, within=CONVERGES_WITHIN, interval=timedelta(milliseconds=500),
                         what=what)  # fmt: skip
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {last}\n{pipeline.logs(60)}") from exc
    return time.monotonic() - began


def _by_company(companies: set[int]) -> Expected:
    def expected(entity: EntitySpec, row: Mapping[str, Any]) -> bool:
        if entity is COMPANIES:
            return row["id"] in companies
        return row.get("companyID") in companies

    return expected


def _by_queue(queues: set[int], sim: Any) -> Expected:
    tickets = {t["id"]: t for t in truth(sim, "Tickets")}

    def expected(entity: EntitySpec, row: Mapping[str, Any]) -> bool:
        if entity is TICKETS:
            return row.get("queueID") in queues
        parent = tickets.get(row.get("ticketID"))  # type: ignore[arg-type]
        return parent is not None and parent.get("queueID") in queues

    return expected


async def _out_of_scope_ids(pipeline: Pipeline, entity: EntitySpec) -> set[int]:
    """Ids whose out-of-scope event (``ce_reason: out_of_scope``) is on the change topic."""
    found = set()
    for message in await read_topic(pipeline.bootstrap, pipeline.topics.changes(entity)):
        headers = {k: v.decode() for k, v in message.headers}
        if message.value is not None and headers.get("ce_reason") == "out_of_scope":
            found.add(int(headers["ce_subject"]))
    return found


async def test_a_company_scope_follows_its_edits_company_0_and_children_included(
    pipeline: Pipeline,
):
    entities = [COMPANIES, CONTACTS, CONFIGURATION_ITEMS]
    async with run_simulator(callout_tenant(41, companies=12, tickets=10)) as sim:
        # Company 0 is the tenant's own; give it a contact and a configuration item of its own.
        own_contact = sim.create_entity(
            "Contacts", {"companyID": 0, "firstName": "Own", "lastName": "Staff", "isActive": 1}
        )
        own_item = sim.create_entity(
            "ConfigurationItems", {"companyID": 0, "referenceTitle": "Own server", "isActive": True}
        )
        others = sorted({c["id"] for c in truth(sim, "Companies")} - {0})
        with_children = [
            c for c in others if any(r.get("companyID") == c for r in truth(sim, "Contacts"))
        ]
        a, b = with_children[0], with_children[1]
        await _connect(pipeline, "acme", sim, {"companies": {"company_ids": [0, a]}})
        await pipeline.start_services(sweeps=True)
        await pipeline.provision("acme")
        # The first load, on its own: parents before children, so company 0's children are in.
        await _converges(pipeline, "acme", sim, entities, _by_company({0, a}), "the first load")
        mirrored = await _differences(pipeline, "acme", sim, entities, lambda _e, _r: True)
        assert own_contact["id"] not in mirrored.get("Contacts", {}).get("missing", [])
        assert own_item["id"] not in mirrored.get("ConfigurationItems", {}).get("missing", [])

        # Widened: company b and its children are read from Autotask.
        await _edit_scope(pipeline, "acme", {"companies": {"company_ids": [0, a, b]}})
        widened = await _converges(
            pipeline, "acme", sim, entities, _by_company({0, a, b}), "the widened scope"
        )
        # Narrowed: company a and its children leave, published as out of scope.
        await _edit_scope(pipeline, "acme", {"companies": {"company_ids": [0, b]}})
        narrowed = await _converges(
            pipeline, "acme", sim, entities, _by_company({0, b}), "the narrowed scope"
        )
        left_contacts = {r["id"] for r in truth(sim, "Contacts") if r.get("companyID") == a}
        assert left_contacts
        assert left_contacts <= await _out_of_scope_ids(pipeline, CONTACTS)
        assert a in await _out_of_scope_ids(pipeline, COMPANIES)
        # Company 0 out of the scope, then back.
        await _edit_scope(pipeline, "acme", {"companies": {"company_ids": [b]}})
        await _converges(pipeline, "acme", sim, entities, _by_company({b}), "company 0 out")
        await _edit_scope(pipeline, "acme", {"companies": {"company_ids": [0, b]}})
        await _converges(pipeline, "acme", sim, entities, _by_company({0, b}), "company 0 back")
        print(f"company scope: widened in {widened:.1f} s, narrowed in {narrowed:.1f} s")


async def test_a_ticket_scope_follows_its_edits_and_tickets_moving_across_it(
    pipeline: Pipeline,
):
    entities = [TICKETS, TICKET_NOTES]
    async with run_simulator(callout_tenant(42, companies=6, tickets=60)) as sim:
        tickets = truth(sim, "Tickets")
        notes = truth(sim, "TicketNotes")
        queues = sorted({t["queueID"] for t in tickets if t.get("queueID") is not None})
        assert len(queues) >= 3, queues
        noted = {n["ticketID"] for n in notes}
        q1, q2, q3 = queues[:3]
        await _connect(pipeline, "acme", sim, {"tickets": {"include_queues": [q1]}})
        await pipeline.start_services(sweeps=True)
        await pipeline.provision("acme")
        await _converges(pipeline, "acme", sim, entities, _by_queue({q1}, sim), "the first load")

        await _edit_scope(pipeline, "acme", {"tickets": {"include_queues": [q1, q2]}})
        widened = await _converges(
            pipeline, "acme", sim, entities, _by_queue({q1, q2}, sim), "the widened scope"
        )
        # A ticket with notes moves into the scope by its own edit: its notes come with it.
        mover = next(t for t in tickets if t["queueID"] == q3 and t["id"] in noted)
        sim.update_entity("Tickets", mover["id"], {"queueID": q1})
        moved_in = await _converges(
            pipeline, "acme", sim, entities, _by_queue({q1, q2}, sim), "a ticket moved in"
        )
        # ...and out again: its notes leave with it.
        sim.update_entity("Tickets", mover["id"], {"queueID": q3})
        await _converges(
            pipeline, "acme", sim, entities, _by_queue({q1, q2}, sim), "a ticket moved out"
        )
        mover_notes = {n["id"] for n in notes if n["ticketID"] == mover["id"]}
        assert mover_notes <= await _out_of_scope_ids(pipeline, TICKET_NOTES)

        await _edit_scope(pipeline, "acme", {"tickets": {"include_queues": [q2]}})
        narrowed = await _converges(
            pipeline, "acme", sim, entities, _by_queue({q2}, sim), "the narrowed scope"
        )
        print(
            f"ticket scope: widened in {widened:.1f} s, a ticket moved in with its notes in "
            f"{moved_in:.1f} s, narrowed in {narrowed:.1f} s"
        )
