"""Who may use the gateway's time and memory right now: bookkeeping, no I/O.

The callout URL is public, so the gateway assumes attackers know one. What a request may cost is
bounded before the expensive parts run (docs/architecture.md, "The gateway on the open
internet"):

- :class:`Slots`: how many requests are in one stage at once (bodies still arriving, callouts
  being made durable), overall and per client address. Beyond a limit a request is refused at
  once, before its body is read, instead of queueing.
- :class:`FailureLimit`: failed signatures per key (client address, callout URL) within a fixed
  minute. Beyond it the address is refused before its bodies are read (429), and the URL's
  costly re-escaped comparison is skipped (Autotask's own callouts verify on the raw bytes).

Both forget the least recently used keys beyond ``capacity``, so a flood from a million
addresses costs bounded memory (and at worst lets a forgotten address start its minute over).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from services.webhook_gateway.settings import GatewaySettings
from shared.metrics import GATEWAY_CONNECTIONS_REFUSED

Clock = Callable[[], float]
"""Monotonic seconds (``time.monotonic`` in production, a fake in tests)."""


class Slots:
    """Requests in one stage at once: at most ``limit`` in all and ``per_key`` per key."""

    def __init__(self, *, limit: int, per_key: int | None = None) -> None:
        self.limit = limit
        self.per_key = per_key
        self.current = 0
        self._by_key: dict[str, int] = {}

    def full_for(self, key: str) -> bool:
        """Whether ``key`` already holds its share (False when there is no per-key limit)."""
        return self.per_key is not None and self._by_key.get(key, 0) >= self.per_key

    @property
    def full(self) -> bool:
        return self.current >= self.limit

    def take(self, key: str = "") -> None:
        """Occupy a slot (the caller checked :attr:`full` and :meth:`full_for` first)."""
        self.current += 1
        if self.per_key is not None:
            self._by_key[key] = self._by_key.get(key, 0) + 1

    def give_back(self, key: str = "") -> None:
        self.current -= 1
        if self.per_key is not None:
            left = self._by_key.get(key, 0) - 1
            if left > 0:
                self._by_key[key] = left
            else:
                self._by_key.pop(key, None)


@dataclass(slots=True)
class _Minute:
    started: float
    failures: int = 0


@dataclass
class FailureLimit:
    """At most ``limit`` failures per key within a window of ``window`` (a fixed window that
    starts at the key's first failure)."""

    limit: int
    window: timedelta = timedelta(minutes=1)
    capacity: int = 100_000
    clock: Clock = time.monotonic
    _windows: OrderedDict[str, _Minute] = field(default_factory=OrderedDict)

    def exceeded(self, key: str) -> bool:
        """Whether ``key`` used up its failures for the current window."""
        current = self._windows.get(key)
        if current is None:
            return False
        if self.clock() - current.started >= self.window.total_seconds():
            del self._windows[key]
            return False
        return current.failures >= self.limit

    def failed(self, key: str) -> None:
        """Count one failure of ``key``."""
        now = self.clock()
        current = self._windows.get(key)
        if current is None or now - current.started >= self.window.total_seconds():
            current = _Minute(started=now)
        self._windows.pop(key, None)
        self._windows[key] = current
        current.failures += 1
        while len(self._windows) > self.capacity:
            self._windows.popitem(last=False)

    def __len__(self) -> int:
        return len(self._windows)


@dataclass
class Admission:
    """The gateway's limits on what requests may cost, as its settings ask."""

    bodies: Slots
    """Requests whose body is still arriving: in all and per client address."""
    callouts: Slots
    """Callouts being verified and made durable (``max_concurrent_callouts``)."""
    bad_by_client: FailureLimit
    bad_by_registration: FailureLimit

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> Admission:
        return cls(
            bodies=Slots(
                limit=settings.max_unfinished_bodies,
                per_key=settings.max_unfinished_bodies_per_client,
            ),
            callouts=Slots(limit=settings.max_concurrent_callouts),
            bad_by_client=FailureLimit(limit=settings.bad_signatures_per_client),
            bad_by_registration=FailureLimit(limit=settings.bad_signatures_per_registration),
        )

    def admits(self, address: str) -> bool:
        """Whether a new connection from ``address`` is served at all: not while it is over its
        bad-request limit or holds its share of unfinished bodies (each request it sent would
        only be refused, at the cost of parsing it)."""
        if self.bad_by_client.exceeded(address) or self.bodies.full_for(address):
            GATEWAY_CONNECTIONS_REFUSED.inc()
            return False
        return True


__all__ = ["Admission", "Clock", "FailureLimit", "Slots"]
