"""The tenant's hourly API budget, and this deployment's share of it.

Autotask allows 10,000 calls per rolling hour per tenant, shared by every integration
(autotask-api.md §5). ``ThresholdInformation`` says how much is used, but each reading is itself
a call, so the tracker reads it sparingly (every ``refresh_interval`` or ``refresh_calls``, never
more often than ``min_refresh_interval``) and in between adds the calls made since. Other
integrations' calls only show up at the next reading, which is why readings are periodic.

This project is a guest on the MSP's tenant, so it also keeps to ``share`` of the threshold:
its own calls in the rolling hour stay under ``share x threshold`` (the *allowance*). Throttling
looks at the larger of the two pressures, the tenant's usage and this deployment's use of its
allowance (see :attr:`BudgetTracker.pressure`).

Where the numbers live is the :class:`~shared.autotask._coordination.BudgetStore`'s business:
this process alone by default, or every process of the deployment (``shared.apibudget``): then
one process reads at a time, the reading is cached for all, and the share caps all of them
together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog

from shared.autotask._clock import Clock
from shared.autotask._coordination import BudgetStore, BudgetView, LocalBudget
from shared.autotask._metrics import (
    budget_project_calls,
    budget_project_used_ratio,
    budget_share_ratio,
    budget_tenant_calls,
    budget_used_ratio,
)
from shared.autotask._models import ThresholdInfo
from shared.errors import AuthenticationError, AutotaskError

log = structlog.get_logger(__name__)

Reader = Callable[[], Awaitable[ThresholdInfo]]

DEFAULT_SHARE = 0.5
"""Of the tenant's hourly threshold, what this project may use by default: the rest belongs to
the PSA's other integrations."""


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """How often the tracker spends a call to learn the tenant's usage, and the share."""

    refresh_interval: timedelta = timedelta(minutes=5)
    """Read at least this often while calls are being made."""
    refresh_calls: int = 250
    """...or after this many calls of ours since the last reading."""
    min_refresh_interval: timedelta = timedelta(seconds=15)
    """Never read more often than this, even when work is paused and asking."""
    enabled: bool = True
    """False: never read; priorities then only react to 429s (benchmarks, tests)."""
    share: float = DEFAULT_SHARE
    """This deployment's calls in the rolling hour stay under ``share`` x the threshold."""

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ValueError("BudgetConfig.share must be in (0, 1]")


class BudgetTracker:
    """Estimated usage: last reading plus the calls since, and this deployment's own calls."""

    def __init__(
        self,
        connection: str,
        config: BudgetConfig,
        clock: Clock,
        *,
        store: BudgetStore | None = None,
    ) -> None:
        self._connection = connection
        self._config = config
        self._clock = clock
        self._store: BudgetStore = store if store is not None else LocalBudget(clock)
        self._reader: Reader | None = None
        self._attempted_at: float | None = None
        self._exhausted = False
        self._lock = asyncio.Lock()
        budget_share_ratio(connection).set(config.share)

    def bind(self, reader: Reader) -> None:
        """Give the tracker its way to call ``ThresholdInformation`` (the client does this)."""
        self._reader = reader

    @property
    def share(self) -> float:
        return self._config.share

    @property
    def view(self) -> BudgetView:
        """The numbers behind the ratios."""
        return self._store.view()

    @property
    def reading(self) -> ThresholdInfo | None:
        """The last ``ThresholdInformation`` answer, if any (another process's, if shared)."""
        return self._store.view().reading

    @property
    def used_ratio(self) -> float | None:
        """The tenant's estimated usage (0..1+), or None before the first reading."""
        if self._exhausted:
            return 1.0
        view = self._store.view()
        if view.reading is None:
            return None
        threshold = max(1, view.reading.external_request_threshold)
        return (view.reading.current_timeframe_request_count + view.calls_since_reading) / (
            threshold
        )

    @property
    def allowance(self) -> int | None:
        """Calls this deployment may make per rolling hour (None before the first reading)."""
        reading = self._store.view().reading
        if reading is None:
            return None
        return max(1, int(self._config.share * reading.external_request_threshold))

    @property
    def project_ratio(self) -> float | None:
        """This deployment's calls in the rolling hour over its allowance (0..1)."""
        allowance = self.allowance
        if allowance is None:
            return None
        return self._store.view().project_calls / allowance

    @property
    def pressure(self) -> float | None:
        """What throttling compares with a priority's levels: the larger of the tenant's usage
        and this deployment's use of its allowance (None when neither is known)."""
        ratios = [r for r in (self.used_ratio, self.project_ratio) if r is not None]
        return max(ratios) if ratios else None

    def explain(self, ratio: float) -> str:
        """Which budget ``ratio`` (a :attr:`pressure`) is about, for people."""
        project = self.project_ratio
        if project is not None and project >= ratio and not self._exhausted:
            allowance = self.allowance
            return (
                f"this deployment has used {ratio:.0%} of its share of the tenant's hourly API "
                f"budget ({allowance} calls: {self._config.share:.0%} of the threshold, "
                "AUTOTASK_SYNC_API_SHARE)"
            )
        return f"the tenant has used {ratio:.0%} of its hourly API budget"

    async def spend(self, *, up_to: float = 1.0) -> bool:
        """Count one call about to be made; False when ``up_to`` of the allowance is used up
        (by every process together, in a shared store). Nothing is counted then.

        ``up_to`` is the caller's priority level (a sweep's 90%): checked in the same step that
        counts, so callers of a lower priority cannot take the calls kept for the higher ones,
        however many of them pass the pressure check at once or however stale their view is.
        """
        allowance = self.allowance
        if allowance is not None and up_to < 1.0:
            allowance = max(1, int(up_to * allowance))
        granted = await self._store.spend(allowance=allowance)
        self._publish_gauges()
        return granted

    def observe(self, info: ThresholdInfo) -> None:
        """A fresh reading (from the tracker's own refresh or any explicit call)."""
        self._store.observe(info)
        self._attempted_at = self._clock.monotonic()
        self._exhausted = False
        self._publish_gauges()

    def mark_exhausted(self) -> None:
        """Autotask said the hourly threshold is used up: treat usage as 100% until a reading."""
        self._exhausted = True
        self._attempted_at = None  # the next check may read at once, whatever the last read
        budget_used_ratio(self._connection).set(1.0)

    async def current(self, *, confirm: bool = False) -> float | None:
        """The :attr:`pressure` now, reading ``ThresholdInformation`` first if one is due.

        ``confirm`` asks for a fresh reading (rate-limited by ``min_refresh_interval``): used
        before pausing work, because the estimate only ever grows between readings while the
        real rolling window also drops old calls.
        """
        if self._config.enabled and self._reader is not None:
            if self._due(confirm):
                async with self._lock:
                    if self._due(confirm):  # another caller may have refreshed while we waited
                        await self._refresh(self._reader)
            elif self._lock.locked() and self._store.view().reading is None:
                async with self._lock:
                    pass  # the first reading is on its way: no call before the allowance is known
        return self.pressure

    def _due(self, confirm: bool) -> bool:
        now = self._clock.monotonic()
        if self._attempted_at is not None and now - self._attempted_at < (
            self._config.min_refresh_interval.total_seconds()
        ):
            return False
        view = self._store.view()
        if confirm or view.read_at is None or self._exhausted:
            return True
        return (
            now - view.read_at >= self._config.refresh_interval.total_seconds()
            or view.calls_since_reading >= self._config.refresh_calls
        )

    async def _refresh(self, reader: Reader) -> None:
        self._attempted_at = self._clock.monotonic()
        try:
            if not await self._store.claim_refresh():
                return  # another process is reading (or just read): its reading is shared
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

    def _publish_gauges(self) -> None:
        view = self._store.view()
        budget_project_calls(self._connection).set(view.project_calls)
        ratio = self.used_ratio
        if ratio is not None:
            budget_used_ratio(self._connection).set(ratio)
        if view.reading is not None:
            budget_tenant_calls(self._connection).set(
                view.reading.current_timeframe_request_count + view.calls_since_reading
            )
            project = self.project_ratio
            if project is not None:
                budget_project_used_ratio(self._connection).set(project)

    def __repr__(self) -> str:
        ratio = self.used_ratio
        shown = "unknown" if ratio is None else f"{ratio:.1%}"
        return (
            f"BudgetTracker(connection={self._connection!r}, used={shown}, "
            f"share={self._config.share:.0%})"
        )


__all__ = ["DEFAULT_SHARE", "BudgetConfig", "BudgetTracker", "Reader"]
