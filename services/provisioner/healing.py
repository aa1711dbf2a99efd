"""Healing as a service: a pass per connection on a schedule, and soon after a control event.

Each served connection has a loop that runs a pass at start, every ``interval`` after that, and
when a deactivation notice or a reprovision request arrives. Events are coalesced (the
:class:`Coalescer`, pure): the first event is acted on after a short debounce, so a burst becomes
one pass; after an event-driven pass the next one waits for the ``window`` (one per connection per
minute by default), whatever arrives meanwhile, and a pass asked for by deactivation notices alone
waits for the ``deactivation_window`` after the last one (15 minutes by default); an event older
than the start of the last pass is already covered by it (that pass read the webhooks after the
event), so it causes nothing. Deactivation notices are unsigned, so a flood of them costs at most
four passes per connection an hour, and a pass never trusts one: it reads the webhooks and acts on
what Autotask says.

The loops follow the connection catalogue: a connection added starts a loop, one whose
credentials or scope changed is planned again at once, one removed stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from services.provisioner.provision import PassResult, Provisioner
from shared.connections.catalogue import CatalogueChange, ConnectionCatalogue
from shared.errors import SyncError
from shared.logging import get_logger

log = get_logger(__name__)

Offer = Literal["scheduled", "coalesced", "covered"]
DEACTIVATION = "deactivation"
"""The trigger of a pass asked for by a (unsigned) deactivation notice."""
DEBOUNCE = timedelta(seconds=1)
"""How long the first event waits for the rest of its burst."""
CLOCK_SKEW = timedelta(seconds=5)
"""Events stamped this close before a pass began are not taken as covered by it (the gateway's
clock may run behind ours)."""


@dataclass
class Coalescer:
    """When a connection's next event-driven pass may start. Monotonic seconds for scheduling,
    wall-clock times for what a pass has covered."""

    window: timedelta
    debounce: timedelta = DEBOUNCE
    skew: timedelta = CLOCK_SKEW
    deactivation_window: timedelta | None = None
    """Passes asked for by deactivation notices alone wait this long after the last such pass
    (None: ``window``). Those notices are unsigned, so this bounds what anyone who knows a
    deactivation URL can make a connection spend on Autotask's API."""
    _covered_before: datetime | None = None
    _pending_since: float | None = None
    _last_event_pass: float | None = None
    _last_deactivation_pass: float | None = None
    _trigger: str = DEACTIVATION

    def offer(self, at: datetime, *, now: float, trigger: str = DEACTIVATION) -> Offer:
        """An event that happened at ``at`` arrived at ``now``."""
        if self._covered_before is not None and at < self._covered_before:
            return "covered"
        if self._pending_since is not None:
            if trigger != DEACTIVATION:  # an operator's request does not wait for the notices'
                self._trigger = trigger
            return "coalesced"
        self._pending_since = now
        self._trigger = trigger
        return "scheduled"

    def due(self) -> float | None:
        """When the pass the pending events want may start (None: nothing pending)."""
        if self._pending_since is None:
            return None
        earliest = self._pending_since + self.debounce.total_seconds()
        if self._last_event_pass is not None:
            earliest = max(earliest, self._last_event_pass + self.window.total_seconds())
        if self._trigger == DEACTIVATION and self._last_deactivation_pass is not None:
            wait = self.deactivation_window or self.window
            earliest = max(earliest, self._last_deactivation_pass + wait.total_seconds())
        return earliest

    @property
    def trigger(self) -> str:
        return self._trigger

    def started(self, *, wall: datetime, now: float, by_event: bool) -> None:
        """A pass (of any trigger) began observing at ``wall``: it covers what is pending."""
        self._covered_before = wall - self.skew
        self._pending_since = None
        if by_event:
            self._last_event_pass = now
            if self._trigger == DEACTIVATION:
                self._last_deactivation_pass = now


@dataclass
class _Loop:
    name: str
    coalescer: Coalescer
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    next_scheduled: float = 0.0
    task: asyncio.Task[None] | None = None
    passes: int = 0
    reason: str | None = None
    """Trigger of the next scheduled pass when something other than the clock asked for it."""


class Healer:
    """Runs the per-connection loops of the service."""

    def __init__(
        self,
        *,
        provisioner: Provisioner,
        catalogue: ConnectionCatalogue,
        interval: timedelta,
        window: timedelta,
        deactivation_window: timedelta | None = None,
        debounce: timedelta = DEBOUNCE,
        on_pass: Callable[[PassResult], None] | None = None,
    ) -> None:
        self.provisioner = provisioner
        self.catalogue = catalogue
        self.interval = interval
        self.window = window
        self.deactivation_window = deactivation_window
        self.debounce = debounce
        self.on_pass = on_pass
        self._loops: dict[str, _Loop] = {}
        self._stop = asyncio.Event()

    # --- control events ---------------------------------------------------------------------
    def notify(self, connection: str, at: datetime, *, trigger: str) -> Offer | None:
        """A deactivation or reprovision event for ``connection`` (None: not served here)."""
        loop = self._loops.get(connection)
        if loop is None:
            return None
        offer = loop.coalescer.offer(at, now=time.monotonic(), trigger=trigger)
        if offer == "scheduled":
            loop.wake.set()
        return offer

    # --- life -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run a loop per served connection until ``stop`` is set."""
        self._stop = stop
        self.catalogue.subscribe(self._changed)
        self._sync(self.catalogue.names(), now=True)
        await stop.wait()
        loops = [loop.task for loop in self._loops.values() if loop.task is not None]
        for loop in self._loops.values():
            loop.wake.set()
        if loops:
            await asyncio.gather(*loops, return_exceptions=True)

    def _changed(self, change: CatalogueChange) -> None:
        for name in change.removed:
            loop = self._loops.pop(name, None)
            if loop is not None and loop.task is not None:
                loop.task.cancel()
        for name in change.changed:
            self.provisioner.forget(name)
            loop = self._loops.get(name)
            if loop is not None:
                loop.next_scheduled = 0.0  # at once
                loop.reason = "connection_changed"
                loop.wake.set()
        self._sync(self.catalogue.names(), now=True)

    def _sync(self, names: list[str], *, now: bool) -> None:
        for name in names:
            if name in self._loops:
                continue
            coalescer = Coalescer(
                self.window, debounce=self.debounce, deactivation_window=self.deactivation_window
            )
            loop = _Loop(name, coalescer)
            loop.next_scheduled = 0.0 if now else time.monotonic() + self.interval.total_seconds()
            loop.task = asyncio.get_running_loop().create_task(
                self._run_loop(loop), name=f"provision-{name}"
            )
            self._loops[name] = loop

    async def _run_loop(self, loop: _Loop) -> None:
        while not self._stop.is_set():
            event_due = loop.coalescer.due()
            due = min(loop.next_scheduled, event_due if event_due is not None else float("inf"))
            delay = due - time.monotonic()
            if delay > 0:
                loop.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(loop.wake.wait(), timeout=delay)
                continue  # recompute: an event may have moved the due time
            if self._stop.is_set():
                return
            by_event = event_due is not None and event_due <= time.monotonic()
            trigger = loop.coalescer.trigger if by_event else self._schedule_trigger(loop)
            started = time.monotonic()
            loop.coalescer.started(wall=datetime.now(UTC), now=started, by_event=by_event)
            loop.next_scheduled = started + self.interval.total_seconds()
            await self._pass(loop, trigger)

    def _schedule_trigger(self, loop: _Loop) -> str:
        reason, loop.reason = loop.reason, None
        return reason or ("startup" if loop.passes == 0 else "schedule")

    async def _pass(self, loop: _Loop, trigger: str) -> None:
        loop.passes += 1
        try:
            served = self.catalogue.get(loop.name)
            client = self.catalogue.client(loop.name)
        except SyncError as exc:
            log.warning("connection not served any more", connection=loop.name, error=str(exc))
            return
        result = await self.provisioner.run(served, client, trigger=trigger)
        if self.on_pass is not None:
            self.on_pass(result)


__all__ = ["CLOCK_SKEW", "DEBOUNCE", "Coalescer", "Healer", "Offer"]
