"""One hourly budget per connection, shared by every process of the deployment.

- **Readings**: ``ThresholdInformation`` (the tenant's usage, every integration) is read by one
  process at a time: it claims a short lease in ``api_budget`` first, and the others use the
  reading it publishes there. No process reads within ``min_refresh_interval`` of another's.
- **Counting**: every call is counted in ``api_calls`` (per connection and minute) *before* it
  is sent, in small reservations: a process takes a block of calls from the allowance in one
  round trip (a plpgsql function holding the budget row's lock) and spends it locally. The sum
  never passes the allowance, whatever the number of processes; blocks grow while a process is
  busy (up to ``max_reservation``), shrink near the cap, and what a quiet process does not use
  goes back after two sync intervals.
- **The view** the throttling reads (reading, calls since it, this deployment's calls in the
  rolling hour) is refreshed from the database every sync interval and with each reservation.

When PostgreSQL is unreachable the process goes on with the last view and its own count (still
capped by the allowance, conservatively, from the last known total), and adds the calls it made
to the shared count once the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from shared.apibudget import store as rows
from shared.apibudget.link import Coordinator
from shared.autotask import BudgetView, Clock, ThresholdInfo
from shared.errors import DatabaseError

_FIRST_READING_WAIT = 5.0  # seconds


@dataclass(slots=True)
class _Credit:
    """Calls reserved (and counted) in ``bucket`` that this process has not spent yet."""

    bucket: datetime
    calls: int


class SharedBudget:
    """The budget of one connection; see the module docstring."""

    def __init__(self, coordinator: Coordinator, connection: str, clock: Clock) -> None:
        self._coordinator = coordinator
        self._connection = connection
        self._clock = clock
        self._view = BudgetView()
        self._credit: deque[_Credit] = deque()
        self._credit_total = 0
        self._block = 2
        self._granted_at: float | None = None
        self._last_spend: float | None = None
        self._unshared = 0  # calls counted while the database was away, to add when back
        self._claimed_total: int | None = None
        self._reserving = asyncio.Lock()

    # --- BudgetStore -----------------------------------------------------------------------
    def view(self) -> BudgetView:
        return self._view

    def add(self, calls: int = 1) -> None:
        self._unshared += calls
        self._count_locally(calls)

    async def spend(self, *, allowance: int | None) -> bool:
        self._last_spend = self._clock.monotonic()
        if self._credit_total > 0:
            self._take_credit()
            return True
        async with self._reserving:  # one reservation at a time; the others use its block
            if self._credit_total > 0:
                self._take_credit()
                return True
            coordinator = self._coordinator
            if coordinator.available:
                want = self._next_block()
                try:
                    reservation = await coordinator.run(
                        lambda db: rows.reserve_calls(
                            db, connection=self._connection, want=want, allowance=allowance
                        ),
                        "reserve API calls",
                    )
                except DatabaseError:
                    pass  # reported by the coordinator: count locally below
                else:
                    self.apply(reservation.usage)
                    if reservation.granted <= 0:
                        return False
                    self._credit.append(_Credit(reservation.bucket, reservation.granted))
                    self._credit_total += reservation.granted
                    self._take_credit()
                    return True
        if allowance is not None and self._view.project_calls >= allowance:
            return False
        self.add(1)
        return True

    async def claim_refresh(self) -> bool:
        coordinator = self._coordinator
        if not coordinator.available:
            return True  # nobody to agree with: read for ourselves
        config = coordinator.config
        try:
            total = await coordinator.run(
                lambda db: rows.claim_refresh(
                    db,
                    connection=self._connection,
                    holder=coordinator.holder,
                    lease=config.refresh_lease,
                    min_interval=config.min_refresh_interval,
                ),
                "claim the usage reading",
            )
        except DatabaseError:
            return True
        self._claimed_total = total
        if total is None and self._view.reading is None:
            await self._await_reading()
        return total is not None

    async def _await_reading(self) -> None:
        """Another process is taking the first reading: wait for it (briefly), so no call is
        made before the allowance is known."""
        deadline = time.monotonic() + _FIRST_READING_WAIT
        while time.monotonic() < deadline:
            with contextlib.suppress(DatabaseError):
                usage = await self._coordinator.run(
                    lambda db: rows.read_usage(db, [self._connection]), "read the API budget"
                )
                self.apply(usage.get(self._connection))
            if self._view.reading is not None or not self._coordinator.available:
                return
            await asyncio.sleep(0.05)

    def observe(self, info: ThresholdInfo) -> None:
        self._view = dataclasses.replace(
            self._view, reading=info, read_at=self._clock.monotonic(), calls_since_reading=0
        )
        claimed, self._claimed_total = self._claimed_total, None
        self._coordinator.spawn(self._publish(info, claimed), name="api-budget-publish")

    # --- upkeep (the coordinator calls these) ----------------------------------------------
    def apply(self, usage: rows.UsageRow | None) -> None:
        """The database's numbers become the view (plus what it has not been told yet)."""
        if usage is None:
            return
        reading = self._view.reading
        read_at = self._view.read_at
        if usage.threshold is not None and usage.reading_age is not None:
            reading = ThresholdInfo(
                external_request_threshold=usage.threshold,
                request_threshold_timeframe=usage.timeframe_minutes or 60,
                current_timeframe_request_count=usage.tenant_calls or 0,
            )
            read_at = self._clock.monotonic() - max(0.0, usage.reading_age)
        self._view = BudgetView(
            reading=reading,
            read_at=read_at,
            calls_since_reading=usage.calls_since_reading + self._unshared,
            project_calls=usage.project_calls + self._unshared,
        )

    async def give_back(self, *, force: bool = False) -> None:
        """Return reserved calls this process has not spent after two quiet sync intervals."""
        if self._credit_total <= 0:
            return
        idle = 2 * self._coordinator.config.sync_interval.total_seconds()
        last = self._last_spend
        if not force and last is not None and self._clock.monotonic() - last < idle:
            return
        credits = list(self._credit)  # detached first: spends meanwhile reserve anew
        self._credit.clear()
        self._credit_total = 0
        for credit in credits:
            # A failure leaves these calls counted: the count errs high, never low.
            await self._coordinator.run(
                functools.partial(
                    rows.return_calls,
                    connection=self._connection,
                    bucket=credit.bucket,
                    calls=credit.calls,
                ),
                "return unused API calls",
            )
            self._view = dataclasses.replace(
                self._view,
                project_calls=max(0, self._view.project_calls - credit.calls),
                calls_since_reading=max(0, self._view.calls_since_reading - credit.calls),
            )

    async def flush(self) -> None:
        """Add the calls made while the database was away to the shared count."""
        calls = self._unshared
        if calls <= 0:
            return
        await self._coordinator.run(
            lambda db: rows.add_calls(db, connection=self._connection, calls=calls),
            "count API calls",
        )
        self._unshared -= calls

    # --- helpers ---------------------------------------------------------------------------
    def _take_credit(self) -> None:
        head = self._credit[0]
        head.calls -= 1
        if head.calls <= 0:
            self._credit.popleft()
        self._credit_total -= 1

    def _next_block(self) -> int:
        """Double the block while the last one lasted less than a sync interval; halve it
        when it lasted longer (a quiet process reserves one call at a time)."""
        now = self._clock.monotonic()
        interval = self._coordinator.config.sync_interval.total_seconds()
        if self._granted_at is not None and now - self._granted_at < interval:
            self._block = min(self._coordinator.config.max_reservation, self._block * 2)
        else:
            self._block = max(1, self._block // 2)
        self._granted_at = now
        return self._block

    def _count_locally(self, calls: int) -> None:
        self._view = dataclasses.replace(
            self._view,
            calls_since_reading=self._view.calls_since_reading + calls,
            project_calls=self._view.project_calls + calls,
        )

    async def _publish(self, info: ThresholdInfo, claimed: int | None) -> None:
        # On failure the others read for themselves until the database is back.
        with contextlib.suppress(DatabaseError):
            await self._coordinator.run(
                lambda db: rows.publish_reading(
                    db,
                    connection=self._connection,
                    threshold=info.external_request_threshold,
                    tenant_calls=info.current_timeframe_request_count,
                    timeframe_minutes=info.request_threshold_timeframe,
                    calls_at_reading=claimed,
                ),
                "store the usage reading",
            )


__all__ = ["SharedBudget"]
