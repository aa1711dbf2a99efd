"""The lockout guard's shared memory: a connection paused after a 401 is paused everywhere.

The pause is a ``connection_health`` row (the environment connection has no ``connections``
row, so it is a table of its own): ``locked_until``, the reason, the failures in a row. Each
process reads it before its first call and keeps a copy, refreshed every sync interval and at
once on the table's NOTIFY, so checking it costs no round trip per call. When the cool-down
ends, one process claims the right to try again (``probe_holder``); the others stay paused
until it has an answer: a success deletes the row, a 401 doubles the pause. A passing
``connections test`` deletes it too.

Without PostgreSQL the pause is still honoured, in this process only.
"""

from __future__ import annotations

import contextlib

from shared.apibudget import store as rows
from shared.apibudget.link import Coordinator
from shared.autotask import Clock, LocalLockout, Lockout
from shared.errors import DatabaseError

_PROBING_RECHECK = 1.0  # seconds a caller waits to look again while another process probes


class SharedLockout:
    """The credential health of one connection; see the module docstring."""

    def __init__(self, coordinator: Coordinator, connection: str, clock: Clock) -> None:
        self._coordinator = coordinator
        self._connection = connection
        self._clock = clock
        self._local = LocalLockout(clock, coordinator.config.lockout)
        self._shared: Lockout | None = None
        self._loaded = False
        self._generation = 0  # bumped by each change this process makes

    @property
    def generation(self) -> int:
        """Pass it back to :meth:`apply` with a row read after taking it: a row read before a
        change this process made since is stale and ignored."""
        return self._generation

    def mark_stale(self) -> None:
        """The row changed (NOTIFY): read it again before the next call."""
        self._loaded = False

    def apply(self, row: rows.HealthRow | None, *, generation: int | None = None) -> None:
        """The row as the database has it (None: no pause). With ``generation``, ignored when
        this process changed the row after that generation (a periodic read that raced a
        :meth:`clear` must not bring the pause back)."""
        if generation is not None and generation != self._generation:
            return
        self._loaded = True
        if row is None:
            self._shared = None
            return
        self._shared = Lockout(
            until=self._clock.monotonic() + row.remaining,
            reason=row.reason,
            failures=row.failures,
            probing=row.probing and row.probe_holder != self._coordinator.holder,
        )

    # --- LockoutStore ----------------------------------------------------------------------
    async def admit(self) -> Lockout | None:
        local = await self._local.admit()  # recorded while the database was away
        if local is not None:
            return local
        coordinator = self._coordinator
        if not self._loaded and coordinator.available:
            generation = self._generation
            try:
                health = await coordinator.run(
                    lambda db: rows.read_health(db, [self._connection]),
                    "read the credential health",
                )
            except DatabaseError:
                return None
            self.apply(health.get(self._connection), generation=generation)
        current = self._shared
        if current is None:
            return None
        now = self._clock.monotonic()
        if now < current.until:
            return current
        if current.probing:
            return Lockout(
                until=now + _PROBING_RECHECK,
                reason=current.reason,
                failures=current.failures,
                probing=True,
            )
        if not coordinator.available:
            return None  # nobody to agree with; the in-process gate still sends one call
        try:
            won = await coordinator.run(
                lambda db: rows.claim_probe(
                    db,
                    connection=self._connection,
                    holder=coordinator.holder,
                    lease=coordinator.config.probe_lease,
                ),
                "claim the credential check",
            )
        except DatabaseError:
            return None
        if won:
            return None  # this process tries the credentials again (one call: the guard's gate)
        self._loaded = False
        return Lockout(
            until=now + _PROBING_RECHECK,
            reason=current.reason,
            failures=current.failures,
            probing=True,
        )

    async def record_failure(self, *, reason: str) -> Lockout:
        self._generation += 1
        coordinator = self._coordinator
        policy = coordinator.config.lockout
        if coordinator.available:
            try:
                row = await coordinator.run(
                    lambda db: rows.record_auth_failure(
                        db,
                        connection=self._connection,
                        reason=reason,
                        first=policy.first,
                        longest=policy.longest,
                    ),
                    "pause the connection",
                )
            except DatabaseError:
                pass
            else:
                self.apply(row)
                assert self._shared is not None
                return self._shared
        return await self._local.record_failure(reason=reason)

    async def record_success(self) -> None:
        self._generation += 1
        await self._local.record_success()
        self._shared = None
        if self._coordinator.available:
            with contextlib.suppress(DatabaseError):
                await self._coordinator.run(
                    lambda db: rows.record_auth_success(db, connection=self._connection),
                    "record working credentials",
                )

    async def clear(self) -> None:
        self._generation += 1
        await self._local.clear()
        self._shared = None
        await self._coordinator.run(
            lambda db: rows.clear_health(db, connection=self._connection), "clear the pause"
        )
        self._generation += 1  # and nothing read before the row was cleared counts
        self._shared = None
        self._loaded = True


__all__ = ["SharedLockout"]
