"""Autotask timestamps: parse what the API returns, format what it expects.

Autotask stores and returns UTC, but returns it both with and without a trailing ``Z``
(``2012-05-25T15:14:29.033Z`` and ``2016-03-30T13:10:35.563``) and .NET may print seven
fractional digits (autotask-api.md §3). Every value is parsed to an aware UTC datetime; values we
send are UTC ISO-8601 with milliseconds and ``Z``, the form the API documents for filters.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

# Seconds fractions longer than microseconds (.NET "o" format has 7 digits) are cut, not rounded,
# so parsing never moves a value forward in time (a watermark must not skip a row).
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_timestamp(value: str) -> datetime:
    """Parse an Autotask timestamp into an aware UTC datetime.

    Accepts a trailing ``Z``, an explicit offset, or no zone at all (meaning UTC), any number
    of fractional digits, and date-only values (midnight UTC). Raises ``ValueError`` on
    anything else.
    """
    text = value.strip()
    if not text:
        raise ValueError("empty timestamp")
    text = _LONG_FRACTION.sub(r"\1", text)
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        # No zone means UTC: Autotask never returns local time through the API.
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_optional_timestamp(value: object) -> datetime | None:
    """Like :func:`parse_timestamp`, but None and empty strings give None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be a string, got {type(value).__name__}")
    return parse_timestamp(value)


def format_timestamp(value: datetime | date) -> str:
    """Format for the API: ``2025-04-08T19:18:19.738Z`` (UTC, milliseconds, ``Z``).

    Naive datetimes are refused: guessing their zone is how watermarks drift by hours. A
    ``date`` becomes midnight UTC, which is what Autotask stores for date-only fields.
    """
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("refusing a naive datetime; attach a timezone (e.g. datetime.now(UTC))")
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


__all__ = ["format_timestamp", "parse_optional_timestamp", "parse_timestamp"]
