"""Tenant-wide concurrency slots: at most N calls per (connection, endpoint), every process
together.

Each slot is a row of ``api_slots``; a call leases a free one (expired lease) with
``FOR UPDATE SKIP LOCKED`` in one statement, after waiting its turn in the process's priority
queue (the limiter's semaphore), and gives it back in the background when the response is in.
When all are held it polls with a short jittered back-off, woken early by the NOTIFY every
release sends; sweeps back off longer and yield a moment on a wake-up, so webhook and
interactive waiters in other processes tend to go first.

A process that dies holding a slot loses it when the lease expires (``slot_ttl``). When
PostgreSQL is unreachable, calls take one of this process's own slots instead: 1 per endpoint,
so a few processes in fallback stay near the limit rather than at N each.
"""

from __future__ import annotations

import asyncio
import time

from shared.apibudget import store as rows
from shared.apibudget.link import Coordinator
from shared.autotask import Clock, Priority, SlotLease
from shared.db import DbSession
from shared.errors import DatabaseError, DeadlineExceededError
from shared.metrics import AUTOTASK_SLOT_ACQUIRE_SECONDS, AUTOTASK_SLOT_WAITS, AUTOTASK_SLOTS_IN_USE

LOCAL_SHARE_SLOT = -1
"""``SlotLease.slot`` of a lease from the fallback's local share (no row behind it)."""


class SharedSlots:
    """The slots of one connection; see the module docstring."""

    def __init__(self, coordinator: Coordinator, connection: str, clock: Clock) -> None:
        self._coordinator = coordinator
        self._connection = connection
        self._clock = clock
        self._ensured: set[tuple[str, int]] = set()
        self._local: dict[str, asyncio.Semaphore] = {}

    async def acquire(
        self, endpoint: str, *, capacity: int, priority: int, deadline: float
    ) -> SlotLease:
        coordinator = self._coordinator
        if not coordinator.config.shared_slots:
            return SlotLease(endpoint)  # each process keeps its own (the limiter's semaphore)
        started = time.perf_counter()
        event = coordinator.event(self._connection, endpoint)
        attempt = 0
        while coordinator.available:
            event.clear()  # before looking: a release from now on wakes us
            try:
                taken = await coordinator.run(
                    lambda db: self._take(db, endpoint, capacity), "take an API slot"
                )
            except DatabaseError:
                break  # reported by the coordinator: the local share from here on
            if taken is not None:
                return self._leased(endpoint, *taken, started=started, waited=attempt > 0)
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                raise DeadlineExceededError(
                    f"no concurrency slot for {endpoint} came free before the call's deadline: "
                    f"other processes of this deployment hold all {capacity} (Autotask allows "
                    f"{capacity} concurrent calls per endpoint); it is retried later"
                )
            woken = await coordinator.wait_release(
                event, min(remaining, coordinator.backoff(attempt, priority))
            )
            if woken and priority >= Priority.SWEEP:
                await asyncio.sleep(coordinator.config.sweep_yield.total_seconds())
            attempt += 1
        return await self._local_share(endpoint, deadline)

    def release(self, lease: SlotLease) -> None:
        if not lease.shared:
            if lease.slot == LOCAL_SHARE_SLOT:
                self._local[lease.endpoint].release()
            return
        AUTOTASK_SLOTS_IN_USE.labels(self._connection, lease.endpoint).dec()
        key = (self._connection, lease.endpoint, lease.slot, lease.token)
        self._coordinator.dropped(key)
        self._coordinator.spawn(self._give_back(lease), name="api-slot-release")

    async def _take(self, db: DbSession, endpoint: str, capacity: int) -> tuple[int, int] | None:
        if (endpoint, capacity) not in self._ensured:
            await rows.ensure_slots(
                db, connection=self._connection, endpoint=endpoint, capacity=capacity
            )
            self._ensured.add((endpoint, capacity))
        return await rows.take_slot(
            db,
            connection=self._connection,
            endpoint=endpoint,
            capacity=capacity,
            holder=self._coordinator.holder,
            ttl=self._coordinator.config.slot_ttl,
        )

    def _leased(
        self, endpoint: str, slot: int, token: int, *, started: float, waited: bool
    ) -> SlotLease:
        labels = (self._connection, endpoint)
        AUTOTASK_SLOT_ACQUIRE_SECONDS.labels(*labels).observe(time.perf_counter() - started)
        AUTOTASK_SLOTS_IN_USE.labels(*labels).inc()
        if waited:
            AUTOTASK_SLOT_WAITS.labels(*labels).inc()
        self._coordinator.held((self._connection, endpoint, slot, token))
        return SlotLease(endpoint, slot=slot, token=token, shared=True)

    async def _give_back(self, lease: SlotLease) -> None:
        coordinator = self._coordinator
        try:
            await coordinator.run(
                lambda db: rows.release_slot(
                    db,
                    connection=self._connection,
                    endpoint=lease.endpoint,
                    slot=lease.slot,
                    token=lease.token,
                    holder=coordinator.holder,
                ),
                "release an API slot",
            )
        except DatabaseError:
            pass  # the lease expires on its own
        finally:
            coordinator.event(self._connection, lease.endpoint).set()  # waiters here look now

    async def _local_share(self, endpoint: str, deadline: float) -> SlotLease:
        semaphore = self._local.get(endpoint)
        if semaphore is None:
            semaphore = self._local[endpoint] = asyncio.Semaphore(1)
        remaining = max(0.0, deadline - self._clock.monotonic())
        try:
            await asyncio.wait_for(semaphore.acquire(), remaining)
        except TimeoutError:
            raise DeadlineExceededError(
                f"no local slot for {endpoint} came free before the call's deadline (PostgreSQL "
                "is unreachable, so this process uses 1 slot per endpoint); it is retried later"
            ) from None
        return SlotLease(endpoint, slot=LOCAL_SHARE_SLOT)


__all__ = ["LOCAL_SHARE_SLOT", "SharedSlots"]
