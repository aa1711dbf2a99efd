"""The entity registry is consistent with itself: names unique, references resolvable, and every
fact stated once so the code that derives from it cannot be handed a contradiction."""

from __future__ import annotations

import re

import pytest

from shared.entities import (
    REGISTRY,
    TICKET_NOTES,
    TICKETS,
    EntitySpec,
    FollowsParent,
    OwnFields,
    Unscoped,
    by_callout_type,
    by_rest_name,
    by_webhook_root,
    default_webhook_entities,
    find_rest_name,
    synced_entities,
    webhook_entities,
)

SPECS = pytest.mark.parametrize("spec", REGISTRY, ids=[s.rest_name for s in REGISTRY])
SQL_TYPES = {"bigint", "integer", "text", "boolean", "timestamptz"}
MIRROR_COLUMNS = {
    "connection", "id", "entity", "version", "fetched_at", "content_hash", "synced_at",
    "deleted_at", "out_of_scope_at", "origin", "callout_sequence",
}  # fmt: skip
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _unique(values: list[str]) -> list[str]:
    lowered = [v.lower() for v in values]
    return sorted({v for v in lowered if lowered.count(v) > 1})


def test_names_are_unique_across_the_registry():
    assert _unique([s.rest_name for s in REGISTRY]) == []
    assert _unique([s.table for s in REGISTRY]) == []
    assert _unique([name for s in REGISTRY for name in s.callout_types]) == []
    assert _unique([s.webhook_root for s in REGISTRY if s.webhook_root]) == []


@SPECS
def test_lookups_find_each_entry_by_every_name(spec: EntitySpec):
    assert by_rest_name(spec.rest_name.upper()) is spec
    assert find_rest_name(spec.rest_name.lower()) is spec
    for name in spec.callout_types:
        assert by_callout_type(name) is spec
    if spec.webhook_root:
        assert by_webhook_root(spec.webhook_root) is spec


@SPECS
def test_table_and_promoted_columns_are_safe_sql_names(spec: EntitySpec):
    """Table and column names go into SQL text (they come from here, never from input)."""
    assert IDENTIFIER.match(spec.table), spec.table
    columns = [c.column for c in spec.promoted]
    assert _unique(columns) == []
    for column in spec.promoted:
        assert IDENTIFIER.match(column.column), column
        assert column.column not in MIRROR_COLUMNS, f"{column.column} is a mirror column"
        assert column.sql_type in SQL_TYPES, column


@SPECS
def test_logs_name_both_the_log_and_its_id_field(spec: EntitySpec):
    assert (spec.delete_log is None) == (spec.delete_log_id_field is None)
    assert (spec.activity_delete_log is None) == (spec.activity_delete_log_id_field is None)


@SPECS
def test_scope_and_child_collection_name_registry_parents(spec: EntitySpec):
    rule = spec.scope
    assert isinstance(rule, OwnFields | FollowsParent | Unscoped), rule
    if isinstance(rule, FollowsParent):
        assert find_rest_name(rule.parent) is not None, rule.parent
        assert rule.parent.lower() != spec.rest_name.lower()
        assert rule.parent_id_field
    if spec.child_of is not None:
        assert find_rest_name(spec.child_of.parent) is not None, spec.child_of.parent
        # A child collection is in scope while its parent is.
        assert rule == FollowsParent(spec.child_of.parent, spec.child_of.parent_id_field)


@SPECS
def test_webhook_facts_only_on_entities_with_webhooks(spec: EntitySpec):
    if spec.has_webhooks:
        return
    assert spec.subscribed_fields == ()
    assert spec.display_always_fields == ()
    assert not spec.webhook_by_default
    assert spec.webhook_udf_child  # the default: nothing to say


def test_the_iterators_keep_registry_order():
    assert list(webhook_entities()) == [s for s in REGISTRY if s.webhook_root]
    assert list(default_webhook_entities()) == [s for s in REGISTRY if s.webhook_by_default]
    assert list(synced_entities()) == [s for s in REGISTRY if s.synced_by_default]


def test_facts_that_moved_into_the_registry_kept_their_values():
    assert [s.rest_name for s in default_webhook_entities()] == ["Tickets", "Companies"]
    assert [s.rest_name for s in webhook_entities() if not s.webhook_udf_child] == ["TicketNotes"]
    assert (TICKETS.activity_delete_log, TICKETS.activity_delete_log_id_field) == (
        "DeletedTicketActivityLogs",
        "ticketID",
    )
    assert TICKET_NOTES.scope == FollowsParent("Tickets", "ticketID")


def test_every_entry_states_its_scope():
    """``scope`` has no default: an entry that forgets it does not construct."""
    with pytest.raises(TypeError, match="scope"):
        EntitySpec(  # type: ignore[call-arg]
            rest_name="Opportunities",
            callout_types=("Opportunity",),
            last_modified_field="lastActivity",
            create_field="createDate",
            table="opportunities",
        )
