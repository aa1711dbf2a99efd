"""One process's link to the shared API budget: the pool, the wake-ups, the upkeep, the fallback.

A :class:`SharedCoordinator` is made once per process (the connection catalogue does it) and
binds each connection's client to PostgreSQL-backed slots, budget and lockout
(:mod:`~shared.apibudget.slots`, :mod:`~shared.apibudget.usage`,
:mod:`~shared.apibudget.lockout`). Besides the statements those parts run on the call path, it

- listens for slot releases and health changes (NOTIFY), so waiters wake at once;
- every ``sync_interval``: refreshes each bound connection's budget and health from the
  database, renews slot leases held longer than a third of their TTL, gives back reserved calls
  a quiet process will not use, and counts calls made while the database was away;
- when PostgreSQL cannot be reached, says so once (log line, ``autotask_slot_fallback`` metric)
  and lets the parts fall back to this process's conservative local share until a ping
  succeeds again; a call never fails because the database did.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.apibudget import store as rows
from shared.apibudget.link import CoordinatorConfig, LeaseKey, Statement
from shared.apibudget.lockout import SharedLockout
from shared.apibudget.slots import SharedSlots
from shared.apibudget.usage import SharedBudget
from shared.autotask import Clock, Coordination, Priority
from shared.db import (
    DbSession,
    DedicatedSession,
    Pool,
    connect,
    create_pool,
    db_errors,
    guarded,
    session,
)
from shared.errors import DatabaseError
from shared.logging import get_logger, redact_text
from shared.metrics import AUTOTASK_SLOT_FALLBACK

log = get_logger(__name__)
T = TypeVar("T")

_PRUNE_EVERY = 300.0  # seconds between deletions of old call buckets


class SharedCoordinator:
    """Slots, budget and lockout of every connection, shared through PostgreSQL."""

    def __init__(
        self, dsn: str, config: CoordinatorConfig | None = None, *, holder: str | None = None
    ) -> None:
        self.dsn = dsn
        self.config = config or CoordinatorConfig()
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.rng = random.Random()
        self._pool: Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._listener: DedicatedSession | None = None
        self._available = True
        self._next_ping = 0.0
        self._events: dict[tuple[str, str], asyncio.Event] = {}
        self._bindings: dict[str, Binding] = {}
        self._leases: dict[LeaseKey, float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._last_renew = 0.0
        self._last_prune = 0.0
        AUTOTASK_SLOT_FALLBACK.set(0)

    def __repr__(self) -> str:
        return f"SharedCoordinator(holder={self.holder!r}, available={self._available})"

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the upkeep loop. Never fails: an unreachable database means fallback."""
        if self._loop is None:
            self._loop = asyncio.create_task(self._maintain(), name="api-budget")

    async def stop(self) -> None:
        """Give back what this process holds (slots, unused reservations), then close."""
        loop, self._loop = self._loop, None
        self._stopping.set()
        if loop is not None:
            # Let the round in progress finish: cancelling asyncpg half-way through opening a
            # connection leaves a protocol error on the loop.
            limit = (self.config.statement_timeout + self.config.connect_timeout).total_seconds()
            _done, pending = await asyncio.wait({loop}, timeout=limit)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        if self._available and self._pool is not None:
            with contextlib.suppress(DatabaseError):
                for binding in self._bindings.values():
                    await binding.budget.give_back(force=True)
                    await binding.budget.flush()
                await self.run(
                    lambda db: rows.release_holder(db, holder=self.holder), "release slots"
                )
        await self._close_listener()
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(DatabaseError, TimeoutError):
                await asyncio.wait_for(guarded(pool.close(), "close the API budget's pool"), 5)

    async def __aenter__(self) -> SharedCoordinator:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # --- binding ---------------------------------------------------------------------------
    def bind(self, connection: str, *, clock: Clock) -> Coordination:
        """The shared parts of ``connection`` (one set per process, whatever the clients)."""
        binding = self._bindings.get(connection)
        if binding is None:
            binding = self._bindings[connection] = Binding.create(self, connection, clock)
        return Coordination(slots=binding.slots, budget=binding.budget, lockout=binding.lockout)

    # --- for the parts ---------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """False while PostgreSQL is unreachable (the parts use their local share)."""
        return self._available

    async def run(self, statement: Statement[T], what: str) -> T:
        """Run ``statement`` on a pooled session within the statement timeout.

        Any failure is a DatabaseError and puts the process in fallback until a ping works.
        """
        try:
            async with asyncio.timeout(self.config.statement_timeout.total_seconds()):
                pool = await self._get_pool()
                async with session(pool, what) as db:
                    return await statement(db)
        except (DatabaseError, TimeoutError) as exc:
            self._unavailable(exc, what)
            if isinstance(exc, DatabaseError):
                raise
            raise DatabaseError(f"could not {what}: {redact_text(str(exc))}") from exc

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` in the background (releases, publications); awaited at stop."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def event(self, connection: str, endpoint: str) -> asyncio.Event:
        """Set whenever a slot of ``connection``/``endpoint`` is released (by any process)."""
        key = (connection, endpoint)
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = asyncio.Event()
        return event

    async def wait_release(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait until ``event`` or ``seconds``; True when woken by a release."""
        try:
            await asyncio.wait_for(event.wait(), max(0.0, seconds))
        except TimeoutError:
            return False
        return True

    def backoff(self, attempt: int, priority: int) -> float:
        """Seconds before a slot waiter looks again: jittered, doubling, capped by priority."""
        config = self.config
        cap = config.sweep_poll_max if priority >= Priority.SWEEP else config.poll_max
        ceiling = min(
            cap.total_seconds(), config.poll_min.total_seconds() * 2.0 ** min(attempt, 30)
        )
        return float(ceiling * self.rng.uniform(0.5, 1.0))

    def held(self, lease: LeaseKey) -> None:
        self._leases[lease] = time.monotonic()

    def dropped(self, lease: LeaseKey) -> None:
        self._leases.pop(lease, None)

    # --- upkeep ----------------------------------------------------------------------------
    async def _maintain(self) -> None:
        interval = self.config.sync_interval.total_seconds()
        while not self._stopping.is_set():
            try:
                if self._available or await self._ping():
                    await self._ensure_listener()
                    await self._sync()
            except DatabaseError:
                pass  # already reported; the next round tries again
            except Exception:
                log.exception("api budget upkeep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)

    async def _sync(self) -> None:
        names = list(self._bindings)
        if names:
            seen = {name: binding.lockout.generation for name, binding in self._bindings.items()}
            usage = await self.run(lambda db: rows.read_usage(db, names), "read the API budget")
            health = await self.run(
                lambda db: rows.read_health(db, names), "read the credential health"
            )
            for name, binding in list(self._bindings.items()):
                binding.budget.apply(usage.get(name))
                binding.lockout.apply(health.get(name), generation=seen.get(name))
                await binding.budget.give_back()
                await binding.budget.flush()
        now = time.monotonic()
        third = self.config.slot_ttl.total_seconds() / 3
        if any(now - taken >= third for taken in self._leases.values()) and (
            now - self._last_renew >= third
        ):
            leases = list(self._leases)
            await self.run(
                lambda db: rows.renew_slots(
                    db, holder=self.holder, leases=leases, ttl=self.config.slot_ttl
                ),
                "renew slot leases",
            )
            self._last_renew = now
        if now - self._last_prune >= _PRUNE_EVERY:
            await self.run(lambda db: rows.prune_calls(db), "prune call buckets")
            self._last_prune = now

    async def _ping(self) -> bool:
        now = time.monotonic()
        if now < self._next_ping:
            return False
        self._next_ping = now + self.config.reconnect_interval.total_seconds()
        try:
            async with asyncio.timeout(self.config.statement_timeout.total_seconds()):
                pool = await self._get_pool()
                async with session(pool, "reach the API budget's table") as db:
                    await db.fetchval("SELECT 1 FROM api_budget LIMIT 1")
        except (DatabaseError, TimeoutError):
            return False
        self._available = True
        AUTOTASK_SLOT_FALLBACK.set(0)
        log.info("api budget: PostgreSQL is reachable again; shared slots and budget resume")
        for binding in self._bindings.values():
            binding.lockout.mark_stale()
        return True

    def _unavailable(self, exc: BaseException, what: str) -> None:
        if not self._available:
            return
        self._available = False
        self._next_ping = time.monotonic() + self.config.reconnect_interval.total_seconds()
        AUTOTASK_SLOT_FALLBACK.set(1)
        log.warning(
            "api budget: PostgreSQL unreachable; this process uses its local share (1 slot per "
            "endpoint, its own call count) until it is back",
            failed=what,
            error=redact_text(str(exc)) or type(exc).__name__,
        )

    async def _get_pool(self) -> Pool:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    # min_size 0: creating the pool connects nothing, so it cannot fail here.
                    self._pool = await create_pool(
                        self.dsn,
                        min_size=0,
                        max_size=self.config.pool_size,
                        timeout=self.config.connect_timeout.total_seconds(),
                    )
        return self._pool

    async def _ensure_listener(self) -> None:
        listener = self._listener
        if listener is not None and not listener.is_closed():
            return
        listener = await connect(self.dsn, connect_timeout=self.config.connect_timeout)
        try:
            with db_errors("LISTEN for the API budget"):
                await listener.add_listener(rows.SLOTS_CHANNEL, self._on_slot_released)
                await listener.add_listener(rows.HEALTH_CHANNEL, self._on_health_changed)
        except DatabaseError:
            listener.terminate()
            raise
        self._listener = listener

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            try:
                await asyncio.wait_for(guarded(listener.close(), "close the LISTEN session"), 5)
            except (DatabaseError, TimeoutError):
                listener.terminate()

    def _on_slot_released(self, _db: DbSession, _pid: int, _channel: str, payload: object) -> None:
        connection, _, endpoint = str(payload).partition("/")
        event = self._events.get((connection, endpoint))
        if event is not None:
            event.set()

    def _on_health_changed(self, _db: DbSession, _pid: int, _channel: str, payload: object) -> None:
        binding = self._bindings.get(str(payload))
        if binding is not None:
            binding.lockout.mark_stale()

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("api budget background task failed", exc_info=task.exception())


@dataclass(frozen=True, slots=True)
class Binding:
    """One connection's shared parts in this process."""

    slots: SharedSlots
    budget: SharedBudget
    lockout: SharedLockout

    @classmethod
    def create(cls, coordinator: SharedCoordinator, connection: str, clock: Clock) -> Binding:
        return cls(
            slots=SharedSlots(coordinator, connection, clock),
            budget=SharedBudget(coordinator, connection, clock),
            lockout=SharedLockout(coordinator, connection, clock),
        )


__all__ = ["Binding", "CoordinatorConfig", "SharedCoordinator", "Statement"]
