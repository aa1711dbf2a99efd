"""Check produced Kafka messages against the topic contracts in ``schemas/``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator

from tools.schemas import SCHEMAS_DIR


@lru_cache(maxsize=64)
def _validator(contract: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS_DIR / f"{contract}.schema.json").read_text()))


def contract_of(topic: str) -> str:
    """The default topic name whose contract applies (``w123.tickets.v1`` -> ``autotask...``)."""
    return "autotask." + topic.split(".", 1)[1]


def assert_valid(topic: str, messages: Iterable[Any]) -> int:
    """Validate each non-tombstone JSON value read from ``topic``; returns how many."""
    validator = _validator(contract_of(topic))
    checked = 0
    for message in messages:
        if message.value is None:
            continue
        validator.validate(json.loads(message.value))
        checked += 1
    return checked
