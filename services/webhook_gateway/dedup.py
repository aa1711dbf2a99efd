"""Recently accepted callouts, to acknowledge Autotask's exact re-sends cheaply: pure, no I/O.

Autotask re-sends a callout whose answer was slow or lost; the re-send carries the same bytes.
A fingerprint (registration + a hash of the body) is remembered for a few minutes after the
callout was made durable; a re-send within that window is answered 2xx without being stored
again, so downstream does not do the work twice. Per process and best effort: a re-send landing
on another replica, after a restart or after the window is stored again, which is harmless
because everything downstream is idempotent. Correctness never depends on it.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta

Clock = Callable[[], float]
"""Monotonic seconds (``time.monotonic`` in production, a fake in tests)."""


class RecentCallouts:
    """Fingerprints of callouts made durable within ``window``, at most ``capacity`` of them."""

    def __init__(self, *, window: timedelta, capacity: int, clock: Clock = time.monotonic) -> None:
        self._window = window.total_seconds()
        self._capacity = capacity
        self._clock = clock
        # Insertion order is expiry order: the clock is monotonic and the window fixed.
        self._expiries: OrderedDict[bytes, float] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._window > 0 and self._capacity > 0

    def __len__(self) -> int:
        return len(self._expiries)

    @staticmethod
    def fingerprint(registration_id: str, body: bytes) -> bytes:
        """What identifies one exact callout of one registration."""
        digest = hashlib.blake2b(registration_id.encode() + b"\0", digest_size=16)
        digest.update(body)
        return digest.digest()

    def seen(self, fingerprint: bytes) -> bool:
        """Whether the same callout was made durable within the window."""
        if not self.enabled:
            return False
        self._expire()
        return fingerprint in self._expiries

    def remember(self, fingerprint: bytes) -> None:
        """Record a callout that is now durable."""
        if not self.enabled:
            return
        self._expire()
        self._expiries.pop(fingerprint, None)
        self._expiries[fingerprint] = self._clock() + self._window
        while len(self._expiries) > self._capacity:
            self._expiries.popitem(last=False)

    def _expire(self) -> None:
        now = self._clock()
        expiries = self._expiries
        while expiries:
            oldest, expiry = next(iter(expiries.items()))
            if expiry > now:
                return
            del expiries[oldest]


__all__ = ["Clock", "RecentCallouts"]
