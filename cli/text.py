"""How the CLI writes values for people: one spelling of yes/no, times and their distance.

Every command's human output goes through these, so the same fact reads the same on every
screen: ``yes``/``no`` (never ``True``/``None``), ISO 8601 times with ``T`` and the offset, and a
relative distance that says ``ago`` for the past and ``in`` for the future (a lockout's end).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def yes_no(value: Any) -> str:
    """``yes`` or ``no``; ``None`` (never set) reads ``no``."""
    return "yes" if value else "no"


def or_dash(value: Any) -> str:
    """``value``, or ``-`` when there is none (0 is a real Autotask id, shown as 0)."""
    return "-" if value is None else str(value)


def iso(value: datetime | None) -> str:
    """``2026-12-07T08:15:02+00:00`` (UTC, whole seconds); ``-`` for no time."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def distance(value: datetime, now: datetime | None = None) -> str:
    """``42 s ago``, ``in 5 min``, ``3.2 h ago``: how far ``value`` is from ``now``."""
    now = now or datetime.now(UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = (now - value).total_seconds()
    size = abs(seconds)
    if size < 120:
        amount = f"{size:.0f} s"
    elif size < 7200:
        amount = f"{size / 60:.0f} min"
    elif size < 172_800:
        amount = f"{size / 3600:.1f} h"
    else:
        amount = f"{size / 86_400:.1f} d"
    return f"{amount} ago" if seconds >= 0 else f"in {amount}"


def when(value: Any, now: datetime | None = None) -> str:
    """``2026-12-07T08:15:02+00:00 (42 s ago)``; ``-`` when ``value`` is not a time."""
    if not isinstance(value, datetime):
        return "-"
    return f"{iso(value)} ({distance(value, now)})"
