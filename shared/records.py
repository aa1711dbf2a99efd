"""Autotask records as the project keeps them: one form for every timestamp.

Autotask stores UTC but returns it with and without a trailing ``Z`` (autotask-api.md §3).
Cast to ``timestamptz``, a value without a zone takes the session's time zone, so the same
instant would read ``+00`` under UTC and ``-05`` under New York. Every datetime field the
registry lists (``EntitySpec.fields``) is therefore rewritten, before it enters the mirror, its
content hash and the change events, as RFC 3339 UTC with milliseconds and an explicit ``Z``
(``2026-12-01T12:00:00.000Z``): the form :func:`~shared.messages.callout.format_instant` gives
``source.version`` and ``ce_time``, fixed width so that text order is time order. A value
without a zone is UTC; an explicit offset is converted.

User-defined fields are left as they are: their types are per tenant, not in the registry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.autotask import parse_timestamp
from shared.entities import EntitySpec
from shared.messages.callout import format_instant

INSTANT_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$"
"""What every normalised timestamp matches (the topic schemas carry it: JSON Schema validators
skip ``format`` unless asked)."""


def normalize_instant(text: str) -> str:
    """``text`` (any form :func:`~shared.autotask.parse_timestamp` reads) in the one form.

    A value that is not a timestamp is returned as sent rather than dropped or refused: one odd
    value must not stop a sync, and the topic schemas flag it downstream.
    """
    if _AUTOTASK_FORM.fullmatch(text):
        return _with_z(text)
    try:
        return format_instant(parse_timestamp(text))
    except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
        return text


# The two forms Autotask returns (autotask-api.md §3) take a shortcut: the upsert normalises
# every timestamp of every record it writes, and the general path costs several times as much.
_AUTOTASK_FORM = re.compile(INSTANT_PATTERN.replace("Z$", "Z?$"))


def _with_z(text: str) -> str:
    try:
        datetime.fromisoformat(text.removesuffix("Z"))  # a real calendar date and time
    except ValueError:
        return text
    return text if text.endswith("Z") else f"{text}Z"


def normalize_record(spec: EntitySpec, record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` with every datetime field of ``spec`` normalised (nulls, absent
    fields and every other field untouched). Idempotent."""
    normalized = dict(record)
    for field in spec.fields:
        if field.type == "datetime" and isinstance(value := normalized.get(field.name), str):
            normalized[field.name] = normalize_instant(value)
    return normalized


__all__ = ["INSTANT_PATTERN", "normalize_instant", "normalize_record"]
