"""One limiter per connection: concurrency per endpoint, budget throttling, 429 pauses.

Autotask allows 3 concurrent calls per (integration code, endpoint) and rejects the 4th, and
10,000 calls per hour per tenant (autotask-api.md §5). Before each call the limiter

1. waits out any pause a 429 / thread-limit error imposed on the endpoint or the connection
   (``Retry-After`` or a fallback, capped), instead of hot-retrying;
2. throttles by :class:`Priority` against the hourly budget's pressure (the tenant's usage or
   this deployment's use of its share, whichever is higher): sweeps slow down above 50% and
   pause above 90%, webhook-driven and interactive work continues to the hard limit; then counts
   the call, pausing instead when the share is used up;
3. takes one of the endpoint's slots, highest priority first, in this process;
4. then takes one of the endpoint's slots from its :class:`SlotProvider`: at once in-process,
   or one of the tenant-wide slots every process shares (``shared.apibudget``).

No wait may run past the call's deadline: the limiter raises DeadlineExceededError instead.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from enum import IntEnum

import structlog

from shared.autotask._budget import BudgetConfig, BudgetTracker
from shared.autotask._clock import Clock
from shared.autotask._coordination import LocalSlots, SlotProvider
from shared.autotask._metrics import budget_wait_seconds, inflight, throttle_wait_seconds
from shared.errors import DeadlineExceededError, HourlyLimitError, RateLimitError, ThreadLimitError

log = structlog.get_logger(__name__)


class Priority(IntEnum):
    """Who is waiting for the call; lower values are served first."""

    INTERACTIVE = 0
    """A person is waiting (CLI, provisioner plan/apply)."""
    WEBHOOK = 1
    """Fetches driven by callouts: the freshness path."""
    SWEEP = 2
    """Reconciliation sweeps, backfills: background work, first to yield."""


@dataclass(frozen=True, slots=True)
class Throttle:
    """Usage ratios at which a priority slows down and pauses."""

    slow_at: float | None
    pause_at: float


def _default_throttles() -> dict[Priority, Throttle]:
    return {
        Priority.INTERACTIVE: Throttle(slow_at=None, pause_at=1.0),
        Priority.WEBHOOK: Throttle(slow_at=None, pause_at=1.0),
        Priority.SWEEP: Throttle(slow_at=0.5, pause_at=0.9),
    }


@dataclass(frozen=True, slots=True)
class LimiterConfig:
    """Everything the limiter does is tunable here."""

    max_concurrency: int = 3
    """Slots per endpoint (divide among replicas sharing an integration code)."""
    endpoint_concurrency: Mapping[str, int] = field(default_factory=dict)
    """Per-endpoint overrides, e.g. ``{"Tickets": 2}``."""
    throttles: Mapping[Priority, Throttle] = field(default_factory=_default_throttles)
    max_slow_delay: timedelta = timedelta(seconds=2)
    """Delay added per call when usage is just below a priority's ``pause_at``; it grows
    linearly from 0 at ``slow_at``."""
    pause_recheck: timedelta = timedelta(seconds=60)
    """How long paused work waits before asking for a fresh usage reading."""
    rate_limit_fallback: timedelta = timedelta(seconds=60)
    """Pause after a 429 without ``Retry-After``."""
    thread_limit_fallback: timedelta = timedelta(seconds=60)
    """Pause of one endpoint after a thread-limit error without ``Retry-After``."""
    rate_limit_max: timedelta = timedelta(seconds=300)
    """Cap on any pause, whatever ``Retry-After`` says."""
    budget: BudgetConfig = field(default_factory=BudgetConfig)

    def concurrency(self, endpoint: str) -> int:
        return max(1, self.endpoint_concurrency.get(endpoint, self.max_concurrency))

    def throttle(self, priority: Priority) -> Throttle:
        return self.throttles.get(priority, Throttle(slow_at=None, pause_at=1.0))


class PrioritySemaphore:
    """A semaphore whose waiters are woken by priority, then in arrival order."""

    def __init__(self, value: int) -> None:
        self._free = value
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    @property
    def free(self) -> int:
        return self._free

    async def acquire(self, priority: int) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted just as we were cancelled: pass the slot on
            raise

    def release(self) -> None:
        self._free += 1
        while self._free > 0 and self._waiters:
            _prio, _seq, future = heapq.heappop(self._waiters)
            if not future.done():  # cancelled waiters are skipped here, lazily
                self._free -= 1
                future.set_result(None)


class Limiter:
    """Admission control for one connection's calls."""

    def __init__(
        self,
        connection: str,
        config: LimiterConfig,
        *,
        clock: Clock,
        budget: BudgetTracker,
        slots: SlotProvider | None = None,
    ) -> None:
        self.connection = connection
        self.config = config
        self.budget = budget
        self.slots: SlotProvider = slots if slots is not None else LocalSlots()
        self._clock = clock
        self._semaphores: dict[str, PrioritySemaphore] = {}
        self._paused_until: dict[str | None, float] = {}  # None = the whole connection

    @asynccontextmanager
    async def slot(
        self, endpoint: str, priority: Priority, deadline: float, *, budgeted: bool = True
    ) -> AsyncIterator[None]:
        """Hold one of ``endpoint``'s slots for a single HTTP request.

        ``budgeted`` False skips throttling (budget readings must not wait for themselves),
        not counting: every call counts towards the share.
        """
        start = self._clock.monotonic()
        await self._wait_pauses(endpoint, deadline)
        await self._admit(priority, deadline, budgeted=budgeted)
        capacity = self.config.concurrency(endpoint)
        semaphore = self._semaphores.get(endpoint)
        if semaphore is None:
            semaphore = self._semaphores[endpoint] = PrioritySemaphore(capacity)
        await semaphore.acquire(priority)
        try:
            lease = await self.slots.acquire(
                endpoint, capacity=capacity, priority=priority, deadline=deadline
            )
        except BaseException:
            semaphore.release()
            raise
        waited = self._clock.monotonic() - start
        if waited > 0:
            throttle_wait_seconds(self.connection, priority.name.lower()).inc(waited)
        gauge = inflight(self.connection, endpoint)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()
            self.slots.release(lease)
            semaphore.release()

    def back_off(self, endpoint: str, exc: RateLimitError) -> float:
        """Pause ``endpoint`` (thread limit) or the connection (429) and return the seconds."""
        thread = isinstance(exc, ThreadLimitError)
        fallback = (
            self.config.thread_limit_fallback.total_seconds()
            if thread
            else self.config.rate_limit_fallback.total_seconds()
        )
        seconds = min(
            exc.retry_after if exc.retry_after is not None else fallback,
            self.config.rate_limit_max.total_seconds(),
        )
        key = endpoint if thread else None
        until = self._clock.monotonic() + seconds
        self._paused_until[key] = max(self._paused_until.get(key, 0.0), until)
        if isinstance(exc, HourlyLimitError):
            self.budget.mark_exhausted()
        log.warning(
            "autotask.paused",
            connection=self.connection,
            scope=endpoint if thread else "connection",
            seconds=round(seconds, 3),
            retry_after=exc.retry_after,
            error=type(exc).__name__,
            status=exc.status,
        )
        return seconds

    def paused_for(self, endpoint: str) -> float:
        """Seconds until calls to ``endpoint`` may start again (0 when not paused)."""
        until = max(self._paused_until.get(None, 0.0), self._paused_until.get(endpoint, 0.0))
        return max(0.0, until - self._clock.monotonic())

    async def _wait_pauses(self, endpoint: str, deadline: float) -> None:
        while (remaining := self.paused_for(endpoint)) > 0:
            if self._clock.monotonic() + remaining > deadline:
                raise DeadlineExceededError(
                    f"calls to {endpoint} are paused for another {remaining:.0f} s after "
                    "Autotask refused calls for load (429 / thread limit), longer than this "
                    "call may wait; it will succeed later"
                )
            await self._clock.sleep(remaining)

    async def _admit(self, priority: Priority, deadline: float, *, budgeted: bool) -> None:
        """Throttle by priority against the budget's pressure, then count the call."""
        throttle = self.config.throttle(priority)
        confirm = False
        while True:
            if budgeted:
                ratio = await self.budget.current(confirm=confirm)
                if ratio is not None and ratio >= throttle.pause_at:
                    if not confirm:
                        confirm = True  # the estimate only grows; re-read before pausing
                        continue
                    await self._pause(
                        priority,
                        deadline,
                        f"{self.budget.explain(ratio)} (this priority pauses at "
                        f"{throttle.pause_at:.0%})",
                        used=ratio,
                    )
                    continue
                if throttle.slow_at is not None and ratio is not None and ratio >= throttle.slow_at:
                    span = max(1e-9, throttle.pause_at - throttle.slow_at)
                    delay = self.config.max_slow_delay.total_seconds() * min(
                        1.0, (ratio - throttle.slow_at) / span
                    )
                    await self._clock.sleep(delay)
                    budget_wait_seconds(self.connection, priority.name.lower(), "slowed").inc(delay)
            if await self.budget.spend(up_to=throttle.pause_at):
                return
            level = throttle.pause_at
            used_up = "is used up" if level >= 1.0 else f"is {level:.0%} used"
            share = (
                f"this deployment's share of the tenant's hourly API budget {used_up} "
                f"({self.budget.allowance} calls in the rolling hour, AUTOTASK_SYNC_API_SHARE="
                f"{self.budget.share:g}; this priority pauses at {throttle.pause_at:.0%})"
            )
            if not budgeted:
                raise DeadlineExceededError(f"not sent: {share}; it frees up as the hour rolls")
            await self._pause(priority, deadline, share, used=min(1.0, throttle.pause_at))
            confirm = False

    async def _pause(self, priority: Priority, deadline: float, why: str, *, used: float) -> None:
        wait = self.config.pause_recheck.total_seconds()
        name = priority.name.lower()
        if self._clock.monotonic() + wait > deadline:
            raise DeadlineExceededError(f"{name} work is paused: {why}; it resumes as usage falls")
        log.info(
            "autotask.budget.paused",
            connection=self.connection,
            priority=name,
            used=round(used, 3),
        )
        await self._clock.sleep(wait)
        budget_wait_seconds(self.connection, name, "paused").inc(wait)


__all__ = ["Limiter", "LimiterConfig", "Priority", "PrioritySemaphore", "Throttle"]
