"""Everything about the client that can be tuned, with production defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from shared.autotask._limiter import LimiterConfig, Priority
from shared.autotask._retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Client tuning. Tests usually only swap the clock (``ManualClock``), not these."""

    request_timeout: timedelta = timedelta(seconds=60)
    """One HTTP request, body included."""
    connect_timeout: timedelta = timedelta(seconds=10)
    zone_cache: timedelta = timedelta(hours=12)
    """How long a discovered zone is trusted (django-autotask: 12 h, go-autotask: 24 h);
    a 401 re-discovers it earlier."""
    batch_size: int = 200
    """Ids per ``in`` query in fetch_by_ids (GDS uses 200, django-autotask 400; max 500)."""
    max_connections: int = 32
    """TCP connections of the session the client creates (ignored for a borrowed one)."""
    default_priority: Priority = Priority.WEBHOOK
    """Priority of calls that do not pass one."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limiter: LimiterConfig = field(default_factory=LimiterConfig)


__all__ = ["ClientConfig"]
