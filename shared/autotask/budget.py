"""The tenant's hourly API budget, as this process sees it.

Autotask allows 10,000 calls per rolling hour per tenant, shared by every integration
(autotask-api.md §5). ``ThresholdInformation`` says how much is used, but each reading is itself
a call, so the tracker reads it sparingly (every ``refresh_seconds`` or ``refresh_calls``, never
more often than ``min_refresh_seconds``) and in between adds the calls this client made. Other
integrations' calls only show up at the next reading, which is why readings are periodic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from shared.autotask._metrics import budget_used_ratio
from shared.autotask.clock import Clock
from shared.autotask.models import ThresholdInfo
from shared.errors import AuthenticationError, AutotaskError

log = structlog.get_logger(__name__)

Reader = Callable[[], Awaitable[ThresholdInfo]]


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """How often the tracker spends a call to learn the tenant's usage."""

    refresh_seconds: float = 300.0
    """Read at least this often while calls are being made."""
    refresh_calls: int = 250
    """...or after this many calls of ours since the last reading."""
    min_refresh_seconds: float = 15.0
    """Never read more often than this, even when work is paused and asking."""
    enabled: bool = True
    """False: never read; priorities then only react to 429s (benchmarks, tests)."""


class BudgetTracker:
    """Estimated share of the hourly threshold used: last reading plus our calls since."""

    def __init__(self, connection: str, config: BudgetConfig, clock: Clock) -> None:
        self._connection = connection
        self._config = config
        self._clock = clock
        self._reader: Reader | None = None
        self._reading: ThresholdInfo | None = None
        self._read_at: float | None = None
        self._attempted_at: float | None = None
        self._calls_since = 0
        self._exhausted = False
        self._lock = asyncio.Lock()

    def bind(self, reader: Reader) -> None:
        """Give the tracker its way to call ``ThresholdInformation`` (the client does this)."""
        self._reader = reader

    @property
    def reading(self) -> ThresholdInfo | None:
        """The last ``ThresholdInformation`` answer, if any."""
        return self._reading

    @property
    def used_ratio(self) -> float | None:
        """Estimated usage (0..1+), or None before the first reading."""
        if self._exhausted:
            return 1.0
        if self._reading is None:
            return None
        threshold = max(1, self._reading.external_request_threshold)
        return (self._reading.current_timeframe_request_count + self._calls_since) / threshold

    def record_call(self) -> None:
        """One call of ours reached (or is about to reach) Autotask."""
        self._calls_since += 1
        ratio = self.used_ratio
        if ratio is not None:
            budget_used_ratio(self._connection).set(ratio)

    def observe(self, info: ThresholdInfo) -> None:
        """A fresh reading (from the tracker's own refresh or any explicit call)."""
        self._reading = info
        self._read_at = self._attempted_at = self._clock.monotonic()
        self._calls_since = 0
        self._exhausted = False
        budget_used_ratio(self._connection).set(info.used_ratio)

    def mark_exhausted(self) -> None:
        """Autotask said the hourly threshold is used up: treat usage as 100% until a reading."""
        self._exhausted = True
        self._attempted_at = None  # the next check may read at once, whatever the last read
        budget_used_ratio(self._connection).set(1.0)

    async def current(self, *, confirm: bool = False) -> float | None:
        """Usage now, reading ``ThresholdInformation`` first if a reading is due.

        ``confirm`` asks for a fresh reading (rate-limited by ``min_refresh_seconds``): used
        before pausing work, because the estimate only ever grows between readings while the
        real rolling window also drops old calls.
        """
        if self._config.enabled and self._reader is not None and self._due(confirm):
            async with self._lock:
                if self._due(confirm):  # another caller may have refreshed while we waited
                    await self._refresh(self._reader)
        return self.used_ratio

    def _due(self, confirm: bool) -> bool:
        now = self._clock.monotonic()
        if self._attempted_at is not None and now - self._attempted_at < (
            self._config.min_refresh_seconds
        ):
            return False
        if confirm or self._read_at is None or self._exhausted:
            return True
        return (
            now - self._read_at >= self._config.refresh_seconds
            or self._calls_since >= self._config.refresh_calls
        )

    async def _refresh(self, reader: Reader) -> None:
        self._attempted_at = self._clock.monotonic()
        try:
            self.observe(await reader())
        except AuthenticationError:
            # The call this reading was for would fail the same way; trying it anyway would
            # be one more failed login towards the API user's lockout.
            raise
        except AutotaskError as exc:
            # Usage unknown is no reason to stop working: keep the estimate, the calls
            # themselves will surface limit errors.
            log.warning(
                "autotask.budget.read_failed",
                connection=self._connection,
                error=type(exc).__name__,
                status=exc.status,
            )

    def __repr__(self) -> str:
        ratio = self.used_ratio
        shown = "unknown" if ratio is None else f"{ratio:.1%}"
        return f"BudgetTracker(connection={self._connection!r}, used={shown})"


__all__ = ["BudgetConfig", "BudgetTracker", "Reader"]
