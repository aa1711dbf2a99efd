"""How long a loop waits before it tries a dependency again: capped exponential, full jitter.

Every loop that retries PostgreSQL or Kafka (a Kafka client reconnecting, a producer starting, a
unit publishing its changes, a live table listening again, a service waiting at start) waits
:meth:`Backoff.delay`: a random time between 0 and ``min(cap, first * 2 ** (attempt - 1))``.

- *Exponential*: an outage costs a handful of attempts, not one per loop turn. Without it an
  aiokafka producer whose partition leader is unknown asked for metadata in a loop, ~2,000
  connection attempts a second per process while the broker was down.
- *Capped*: once the dependency is back it is noticed within ``cap``.
- *Full jitter*: replicas that failed together do not all come back in the same instant and knock
  the recovering server over again (the "Exponential Backoff And Jitter" analysis: full jitter
  spreads the retries most for the least total wait).

:class:`Retry` counts one loop's failures in a row and sleeps its delays, cut short by a stop
event. Tests give loops a :class:`Backoff` of milliseconds, so retries are instant there.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from datetime import timedelta

_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class Backoff:
    """A retry schedule: ``first`` the ceiling of the first wait, doubled per failure up to
    ``cap``; each wait is drawn uniformly below its ceiling."""

    first: timedelta = timedelta(milliseconds=100)
    cap: timedelta = timedelta(seconds=5)

    def __post_init__(self) -> None:
        if self.first <= _ZERO or self.cap < self.first:
            raise ValueError("Backoff needs 0 < first <= cap")

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failure number ``attempt`` (1-based), in seconds."""
        doublings = min(max(attempt, 1) - 1, 62)  # far past any cap; keeps the float finite
        return min(self.cap.total_seconds(), self.first.total_seconds() * 2.0**doublings)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failure number ``attempt`` (1-based): full jitter."""
        return (rng or _RNG).uniform(0.0, self.ceiling(attempt))


_RNG = random.Random()  # spreading retries, not a secret


class Retry:
    """One loop's failures in a row, and the waits they call for."""

    def __init__(self, backoff: Backoff, *, rng: random.Random | None = None) -> None:
        self.backoff = backoff
        self.failures = 0
        self._rng = rng

    def failed(self) -> float:
        """Count a failure; returns the seconds to wait before the next attempt."""
        self.failures += 1
        return self.backoff.delay(self.failures, self._rng)

    def succeeded(self) -> None:
        """The next failure starts the schedule again from ``first``."""
        self.failures = 0

    async def wait(self, seconds: float, stop: asyncio.Event | None = None) -> None:
        """Sleep ``seconds``, or until ``stop`` is set."""
        if stop is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


__all__ = ["Backoff", "Retry"]
