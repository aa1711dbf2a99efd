"""Time as a dependency: the client never calls ``time`` or ``asyncio.sleep`` directly.

Retries, rate-limit pauses and budget throttling all wait through a :class:`Clock`, so tests
(ours and other packages') swap in :class:`ManualClock` and every back-off becomes instant while
still being recorded and asserted on.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic time plus a way to wait; the only source of time the client uses."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (or pretend to)."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic` and :func:`asyncio.sleep`."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock for tests: sleeping advances virtual time instantly and is recorded.

    ``sleeps`` lists every wait requested, so a test can assert that a 429 honoured
    ``Retry-After`` without waiting for it. ``on_sleep`` hooks run as each wait starts (before
    virtual time moves), so a test can look at the waiting state and change the world
    mid-wait (e.g. lower the simulator's usage).
    """

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.on_sleep: list[_SleepHook] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        for hook in list(self.on_sleep):
            await hook(seconds)
        self.now += seconds
        # Yield once so a "sleeping" task still lets others run, as a real sleep would.
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        """Move virtual time forward without sleeping (e.g. to expire a cache)."""
        self.now += seconds

    @property
    def slept(self) -> float:
        """Total virtual seconds waited so far."""
        return sum(self.sleeps)

    def __repr__(self) -> str:
        return f"ManualClock(now={self.now:.3f}, sleeps={len(self.sleeps)})"


class _SleepHook(Protocol):
    async def __call__(self, seconds: float, /) -> None: ...


SYSTEM_CLOCK = SystemClock()

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock"]
