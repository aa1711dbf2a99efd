"""Time as the simulated tenant sees it: UTC, millisecond precision, strictly increasing.

Records store timestamps as the strings the API returns. Every stored value starts with the same
23-character canonical form ``YYYY-MM-DDTHH:MM:SS.fff``; some carry a trailing ``Z`` and some do
not, as the real API does (§3). Comparing the first 23 characters therefore orders timestamps
correctly whatever their suffix, which keeps query evaluation to plain string comparisons.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from typing import Literal

CANONICAL_LENGTH = 23
_MS = timedelta(milliseconds=1)


def utc_now() -> datetime:
    """The current time as a naive UTC datetime truncated to milliseconds."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def canonical(dt: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.fff`` for a naive UTC datetime."""
    return dt.isoformat(timespec="milliseconds")


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO-8601 value the way Autotask accepts it; naive values are UTC.

    Raises ValueError on anything that is not a date or date-time.
    """
    text = value.strip()
    if not text:
        raise ValueError("empty timestamp")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


def canonical_from_text(value: str) -> str:
    """Normalise any accepted timestamp text to the canonical comparison form."""
    return canonical(parse_timestamp(value))


class SimClock:
    """Hands out tenant timestamps and decides which fields carry a trailing ``Z``."""

    def __init__(self, z_policy: Literal["mixed", "always", "never"] = "mixed") -> None:
        self._z_policy = z_policy
        self._last = datetime.min
        self._z_cache: dict[tuple[str, str], bool] = {}

    def now(self) -> datetime:
        """A tenant write time: never equal to or earlier than the previous one.

        Strictly increasing stamps let clients treat last-modified values as versions.
        """
        now = utc_now()
        if now <= self._last:
            now = self._last + _MS
        self._last = now
        return now

    def wants_z(self, entity: str, field: str) -> bool:
        """Whether ``entity.field`` is returned with a trailing ``Z``.

        In "mixed" mode the choice is stable per field (a hash of its name), so one record
        shows both styles, as fixtures of the real API do.
        """
        if self._z_policy != "mixed":
            return self._z_policy == "always"
        key = (entity, field)
        cached = self._z_cache.get(key)
        if cached is None:
            cached = zlib.crc32(f"{entity}.{field}".encode()) % 2 == 0
            self._z_cache[key] = cached
        return cached

    def stamp(self, entity: str, field: str, dt: datetime) -> str:
        """The API string for ``dt`` stored in ``entity.field``."""
        text = canonical(dt)
        return text + "Z" if self.wants_z(entity, field) else text

    @staticmethod
    def event_time(dt: datetime) -> str:
        """Callout ``EventTime``: UTC with a ``Z`` (Nango's sample shape, ms precision)."""
        return canonical(dt) + "Z"


__all__ = [
    "CANONICAL_LENGTH",
    "SimClock",
    "canonical",
    "canonical_from_text",
    "parse_timestamp",
    "utc_now",
]
