"""Every registry entry is covered wherever the project needs it: a migration creating its mirror
table (the mirror's columns, the entry's promoted columns and UDFs, its views), a change topic
declared compacted, a scope classification, and the delete logs and webhook defaults the
services read. A failure names the entity and what it lacks. (Its Strimzi resource and
``schemas/`` contract are generated from the registry and pinned where they are generated.)

What is derived from the registry is checked through the code that derives it, so these tests
also pin that nothing keeps a hand-written list beside the registry.
"""

from __future__ import annotations

import re

import pytest

from services.provisioner.settings import ProvisionerSettings
from shared.db import connect, create_pool, discover
from shared.entities import (
    MIRROR_SCHEMA,
    REGISTRY,
    EntitySpec,
    FollowsParent,
    by_rest_name,
    default_webhook_entities,
)
from shared.messages.topics import Topics
from shared.reconcile.delete_sweep import delete_logs
from shared.scope.membership import deciding_filter, judge
from shared.scope.rules import SyncScope

SPECS = pytest.mark.parametrize("spec", REGISTRY, ids=[s.rest_name for s in REGISTRY])
TOPICS = Topics()

MIRROR_COLUMNS = {
    "connection": "text",
    "id": "bigint",
    "entity": "jsonb",
    "version": "timestamp with time zone",
    "fetched_at": "timestamp with time zone",
    "content_hash": "bytea",
    "synced_at": "timestamp with time zone",
    "deleted_at": "timestamp with time zone",
    "out_of_scope_at": "timestamp with time zone",
    "origin": "text",
    "callout_sequence": "bigint",
}
"""What the monotonic upsert (shared/mirror/store.py) reads and writes in every mirror table."""
PG_TYPES = {
    "bigint": "bigint",
    "integer": "integer",
    "text": "text",
    "boolean": "boolean",
    "timestamptz": "timestamp with time zone",
}
FIX_MIGRATION = (
    "add a migration in shared/db/migrations/ creating it in the schema autotask, with its views "
    "and comments (like the contracts table in 0007 and 0011)"
)


# --- migrations -----------------------------------------------------------------------------
@SPECS
def test_a_migration_creates_the_mirror_table(spec: EntitySpec):
    creates = re.compile(
        rf"\bCREATE\s+TABLE\s+({MIRROR_SCHEMA}\.)?{re.escape(spec.table)}\s*\(", re.IGNORECASE
    )
    assert any(creates.search(m.sql) for m in discover()), (
        f"{spec.rest_name}: no migration creates its mirror table {spec.table}: {FIX_MIGRATION}"
    )


@pytest.mark.integration
async def test_each_mirror_table_has_the_mirror_and_promoted_columns(migrated_database: str):
    db = await connect(migrated_database)
    try:
        rows = await db.fetch(
            "SELECT table_name, column_name, data_type, is_generated, generation_expression "
            "FROM information_schema.columns WHERE table_schema = $1",
            MIRROR_SCHEMA,
        )
        keys = await db.fetch(
            "SELECT c.relname AS table_name, array_agg(a.attname::text ORDER BY a.attname) AS cols "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indisprimary AND c.relnamespace = $1::regnamespace "
            "GROUP BY c.relname",
            MIRROR_SCHEMA,
        )
        views = {
            r["table_name"]
            for r in await db.fetch(
                "SELECT table_name FROM information_schema.views WHERE table_schema = $1",
                MIRROR_SCHEMA,
            )
        }
    finally:
        await db.close()
    tables: dict[str, dict[str, dict[str, str | None]]] = {}
    for row in rows:
        tables.setdefault(row["table_name"], {})[row["column_name"]] = dict(row)
    primary_keys = {r["table_name"]: sorted(r["cols"]) for r in keys}

    problems: list[str] = []
    for spec in REGISTRY:
        columns = tables.get(spec.table)
        if columns is None:
            problems.append(f"{spec.rest_name}: no table {spec.table}: {FIX_MIGRATION}")
            continue
        for name, pg_type in MIRROR_COLUMNS.items():
            found = columns.get(name)
            if found is None or found["data_type"] != pg_type:
                problems.append(f"{spec.table}.{name}: want {pg_type}, found {found}")
        if primary_keys.get(spec.table) != ["connection", "id"]:
            problems.append(f"{spec.table}: primary key must be (connection, id)")
        generated = {n for n, c in columns.items() if c["is_generated"] == "ALWAYS"}
        for promoted in spec.promoted:
            found = columns.get(promoted.column)
            want = PG_TYPES[promoted.sql_type]
            if found is None:
                problems.append(f"{spec.table}.{promoted.column}: missing ({promoted})")
            elif found["data_type"] != want or found["is_generated"] != "ALWAYS":
                problems.append(
                    f"{spec.table}.{promoted.column}: want {want} generated from the entity's "
                    f"jsonb, found {found['data_type']} (generated: {found['is_generated']})"
                )
            elif f"'{promoted.json_field}'" not in (found["generation_expression"] or ""):
                problems.append(
                    f"{spec.table}.{promoted.column}: not generated from "
                    f"{promoted.json_field!r}: {found['generation_expression']}"
                )
        udfs = columns.get("udfs")
        if spec.udfs and (
            udfs is None or (udfs["data_type"], udfs["is_generated"]) != ("jsonb", "ALWAYS")
        ):
            problems.append(f"{spec.table}.udfs: want jsonb generated from userDefinedFields")
        unlisted = (
            generated - {c.column for c in spec.promoted} - ({"udfs"} if spec.udfs else set())
        )
        if unlisted:
            problems.append(
                f"{spec.table}: generated columns {sorted(unlisted)} are not in the registry's "
                "promoted columns (the topic schemas describe those)"
            )
        for view in (f"{spec.table}_labeled", f"{spec.table}_live"):
            if view not in views:
                problems.append(
                    f"{spec.rest_name}: no view {MIRROR_SCHEMA}.{view} (picklist labels beside "
                    "the mirror, docs/consumers.md): create it in the table's migration"
                )
    assert problems == []


# --- topics and their contracts -------------------------------------------------------------
@SPECS
def test_the_change_topic_is_declared_compacted(spec: EntitySpec):
    declared = {t.name: t for t in TOPICS.declarations()}
    topic = TOPICS.changes(spec)
    assert topic in declared, f"{spec.rest_name}: no topic declaration for {topic}"
    assert declared[topic].config.get("cleanup.policy") == "compact"


# The topic's Strimzi resource and its schema files are generated from the registry and pinned
# by tests/deploy/test_policies.py (topics.yaml equals what the code generates) and
# tests/contracts/test_topic_schemas.py (every committed contract equals the generated one).


# --- scope ----------------------------------------------------------------------------------
RESTRICT_EVERYTHING = {"tickets": {"include_queues": [-1]}, "companies": {"company_ids": [-1]}}
"""Each row filter of the scope, set so that nothing matches."""


@SPECS
def test_the_scope_judge_can_classify_it(spec: EntitySpec):
    deciding_filter(spec, SyncScope())  # a ConfigError names what is wrong


@pytest.mark.integration
async def test_a_restricted_scope_keeps_out_every_scoped_entity(migrated_database: str):
    """The failure this guards against: an entity the judge does not know about lets every row
    in while the connection's scope is restricted."""
    assert set(RESTRICT_EVERYTHING) == set(SyncScope.filter_sections()), (
        "a new scope section: say in RESTRICT_EVERYTHING how it admits nothing"
    )
    scope = SyncScope.parse(RESTRICT_EVERYTHING)
    pool = await create_pool(migrated_database, max_size=2)
    try:
        let_in = []
        for spec in REGISTRY:
            row: dict[str, object] = {"id": 1}
            if isinstance(spec.scope, FollowsParent):
                row[spec.scope.parent_id_field] = 1  # a parent the mirror does not hold
            verdict = await judge(pool, "acme", spec, {1: row}, scope)
            if verdict[1] != (deciding_filter(spec, scope) is None):
                let_in.append(spec.rest_name)
    finally:
        await pool.close()
    assert let_in == [], "these let rows in that a restricted scope keeps out"


# --- what the services read -----------------------------------------------------------------
@SPECS
def test_the_sweeps_read_the_delete_logs_the_registry_names(spec: EntitySpec):
    expected = set()
    if spec.delete_log:
        expected.add((spec.delete_log, spec.delete_log_id_field, False))
    if spec.child_of is not None:
        parent = by_rest_name(spec.child_of.parent)
        if parent.activity_delete_log:
            expected.add((parent.activity_delete_log, parent.activity_delete_log_id_field, True))
        if parent.delete_log:
            expected.add((parent.delete_log, parent.delete_log_id_field, True))
    read = {(log.name, log.id_field, log.parent) for log in delete_logs(spec)}
    assert read == expected, f"{spec.rest_name}: shared/reconcile/delete_sweep.py reads {read}"


def test_the_provisioner_defaults_to_the_registry_webhooks():
    field = ProvisionerSettings.model_fields["webhook_entities"]
    default = tuple(field.get_default(call_default_factory=True))
    assert default == tuple(s.rest_name for s in default_webhook_entities()), (
        "AUTOTASK_SYNC_WEBHOOK_ENTITIES' default differs from the registry's webhook_by_default"
    )
