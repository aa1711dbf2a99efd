"""The topic contracts in ``schemas/``: current with the code, changed only compatibly, their
examples (one of every kind of message, encoded by the real code) valid, and strict enough to
refuse what downstream must never see."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from jsonschema.exceptions import ValidationError

from shared.entities import REGISTRY, TICKETS, EntitySpec, FieldType
from shared.messages.topics import Topics
from tests.helpers.contracts import contract, validate_message
from tools.schemas import SCHEMAS_DIR, generate, incompatible_edits, value_schema_file

TOPICS = Topics()
ALL_TOPICS = [TOPICS.callouts, TOPICS.control, TOPICS.callouts_dlq] + [
    TOPICS.changes(entity) for entity in REGISTRY
]
ENTITIES = pytest.mark.parametrize("entity", REGISTRY, ids=[e.rest_name for e in REGISTRY])
Message = dict[str, Any]


def examples(topic: str) -> list[Message]:
    messages: list[Message] = json.loads((SCHEMAS_DIR / "examples" / f"{topic}.json").read_text())
    return messages


def example(entity: EntitySpec, kind: str) -> Message:
    """A fresh copy of the example message whose ``ce_type`` ends in ``kind``."""
    return copy.deepcopy(
        next(
            message
            for message in examples(TOPICS.changes(entity))
            if message["headers"]["ce_type"].endswith(f".{kind}")
        )
    )


def refused(entity: EntitySpec, message: Message) -> bool:
    try:
        validate_message(
            TOPICS.changes(entity), message["key"], message["value"], message["headers"]
        )
    except ValidationError:
        return True
    return False


def test_the_committed_contracts_equal_what_the_code_generates():
    for path, text in generate().items():
        committed = SCHEMAS_DIR / path
        assert committed.exists(), f"{path} is missing: run `python -m tools schemas`"
        assert committed.read_text() == text, f"{path}: run `python -m tools schemas`"


def test_the_code_changed_the_published_contracts_only_compatibly():
    problems = incompatible_edits(generate())
    assert problems == [], (
        "the code no longer keeps the published contract; consumers would break on:\n"
        + "\n".join(problems)
        + "\npublish the change as a new topic version (docs/adr/0011-change-topic-contract.md)"
    )


@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_every_example_keeps_its_topics_contract(topic):
    messages = examples(topic)
    assert messages
    for message in messages:
        validate_message(topic, message["key"], message["value"], message["headers"])


@ENTITIES
def test_change_examples_show_every_kind_of_message(entity):
    kinds = {m["headers"]["ce_type"].rsplit(".", 1)[1] for m in examples(TOPICS.changes(entity))}
    assert kinds == {"created", "updated", "snapshot", "deleted", "out_of_scope", "tombstone"}


def _without_z(message: Message) -> None:
    stamp = message["value"]["after"]["createDate"]
    message["value"]["after"]["createDate"] = stamp.removesuffix("Z")


def _reason_on_a_create(message: Message) -> None:
    message["value"]["source"]["reason"] = "deleted"


def _key(text: str) -> Callable[[Message], None]:
    return lambda message: message.update(key=text)


def _header(**headers: str) -> Callable[[Message], None]:
    return lambda message: message["headers"].update(headers)


BROKEN: dict[str, tuple[str, Callable[[Message], None]]] = {
    "a delete without before": ("deleted", lambda m: m["value"].update(before=None)),
    "an update without before": ("updated", lambda m: m["value"].update(before=None)),
    "a create with a before": ("created", lambda m: m["value"].update(before=m["value"]["after"])),
    "a delete with an after": ("deleted", lambda m: m["value"].update(after=m["value"]["before"])),
    "a snapshot without after": ("snapshot", lambda m: m["value"].update(after=None)),
    "a delete without reason": ("deleted", lambda m: m["value"]["source"].pop("reason")),
    "a reason on a create": ("created", _reason_on_a_create),
    "an unknown op": ("updated", lambda m: m["value"].update(op="x")),
    "version yesterday": ("updated", lambda m: m["value"]["source"].update(version="yesterday")),
    "a version without Z": (
        "updated",
        lambda m: m["value"]["source"].update(version="2026-12-01T11:59:59.870"),
    ),
    "a timestamp without Z": ("created", _without_z),
    "a negative ts_ms": ("updated", lambda m: m["value"].update(ts_ms=-1)),
    "ts_ms as text": ("updated", lambda m: m["value"].update(ts_ms="1796126400000")),
    "an extra envelope property": ("updated", lambda m: m["value"].update(patch={})),
    "an extra source property": ("updated", lambda m: m["value"]["source"].update(guess=1)),
    "an unknown origin": ("updated", lambda m: m["value"]["source"].update(origin="guess")),
    "a record without its id": ("created", lambda m: m["value"]["after"].pop("id")),
    "a record missing a standard field": ("created", lambda m: m["value"]["after"].pop("title")),
    "a null required field": ("created", lambda m: m["value"]["after"].update(status=None)),
    "a user-defined field as a number": (
        "created",
        lambda m: m["value"]["after"].update(userDefinedFields=[{"name": "Impact", "value": 3}]),
    ),
    "a key without id": ("updated", _key('{"connection":"acme"}')),
    "a key with the id as text": ("updated", _key('{"connection":"acme","id":"7012"}')),
    "a key with more": ("updated", _key('{"connection":"acme","entity":"x","id":7}')),
    "a key naming no connection": ("updated", _key('{"connection":"ACME!","id":7}')),
    "a key that is no JSON": ("updated", _key("acme:7012")),
    "an unknown ce_type": ("updated", _header(ce_type="autotask.ticket.updated")),
    "an undocumented header": ("updated", _header(secret="x")),
}  # fmt: skip


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_change_schemas_refuse_what_downstream_must_not_see(case):
    kind, breaks = BROKEN[case]
    message = example(TICKETS, kind)
    assert not refused(TICKETS, message), "the example itself keeps the contract"
    breaks(message)
    assert refused(TICKETS, message), case


WRONG: dict[FieldType, Any] = {
    "long": "7012",
    "integer": 5.5,
    "double": "1.5",
    "string": 5,
    "boolean": "true",
    "datetime": 1796126400000,
}


@ENTITIES
def test_every_typed_field_refuses_a_wrong_type(entity):
    accepted = []
    for field in entity.fields:
        message = example(entity, "updated")
        message["value"]["after"][field.name] = WRONG[field.type]
        if not refused(entity, message):
            accepted.append(field.name)
    assert accepted == []


@ENTITIES
def test_records_may_carry_fields_autotask_adds_later(entity):
    message = example(entity, "updated")
    message["value"]["after"]["fieldAddedNextRelease"] = {"any": ["shape"]}
    assert not refused(entity, message)


def test_the_callout_schema_needs_routing_facts():
    validator = contract(value_schema_file(TOPICS.callouts))
    validator.validate({"EntityType": "Ticket", "Id": 1})
    with pytest.raises(ValidationError):
        validator.validate({"EntityType": "Ticket"})
