"""How every process of a deployment shares one connection's Autotask limits.

Autotask's rules hold per tenant, not per process (autotask-api.md §5, §2): 3 concurrent calls
per (integration code, endpoint), 10,000 calls per rolling hour shared by every integration on
the tenant, and a locked API user after repeated failed logins. The client enforces them through
three small interfaces, bound once per connection by a :class:`Coordinator`:

    SlotProvider   an endpoint's concurrency slots, taken after the in-process priority queue
    BudgetStore    the hourly budget: the last ThresholdInformation reading and this
                   deployment's own calls in the rolling hour
    LockoutStore   whether calls are held back after a 401, and until when

:class:`LocalCoordinator` (the default) keeps all three inside the process, which is how the
client always behaved: its slots admit at once (the limiter's priority semaphore already caps
each endpoint), its budget counts this process's calls, its lockout is this process's own.
``shared.apibudget`` implements the same interfaces over PostgreSQL so that worker replicas, the
reconciler, the provisioner and people's commands share one budget; the client never imports it.

Times handed across these interfaces (``deadline``, ``read_at``, ``until``) are on the bound
clock's ``monotonic()`` scale, so tests with a ManualClock stay instant.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from shared.autotask._clock import Clock
from shared.autotask._models import ThresholdInfo

_MINUTE = 60.0


# --- slots --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SlotLease:
    """One held concurrency slot; ``shared`` is False for a slot that exists only here."""

    endpoint: str
    slot: int = 0
    token: int = 0
    shared: bool = False


class SlotProvider(Protocol):
    """An endpoint's concurrency slots (tenant-wide in a shared implementation)."""

    async def acquire(
        self, endpoint: str, *, capacity: int, priority: int, deadline: float
    ) -> SlotLease:
        """Take one of ``endpoint``'s ``capacity`` slots, waiting if all are taken.

        ``priority`` is a :class:`~shared.autotask.Priority` (lower is more urgent). Raises
        DeadlineExceededError rather than wait past ``deadline``.
        """
        ...

    def release(self, lease: SlotLease) -> None:
        """Give the slot back. May finish in the background; never raises."""
        ...


class LocalSlots:
    """Slots that exist only in this process: the limiter's semaphore is the whole cap."""

    async def acquire(
        self, endpoint: str, *, capacity: int, priority: int, deadline: float
    ) -> SlotLease:
        return SlotLease(endpoint)

    def release(self, lease: SlotLease) -> None:
        return None


# --- budget -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BudgetView:
    """What is known about a connection's hourly budget right now."""

    reading: ThresholdInfo | None = None
    """The last ``ThresholdInformation`` answer (the whole tenant, every integration)."""
    read_at: float | None = None
    """When it was taken, on the bound clock."""
    calls_since_reading: int = 0
    """Calls of this deployment since that reading (every process, in a shared store)."""
    project_calls: int = 0
    """Calls of this deployment in the rolling hour: what the share caps."""


class BudgetStore(Protocol):
    """A connection's hourly budget as the client's throttling sees it."""

    def view(self) -> BudgetView:
        """The latest known numbers (cheap: no I/O)."""
        ...

    def add(self, calls: int = 1) -> None:
        """Count calls that were made without :meth:`spend`."""
        ...

    async def spend(self, *, allowance: int | None) -> bool:
        """Count one call about to be made; False, counting nothing, when this deployment's
        calls in the rolling hour already reach ``allowance`` (None: no cap known yet)."""
        ...

    async def claim_refresh(self) -> bool:
        """May this process read ``ThresholdInformation`` now? (One process at a time.)"""
        ...

    def observe(self, info: ThresholdInfo) -> None:
        """A fresh reading: becomes the view at once, and everyone's soon after."""
        ...


class RollingCount:
    """Calls in a rolling window, in one-minute buckets on the clock.

    The window is over-counted by up to one bucket rather than under-counted: a cap compared
    with it is never exceeded.
    """

    def __init__(self, clock: Clock, window: timedelta = timedelta(hours=1)) -> None:
        self._clock = clock
        self._buckets = max(1, round(window.total_seconds() / _MINUTE))
        self._counts: deque[list[int]] = deque()  # [minute, calls], oldest first

    def add(self, calls: int = 1) -> None:
        minute = int(self._clock.monotonic() // _MINUTE)
        if self._counts and self._counts[-1][0] == minute:
            self._counts[-1][1] += calls
        else:
            self._counts.append([minute, calls])

    def total(self) -> int:
        oldest = int(self._clock.monotonic() // _MINUTE) - self._buckets
        while self._counts and self._counts[0][0] < oldest:
            self._counts.popleft()
        return sum(calls for _minute, calls in self._counts)


class LocalBudget:
    """This process's own view: its readings and its own calls."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._reading: ThresholdInfo | None = None
        self._read_at: float | None = None
        self._since = 0
        self._project = RollingCount(clock)

    def view(self) -> BudgetView:
        return BudgetView(self._reading, self._read_at, self._since, self._project.total())

    def add(self, calls: int = 1) -> None:
        self._since += calls
        self._project.add(calls)

    async def spend(self, *, allowance: int | None) -> bool:
        if allowance is not None and self._project.total() >= allowance:
            return False
        self.add(1)
        return True

    async def claim_refresh(self) -> bool:
        return True  # the tracker's lock already makes it one reader at a time

    def observe(self, info: ThresholdInfo) -> None:
        self._reading = info
        self._read_at = self._clock.monotonic()
        self._since = 0


# --- lockout ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """Cool-downs after rejected credentials: ``first``, doubling per failure up to ``longest``
    (GDS pauses 300 s, doubling, after a 401; autotask-api.md §2)."""

    first: timedelta = timedelta(minutes=5)
    longest: timedelta = timedelta(hours=1)

    def cooldown(self, failures: int) -> timedelta:
        """The pause after the ``failures``-th rejection in a row (1-based)."""
        doubled: timedelta = self.first * 2 ** min(max(0, failures - 1), 20)
        return min(self.longest, doubled)


@dataclass(frozen=True, slots=True)
class Lockout:
    """Calls are held back until ``until`` (bound clock) because Autotask said 401."""

    until: float
    reason: str
    failures: int = 1
    probing: bool = False
    """The cool-down is over and another process is trying the credentials right now."""


class LockoutStore(Protocol):
    """Whether a connection's calls are held back after rejected credentials."""

    async def admit(self) -> Lockout | None:
        """None when calls may go; the lockout holding them back otherwise. Once a cool-down
        ends, one caller (deployment-wide in a shared store) is admitted to try again."""
        ...

    async def record_failure(self, *, reason: str) -> Lockout:
        """A 401 after the zone re-discovery: hold calls back (longer after each failure in a
        row; failures while already held back do not lengthen it)."""
        ...

    async def record_success(self) -> None:
        """Autotask accepted the credentials: forget past failures."""
        ...

    async def clear(self) -> None:
        """Lift any lockout now (a connection test passed)."""
        ...


class LocalLockout:
    """A lockout known only to this process."""

    def __init__(self, clock: Clock, policy: LockoutPolicy) -> None:
        self._clock = clock
        self._policy = policy
        self._current: Lockout | None = None
        self._failures = 0

    async def admit(self) -> Lockout | None:
        current = self._current
        if current is not None and self._clock.monotonic() < current.until:
            return current
        return None

    async def record_failure(self, *, reason: str) -> Lockout:
        now = self._clock.monotonic()
        current = self._current
        if current is not None and now < current.until:
            return current  # a call that was already in flight: the same failure
        self._failures += 1
        cooldown = self._policy.cooldown(self._failures).total_seconds()
        self._current = Lockout(until=now + cooldown, reason=reason, failures=self._failures)
        return self._current

    async def record_success(self) -> None:
        self._current = None
        self._failures = 0

    async def clear(self) -> None:
        await self.record_success()


# --- binding ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Coordination:
    """The three shared parts of one connection, as its client uses them."""

    slots: SlotProvider
    budget: BudgetStore
    lockout: LockoutStore


class Coordinator(Protocol):
    """Hands each connection's client its :class:`Coordination`."""

    def bind(self, connection: str, *, clock: Clock) -> Coordination:
        """The coordination of ``connection``; times on ``clock``."""
        ...


class LocalCoordinator:
    """Everything in this process, as the client always did (the default)."""

    def __init__(self, *, lockout: LockoutPolicy | None = None) -> None:
        self._policy = lockout or LockoutPolicy()

    def bind(self, connection: str, *, clock: Clock) -> Coordination:
        return Coordination(
            slots=LocalSlots(),
            budget=LocalBudget(clock),
            lockout=LocalLockout(clock, self._policy),
        )

    def __repr__(self) -> str:
        return "LocalCoordinator()"


__all__ = [
    "BudgetStore",
    "BudgetView",
    "Coordination",
    "Coordinator",
    "LocalBudget",
    "LocalCoordinator",
    "LocalLockout",
    "LocalSlots",
    "Lockout",
    "LockoutPolicy",
    "LockoutStore",
    "RollingCount",
    "SlotLease",
    "SlotProvider",
]
