"""The topic contracts in ``schemas/``: current with the code, examples valid, and the schemas
strict enough to catch a wrong message."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from shared.entities import REGISTRY
from shared.messages.topics import Topics
from tools.schemas import SCHEMAS_DIR, generate

TOPICS = Topics()
ALL_TOPICS = [TOPICS.callouts, TOPICS.control, TOPICS.callouts_dlq] + [
    TOPICS.changes(entity) for entity in REGISTRY
]


def schema_of(topic: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS_DIR / f"{topic}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_the_committed_contracts_equal_what_the_code_generates():
    for path, text in generate().items():
        committed = SCHEMAS_DIR / path
        assert committed.exists(), f"{path} is missing: run `python -m tools schemas`"
        assert committed.read_text() == text, f"{path}: run `python -m tools schemas`"


@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_every_topic_has_a_schema_and_a_valid_example(topic):
    example = json.loads((SCHEMAS_DIR / "examples" / f"{topic}.json").read_text())
    schema_of(topic).validate(example["value"])


def test_change_schemas_refuse_what_downstream_must_not_see():
    validator = schema_of(TOPICS.changes(REGISTRY[0]))
    example = json.loads(
        (SCHEMAS_DIR / "examples" / f"{TOPICS.changes(REGISTRY[0])}.json").read_text()
    )
    good = example["value"]
    for broken in (
        {**good, "op": "x"},
        {**good, "after": {"title": "no id"}},
        {**good, "op": "d"},  # a delete with an after
        {**good, "source": {**good["source"], "origin": "guess"}},
        {k: v for k, v in good.items() if k != "ts_ms"},
    ):
        with pytest.raises(ValidationError):
            validator.validate(broken)


def test_the_callout_schema_needs_routing_facts():
    validator = schema_of(TOPICS.callouts)
    validator.validate({"EntityType": "Ticket", "Id": 1})
    with pytest.raises(ValidationError):
        validator.validate({"EntityType": "Ticket"})
