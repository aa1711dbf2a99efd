"""The monotonic upsert against real PostgreSQL: never backwards, no-ops detected, deletes stick,
scope respected, and concurrent writers cannot regress a row."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from shared.db import connect, create_pool
from shared.entities import COMPANIES, RESOURCES, TICKETS
from shared.mirror.store import Snapshot, live_rows, mark_deleted, upsert

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def ticket(entity_id: int, minute: int, title: str = "Printer down", **extra) -> dict:
    moment = T0 + timedelta(minutes=minute)
    stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "id": entity_id,
        "title": title,
        "status": 1,
        "queueID": 8,
        "lastTrackedModificationDateTime": stamp,
        **extra,
    }


def snap(entity: dict, fetched_minute: float, **options) -> Snapshot:
    return Snapshot(
        id=entity["id"], entity=entity, fetched_at=T0 + timedelta(minutes=fetched_minute), **options
    )


@pytest_asyncio.fixture
async def db(migrated_database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(migrated_database)
    try:
        yield connection
    finally:
        await connection.close()


async def test_create_update_unchanged_stale(db):
    [created] = await upsert(db, TICKETS, "acme", [snap(ticket(1, 0), 1)], origin="webhook")
    assert created.outcome == "created"
    assert created.op == "c"
    assert created.after == ticket(1, 0)

    [same] = await upsert(db, TICKETS, "acme", [snap(ticket(1, 0), 2)], origin="sweep")
    assert (same.outcome, same.op) == ("unchanged", None)

    [updated] = await upsert(
        db, TICKETS, "acme", [snap(ticket(1, 5, "Fixed"), 6)], origin="webhook"
    )
    assert (updated.outcome, updated.op) == ("updated", "u")
    assert updated.before == ticket(1, 0)
    assert updated.after == ticket(1, 5, "Fixed")

    [stale] = await upsert(db, TICKETS, "acme", [snap(ticket(1, 3, "Old"), 9)], origin="sweep")
    assert stale.outcome == "stale"
    assert (await live_rows(db, TICKETS, "acme"))[1]["title"] == "Fixed"
    row = await db.fetchrow("SELECT * FROM autotask.tickets WHERE connection = 'acme' AND id = 1")
    assert row["origin"] == "webhook"
    assert (row["ticket_number"], row["status"], row["queue_id"]) == (None, 1, 8)


async def test_same_version_later_read_wins_earlier_read_loses(db):
    await upsert(db, TICKETS, "acme", [snap(ticket(2, 0, "A"), 10)], origin="webhook")
    # Fields Autotask does not track change without a new version: the later read wins...
    [later] = await upsert(db, TICKETS, "acme", [snap(ticket(2, 0, "B"), 11)], origin="sweep")
    assert later.outcome == "updated"
    # ...and a read made earlier, arriving late, does not.
    [earlier] = await upsert(db, TICKETS, "acme", [snap(ticket(2, 0, "C"), 5)], origin="sweep")
    assert earlier.outcome == "stale"
    assert (await live_rows(db, TICKETS, "acme"))[2]["title"] == "B"


async def test_deletes_are_idempotent_and_an_earlier_read_cannot_resurrect(db):
    await upsert(db, TICKETS, "acme", [snap(ticket(3, 0), 1)], origin="webhook")
    [deleted] = await mark_deleted(
        db, TICKETS, "acme", [3], at=T0 + timedelta(minutes=5), origin="webhook"
    )
    assert (deleted.outcome, deleted.op, deleted.reason) == ("deleted", "d", "deleted")
    assert deleted.before == ticket(3, 0)
    [again] = await mark_deleted(
        db, TICKETS, "acme", [3], at=T0 + timedelta(minutes=6), origin="sweep"
    )
    assert (again.outcome, again.op) == ("already_deleted", None)

    [late] = await upsert(db, TICKETS, "acme", [snap(ticket(3, 4, "late"), 4)], origin="webhook")
    assert late.outcome == "stale"
    assert 3 not in await live_rows(db, TICKETS, "acme")

    # An id deleted before the mirror ever had it gets a placeholder that blocks older reads.
    [never] = await mark_deleted(
        db, TICKETS, "acme", [4], at=T0 + timedelta(minutes=5), origin="webhook"
    )
    assert (never.outcome, never.op) == ("already_deleted", None)
    [old_read] = await upsert(db, TICKETS, "acme", [snap(ticket(4, 1), 2)], origin="sweep")
    assert old_read.outcome == "stale"
    # A read made after the delete means it exists again: it comes back as created.
    [back] = await upsert(db, TICKETS, "acme", [snap(ticket(4, 9), 9)], origin="sweep")
    assert (back.outcome, back.op) == ("created", "c")


async def test_out_of_scope_entities_never_enter_and_leavers_are_marked(db):
    [skipped] = await upsert(
        db, TICKETS, "acme", [snap(ticket(5, 0, queueID=99), 1, in_scope=False)], origin="webhook"
    )
    assert (skipped.outcome, skipped.op) == ("out_of_scope_skipped", None)
    assert await db.fetchval("SELECT count(*) FROM autotask.tickets WHERE id = 5") == 0

    await upsert(db, TICKETS, "acme", [snap(ticket(6, 0), 1)], origin="webhook")
    [left] = await upsert(
        db, TICKETS, "acme", [snap(ticket(6, 2, queueID=99), 3, in_scope=False)], origin="webhook"
    )
    assert (left.outcome, left.op, left.reason) == ("out_of_scope", "d", "out_of_scope")
    assert left.before == ticket(6, 0)
    assert 6 not in await live_rows(db, TICKETS, "acme")
    [returned] = await upsert(db, TICKETS, "acme", [snap(ticket(6, 4), 5)], origin="sweep")
    assert (returned.outcome, returned.op) == ("created", "c")


async def test_connections_are_kept_apart_and_entities_without_versions_use_read_time(db):
    await upsert(db, TICKETS, "acme", [snap(ticket(7, 0, "acme"), 1)], origin="webhook")
    await upsert(db, TICKETS, "globex", [snap(ticket(7, 0, "globex"), 1)], origin="webhook")
    assert (await live_rows(db, TICKETS, "acme"))[7]["title"] == "acme"
    assert (await live_rows(db, TICKETS, "globex"))[7]["title"] == "globex"

    resource = {"id": 9, "userName": "jdoe", "isActive": True}
    await upsert(db, RESOURCES, "acme", [snap(resource, 1)], origin="sweep")
    [older] = await upsert(
        db, RESOURCES, "acme", [snap({**resource, "isActive": False}, 0)], origin="sweep"
    )
    assert older.outcome == "stale"
    [newer] = await upsert(
        db, RESOURCES, "acme", [snap({**resource, "isActive": False}, 2)], origin="sweep"
    )
    assert newer.outcome == "updated"


async def test_a_bulk_write_with_duplicates_keeps_the_newest_per_id(db):
    batch = [snap(ticket(i % 50, i, f"v{i}"), i) for i in range(500)]
    changes = await upsert(db, TICKETS, "acme", batch, origin="backfill")
    assert len(changes) == 50
    rows = await live_rows(db, TICKETS, "acme")
    assert {rows[i]["title"] for i in range(50)} == {f"v{450 + i}" for i in range(50)}


async def test_promoted_columns_tolerate_unexpected_shapes(db):
    company = {"id": 1, "companyName": "Acme", "companyType": "not-a-number", "isActive": "yes",
               "lastTrackedModifiedDateTime": "2026-11-01T12:00:00Z"}  # fmt: skip
    [created] = await upsert(db, COMPANIES, "acme", [snap(company, 1)], origin="sweep")
    assert created.outcome == "created"
    row = await db.fetchrow("SELECT company_type, is_active, company_name FROM autotask.companies")
    assert tuple(row) == (None, None, "Acme")


async def test_concurrent_writers_never_make_a_row_go_backwards(migrated_database):
    """Webhook path and sweep racing on the same rows with random versions: every row ends at
    its newest version, whatever the interleaving."""
    pool = await create_pool(migrated_database, min_size=4, max_size=8)
    rng = random.Random(7)
    ids = list(range(1, 21))
    writes = [(rng.choice(ids), rng.randrange(1000)) for _ in range(600)]
    newest = {}
    for entity_id, minute in writes:
        newest[entity_id] = max(newest.get(entity_id, -1), minute)

    async def writer(chunk: list[tuple[int, int]], origin: str) -> None:
        for start in range(0, len(chunk), 15):
            part = chunk[start : start + 15]
            async with pool.acquire() as db:
                await upsert(
                    db,
                    TICKETS,
                    "acme",
                    [snap(ticket(i, m, f"v{m}"), m) for i, m in part],
                    origin=origin,  # type: ignore[arg-type]
                )

    try:
        await asyncio.gather(
            *(writer(writes[k::6], "webhook" if k % 2 else "sweep") for k in range(6))
        )
        async with pool.acquire() as db:
            rows = await live_rows(db, TICKETS, "acme")
    finally:
        await pool.close()
    assert {i: rows[i]["title"] for i in newest} == {i: f"v{m}" for i, m in newest.items()}
