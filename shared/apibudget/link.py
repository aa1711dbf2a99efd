"""What the shared parts (slots, budget, lockout) need from their process's coordinator.

The parts are built by :class:`~shared.apibudget.coordinator.SharedCoordinator` and call back
into it; they know it only as the :class:`Coordinator` Protocol here, so neither side's module
needs the other's to be read. The coordinator's tuning, :class:`CoordinatorConfig`, lives here
too, since the parts read it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, TypeAlias, TypeVar

from shared.autotask import LockoutPolicy
from shared.db import DbSession

T = TypeVar("T")

Statement: TypeAlias = Callable[[DbSession], Awaitable[T]]
"""One unit of database work, run on a pooled session."""

LeaseKey: TypeAlias = tuple[str, str, int, int]
"""A held slot lease: connection, endpoint, slot, token."""


@dataclass(frozen=True, slots=True)
class CoordinatorConfig:
    """Everything the shared budget does is tunable here (settings fill it, see from_settings)."""

    shared_slots: bool = True
    """False: no shared slots, each process keeps its own (the budget and lockout stay shared)."""
    slot_ttl: timedelta = timedelta(seconds=30)
    """Lease of a slot: a process that dies holding one loses it within this. Leases held longer
    than a third of it are renewed, so calls up to the request timeout (60 s) keep theirs."""
    sync_interval: timedelta = timedelta(seconds=1)
    """How often each process refreshes the shared numbers and renews its leases."""
    reconnect_interval: timedelta = timedelta(seconds=5)
    """How often a process in fallback tries PostgreSQL again."""
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)
    connect_timeout: timedelta = timedelta(seconds=2)
    statement_timeout: timedelta = timedelta(seconds=5)
    """A statement slower than this counts as PostgreSQL unreachable (fallback, not a hang)."""
    poll_min: timedelta = timedelta(milliseconds=2)
    poll_max: timedelta = timedelta(milliseconds=100)
    """Back-off cap of a waiter for a slot; sweeps use ``sweep_poll_max`` and, woken by a
    release, give webhook and interactive waiters elsewhere ``sweep_yield`` to take it first."""
    sweep_poll_max: timedelta = timedelta(milliseconds=250)
    sweep_yield: timedelta = timedelta(milliseconds=5)
    max_reservation: int = 50
    """Most calls a process reserves from the allowance at once (blocks grow with its rate)."""
    refresh_lease: timedelta = timedelta(seconds=60)
    """How long the process reading ThresholdInformation holds the right to (one at a time)."""
    min_refresh_interval: timedelta = timedelta(seconds=15)
    """No process reads ThresholdInformation sooner than this after another's reading."""
    probe_lease: timedelta = timedelta(minutes=2)
    """How long the process retrying paused credentials holds the right to."""
    pool_size: int = 4


class Coordinator(Protocol):
    """The process-wide side of the shared parts: the database, wake-ups, background work."""

    @property
    def config(self) -> CoordinatorConfig: ...

    @property
    def holder(self) -> str:
        """This process's name in the shared tables (slot leases, claims)."""
        ...

    @property
    def available(self) -> bool:
        """False while PostgreSQL is unreachable (the parts use their local share)."""
        ...

    async def run(self, statement: Statement[T], what: str) -> T:
        """Run ``statement``; any failure is a DatabaseError and means fallback for a while."""
        ...

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` in the background (awaited when the coordinator stops)."""
        ...

    def event(self, connection: str, endpoint: str) -> asyncio.Event:
        """Set whenever a slot of ``connection``/``endpoint`` is released (by any process)."""
        ...

    async def wait_release(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait until ``event`` or ``seconds``; True when woken by a release."""
        ...

    def backoff(self, attempt: int, priority: int) -> float:
        """Seconds before a slot waiter looks again."""
        ...

    def held(self, lease: LeaseKey) -> None:
        """A slot lease was taken (the coordinator renews it while held)."""
        ...

    def dropped(self, lease: LeaseKey) -> None:
        """A slot lease was given back."""
        ...


__all__ = ["Coordinator", "CoordinatorConfig", "LeaseKey", "Statement"]
