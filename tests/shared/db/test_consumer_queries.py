"""docs/consumers.md holds true: every ``sql`` example in it runs as the role downstream readers
get, against a mirror written by the product's own write path, and answers what it says it
answers; its table of the mirror names every table and typed column of the registry."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.db import connect
from shared.entities import COMPANIES, CONTACTS, MIRROR_SCHEMA, REGISTRY, TICKETS, EntitySpec
from shared.mirror.store import Snapshot, mark_deleted, upsert
from shared.reconcile import runs
from shared.reconcile.picklists import PicklistEntry, replace

DOC = Path(__file__).parents[3] / "docs" / "consumers.md"
SQL_BLOCK = re.compile(r"^```sql\n(?P<query>.*?)^```", re.MULTILINE | re.DOTALL)
NOW = datetime.now(UTC).replace(microsecond=0)
STAMP = "2026-11-01T12:00:00Z"


def doc_queries() -> dict[str, str]:
    """``title -> query`` of every ``sql`` block, titled by its first line (``-- title``)."""
    queries = {}
    for match in SQL_BLOCK.finditer(DOC.read_text()):
        query = match["query"]
        title = query.splitlines()[0]
        assert title.startswith("-- "), f"a sql block in {DOC.name} without a title: {query}"
        queries[title.removeprefix("-- ")] = query
    return queries


def test_the_docs_name_every_mirror_table_and_typed_column():
    lines = DOC.read_text().splitlines()
    missing = []
    for spec in REGISTRY:
        row = next((line for line in lines if line.startswith(f"| `{spec.mirror_table}` |")), "")
        missing += [
            f"{spec.table}.{column}"
            for column in [c.column for c in spec.promoted] + (["udfs"] if spec.udfs else [])
            if f"`{column}`" not in row
        ]
    assert missing == [], f"{DOC.name}, 'Tables and key columns', lacks these"


@pytest.mark.integration
async def test_the_docs_name_every_label_column_of_the_views(migrated_database: str):
    lines = DOC.read_text().splitlines()
    db = await connect(migrated_database)
    try:
        labels = await db.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name LIKE '%\\_live' "
            "AND column_name LIKE '%\\_label'",
            MIRROR_SCHEMA,
        )
    finally:
        await db.close()
    missing = []
    for label in labels:
        row = next((line for line in lines if line.startswith(f"| `{label['table_name']}`")), "")
        if f"`{label['column_name']}`" not in row:
            missing.append(f"{label['table_name']}.{label['column_name']}")
    assert labels
    assert missing == [], f"{DOC.name}, 'The _live and _labeled views', lacks these"


def ticket(entity_id: int, company: int, queue: int, status: int, title: str, **extra: Any):
    return {
        "id": entity_id,
        "title": title,
        "companyID": company,
        "queueID": queue,
        "status": status,
        "lastTrackedModificationDateTime": STAMP,
        **extra,
    }


def impact(level: str) -> dict[str, Any]:
    return {"userDefinedFields": [{"name": "Customer Impact", "value": level}]}


# A small tenant "acme", and a ticket, company, contact and queue label of another connection
# that no query about acme may count.
ACME_COMPANIES = [
    {"id": 100, "companyName": "Contoso", "companyType": 1},
    {"id": 101, "companyName": "Fabrikam", "companyType": 1},
    {"id": 102, "companyName": "Gone Ltd", "companyType": 1},  # deleted
    {"id": 103, "companyName": "Northwind", "companyType": 1},  # no tickets
]
ACME_TICKETS = [
    ticket(1, 100, 8, 1, "Printer down"),
    ticket(2, 100, 8, 5, "Password reset"),  # complete
    ticket(3, 101, 9, 1, "VPN drops"),
    ticket(4, 100, 8, 1, "Duplicate"),  # deleted
    ticket(5, 101, 8, 1, "Moved away"),  # out of scope
    ticket(6, 100, 8, 8, "Server on fire", **impact("High")),
    ticket(7, 100, 8, 1, "New laptop", **impact("Low")),
]
ACME_CONTACTS = [
    {"id": 200, "companyID": 100, "firstName": "Ada", "lastName": "Lovelace",
     "emailAddress": "ada@contoso.example", "isActive": 1},
    {"id": 201, "companyID": 100, "firstName": "Bob", "lastName": "Byron",
     "emailAddress": "bob@contoso.example", "isActive": 0},
    {"id": 202, "companyID": 101, "firstName": "Cy", "lastName": "Fab",
     "emailAddress": "cy@fabrikam.example", "isActive": 1},
    {"id": 203, "companyID": 100, "firstName": "Dee", "lastName": "Left",
     "emailAddress": "dee@contoso.example", "isActive": 1},  # deleted
]  # fmt: skip
ACME_LABELS = [
    PicklistEntry("status", "1", "New"),
    PicklistEntry("status", "5", "Complete"),
    PicklistEntry("status", "8", "In Progress"),
    PicklistEntry("queueID", "8", "Level I Support"),
    PicklistEntry("queueID", "9", "Level II Support"),
]


async def _write(db: Any, spec: EntitySpec, connection: str, rows: list[dict], **options: Any):
    await upsert(
        db,
        spec,
        connection,
        [Snapshot(id=row["id"], entity=row, fetched_at=NOW, **options) for row in rows],
        origin="sweep",
    )


@pytest.fixture
async def expected(migrated_database: str) -> dict[str, list[tuple[Any, ...]]]:
    """The mirror of acme written through the product's write path; returns, per example of
    the docs, the rows it must answer."""
    db = await connect(migrated_database)
    try:
        await _write(db, COMPANIES, "acme", ACME_COMPANIES)
        await _write(db, TICKETS, "acme", ACME_TICKETS)
        await _write(db, CONTACTS, "acme", ACME_CONTACTS)
        deleted_at = NOW - timedelta(days=1)
        for spec, gone in ((COMPANIES, 102), (TICKETS, 4), (CONTACTS, 203)):
            await mark_deleted(db, spec, "acme", [gone], at=deleted_at, origin="sweep")
        left = [t for t in ACME_TICKETS if t["id"] == 5]
        await upsert(db, TICKETS, "acme",
                     [Snapshot(id=5, entity=left[0], fetched_at=NOW + timedelta(seconds=1),
                               in_scope=False)], origin="sweep")  # fmt: skip
        await replace(db, "acme", "Tickets", picklists=ACME_LABELS, udfs=[])

        await _write(db, COMPANIES, "other", [{"id": 100, "companyName": "Other Co"}])
        await _write(db, TICKETS, "other", [ticket(1, 100, 8, 1, "Elsewhere", **impact("High"))])
        await _write(db, CONTACTS, "other", [{**ACME_CONTACTS[0], "firstName": "Eve"}])
        await replace(db, "other", "Tickets", udfs=[],
                      picklists=[PicklistEntry("queueID", "8", "Other queue")])  # fmt: skip

        sweeps = {}
        for connection, entity, outcomes in (
            ("acme", "Tickets", ("succeeded", "failed")),
            ("acme", "Companies", ("succeeded",)),
            ("other", "Tickets", ("succeeded",)),
        ):
            for status in outcomes:
                run = await runs.start(
                    db,
                    connection=connection,
                    entity=entity,
                    mode="incremental",
                    trigger="schedule",
                    requested_at=NOW,
                )
                done = await runs.finish(db, run, status=status, counts=runs.Counts())
                sweeps[connection, entity, status] = done.finished_at
    finally:
        await db.close()
    return {
        "Open tickets per queue": [("Level I Support", 3), ("Level II Support", 1)],
        "Tickets per company, companies without tickets included": [
            ("Contoso", 4),
            ("Fabrikam", 1),
            ("Northwind", 0),
        ],
        "Active contacts of a company": [("Ada", "Lovelace", "ada@contoso.example")],
        "Tickets by a user-defined field": [(6, "Server on fire", "High")],
        "Tickets deleted in Autotask in the last 7 days": [(4, "Duplicate", deleted_at)],
        "Last sync per entity": [
            ("Companies", "incremental", "succeeded",
             sweeps["acme", "Companies", "succeeded"], sweeps["acme", "Companies", "succeeded"]),
            ("Tickets", "incremental", "failed",
             sweeps["acme", "Tickets", "failed"], sweeps["acme", "Tickets", "succeeded"]),
        ],
    }  # fmt: skip


@pytest.mark.integration
async def test_every_example_query_answers_what_the_docs_say(
    expected: dict[str, list[tuple[Any, ...]]], reader_dsn: str
):
    queries = doc_queries()
    assert set(queries) == set(expected), "an example without expected rows here, or gone"
    reader = await connect(reader_dsn)
    try:
        answers = {title: [tuple(r) for r in await reader.fetch(q)] for title, q in queries.items()}
    finally:
        await reader.close()
    assert answers == expected
