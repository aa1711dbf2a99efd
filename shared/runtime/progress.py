"""Whether a part of a service that has work is getting it done: the truth behind the probes.

A dependency check (PostgreSQL answers a query, Kafka answers a metadata request) says a service
*could* work, not that it does. A worker whose producer the broker refuses for good answers every
ping and commits nothing; a spool can hold rows that never drain while Kafka answers. So each loop
with a job owns a :class:`Progress`: it says how much work is waiting (``pending``) and reports
each step forward (:meth:`Progress.advanced`). A part is *stalled* while work waits and nothing
moved for a while; being idle is never a stall.

The probes read it (:func:`shared.runtime.ops.add_ops_routes`):

- ``/readyz`` fails once a part has been stalled for ``unready_after``: the pod leaves the
  Service's endpoints and the alerts see it;
- ``/healthz`` fails once it has been stalled for ``unhealthy_after`` (longer) *while the
  service's dependencies answer*: then the process itself is stuck and Kubernetes replaces it.
  A stall because PostgreSQL or Kafka is away is not cured by a restart, so it never fails
  liveness (every pod restarting during an outage would only add load when it ends). Nor does a
  stall the part itself explains by a dependency the probes cannot ask (``excused``: the sync
  worker's units waiting on Autotask, which is down or holding the tenant back).

Each part's stall is exported as ``autotask_sync_stalled_seconds{part}`` (0 when it moves).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

from shared.metrics import STALLED_SECONDS
from shared.runtime.runner import aiter_until

SAMPLE_INTERVAL = timedelta(seconds=1)
"""How often :meth:`Progress.watch` samples ``pending``: a part that goes idle and then gets
work again is timed from the sample that saw the work, never from before its idle time."""


class Stalled(Exception):
    """A part has had work waiting and made no progress for too long (the probe's reason)."""


class Progress:
    """One part's progress: see the module docstring."""

    def __init__(
        self,
        part: str,
        *,
        pending: Callable[[], int],
        unready_after: timedelta,
        unhealthy_after: timedelta,
        what: str = "work",
        excused: Callable[[], str | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if unhealthy_after <= unready_after:
            raise ValueError("unhealthy_after must be longer than unready_after")
        self.part = part
        self.what = what
        self._pending = pending
        self.unready_after = unready_after
        self.unhealthy_after = unhealthy_after
        self._excused = excused
        self._clock = clock
        self._moved = clock()
        self._gauge = STALLED_SECONDS.labels(part)

    def advanced(self) -> None:
        """Work got done (committed, acknowledged, drained)."""
        self._moved = self._clock()

    def stalled_for(self) -> float:
        """Seconds work has been waiting with nothing done; 0 when idle or moving."""
        now = self._clock()
        if self._pending() <= 0:
            self._moved = now  # idle: the clock starts again when work comes
            return 0.0
        return max(0.0, now - self._moved)

    def sample(self) -> float:
        """:meth:`stalled_for`, exported as the part's gauge."""
        stalled = self.stalled_for()
        self._gauge.set(round(stalled, 1))
        return stalled

    async def watch(self, stop: asyncio.Event, interval: timedelta = SAMPLE_INTERVAL) -> None:
        """Sample until ``stop`` is set (spawn it beside the loop it watches)."""
        async for _ in aiter_until(stop, interval):
            self.sample()

    async def readiness(self) -> None:
        """A readiness check: raises :class:`Stalled` after ``unready_after``."""
        self._check(self.unready_after)

    async def liveness(self) -> None:
        """A liveness check: raises :class:`Stalled` after ``unhealthy_after`` unless the part
        says it waits on a dependency (``excused``); the probe also asks the dependencies
        before it believes it."""
        if self._excused is not None and self._excused():
            self.sample()
            return
        self._check(self.unhealthy_after)

    def _check(self, bound: timedelta) -> None:
        stalled = self.sample()
        if stalled >= bound.total_seconds():
            raise Stalled(
                f"{self.part}: {self.what} waiting and nothing done for {stalled:.0f} s "
                f"(limit {bound.total_seconds():g} s)"
            )


__all__ = ["SAMPLE_INTERVAL", "Progress", "Stalled"]
