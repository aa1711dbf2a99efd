"""What a consumer of a change topic reads in each message: one spelling of the entity, the kind
of change in ``ce_type`` and ``op``, a reason on removals, ids that name one change, and
tombstones that are CloudEvents of their own."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.entities import CONFIGURATION_ITEMS, REGISTRY, TICKETS, EntitySpec
from shared.messages.change import ChangeEvent, encode_change, tombstone
from shared.messages.topics import Topics

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ITEM = {"id": 42, "referenceTitle": "Laptop", "isActive": True}


def event(entity: EntitySpec = CONFIGURATION_ITEMS, **changes) -> ChangeEvent:
    base = ChangeEvent(
        connection="acme",
        entity=entity,
        id=42,
        op="u",
        before={**ITEM, "referenceTitle": "Old"},
        after=ITEM,
        version=None,
        origin="webhook",
        at=AT,
        change_seq=7,
    )
    return replace(base, **changes)


def read(change: ChangeEvent) -> tuple[dict, dict[str, str]]:
    """(value, headers) as a consumer decodes them."""
    _key, value, headers = encode_change(change)
    return json.loads(value), {name: raw.decode() for name, raw in headers}


@pytest.mark.parametrize("entity", REGISTRY, ids=[s.rest_name for s in REGISTRY])
def test_the_entity_is_spelled_as_in_its_topic_name(entity: EntitySpec):
    suffix = Topics().changes(entity).split(".")[1]
    value, headers = read(event(entity))
    assert headers["ce_type"] == f"autotask.{suffix}.updated"
    assert headers["ce_source"] == f"/autotask-sync/acme/{suffix}"
    assert value["source"]["entity"] == suffix
    # The REST name only where a consumer calls Autotask with it.
    assert value["source"]["autotask_entity"] == entity.rest_name


@pytest.mark.parametrize(
    ("op", "origin", "kind"),
    [("c", "webhook", "created"), ("u", "sweep", "updated"), ("r", "backfill", "snapshot")],
)
def test_changes_and_snapshots_say_which_they_are(op, origin, kind):
    value, headers = read(event(op=op, origin=origin))
    assert (value["op"], value["source"]["origin"]) == (op, origin)
    assert headers["ce_type"] == f"autotask.configuration_items.{kind}"
    assert headers["content-type"] == "application/json"
    assert "ce_reason" not in headers
    assert "reason" not in value["source"]


@pytest.mark.parametrize("reason", ["deleted", "out_of_scope"])
def test_removals_are_d_with_their_reason_in_type_header_and_source(reason):
    removal = event(op="d", after=None, reason=reason)
    value, headers = read(removal)
    assert (value["op"], value["after"], value["source"]["reason"]) == ("d", None, reason)
    assert headers["ce_type"] == f"autotask.configuration_items.{reason}"
    assert headers["ce_reason"] == reason

    key, body, stone = tombstone(removal)
    stone_headers = {name: raw.decode() for name, raw in stone}
    assert (key, body) == (encode_change(removal)[0], None)
    assert stone_headers == {
        "ce_specversion": "1.0",
        "ce_id": removal.tombstone_id,
        "ce_source": "/autotask-sync/acme/configuration_items",
        "ce_type": "autotask.configuration_items.tombstone",
        "ce_time": "2026-12-01T12:00:00.000Z",
        "ce_subject": "42",
        "ce_reason": reason,
    }  # no content-type: a tombstone has no data
    assert removal.tombstone_id != removal.event_id


def test_an_id_is_the_same_for_the_same_change_and_new_for_any_other():
    change = event()
    # Published again later (a redelivery): same change, same id.
    assert event(at=AT + timedelta(minutes=5)).event_id == change.event_id
    others = [
        event(change_seq=8),  # the row's next change, even with the same content
        event(after={**ITEM, "referenceTitle": "Other"}),  # other content, same counter
        event(op="r"),
        event(op="d", after=None, reason="out_of_scope"),
        event(connection="globex"),
        event(id=43),
        event(TICKETS),
    ]
    ids = [change.event_id] + [other.event_id for other in others]
    assert len(set(ids)) == len(ids)
