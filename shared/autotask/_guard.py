"""The lockout guard: after a 401, no call to the connection for a cool-down.

Autotask can lock an API user after repeated failed logins (autotask-api.md §2), and a locked
user stops every integration using it until someone clears the flag in the UI. So:

- after a 401 (and the one zone re-discovery it is owed) the guard records the failure in its
  :class:`~shared.autotask._coordination.LockoutStore`, and every call of every process bound
  to that store fails fast with AuthenticationPausedError, sending nothing, until the cool-down
  ends (5 minutes, doubling to an hour) or a passing connection test clears it. When it ends,
  one caller tries again; the others stay paused until it has an answer;
- until an answer has proved the credentials (anything but a 401), at most one call of the
  connection is on the wire in this process: a process starting with wrong credentials and a
  backlog of work spends one login, not one per queued call. The budget reading that first call
  may need on its way passes through (it is part of the same turn).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

import structlog

from shared.autotask._clock import Clock
from shared.autotask._coordination import Lockout, LockoutStore
from shared.autotask._metrics import auth_failures, auth_paused
from shared.errors import AuthenticationPausedError

log = structlog.get_logger(__name__)

# Set while this task holds the probe turn, so the calls that turn makes on its way (the budget
# reading) do not wait for themselves.
_PROBING: ContextVar[bool] = ContextVar("autotask_probing", default=False)


class AuthGuard:
    """Admission by the connection's credential health; see the module docstring."""

    def __init__(self, connection: str, store: LockoutStore, clock: Clock) -> None:
        self._connection = connection
        self._store = store
        self._clock = clock
        self._verified = False
        self._probing = False
        self._changed = asyncio.Event()  # set (and replaced) when either of the two changes
        self._paused = auth_paused(connection)

    @property
    def verified(self) -> bool:
        """True once Autotask answered this process with anything but a 401."""
        return self._verified

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Admit one attempt, or raise AuthenticationPausedError without sending anything."""
        await self._admit()
        if not self._verified and not _PROBING.get():
            while self._probing and not self._verified:
                await self._changed.wait()  # another call is the probe: wait for its answer
            if not self._verified:
                self._probing = True  # this call is the probe
                token = _PROBING.set(True)
                try:
                    await self._admit()  # the probe before this one may have been refused
                    yield
                finally:
                    _PROBING.reset(token)
                    self._probing = False
                    self._wake()
                return
        yield

    async def answered(self, *, authenticated: bool) -> None:
        """Autotask answered; ``authenticated`` unless it was a 401."""
        if authenticated and not self._verified:
            self._verified = True
            self._wake()  # the calls waiting for the probe's answer go now
            self._paused.set(0)
            await self._store.record_success()

    async def rejected(self, *, reason: str) -> Lockout:
        """A 401 that no zone move explains: pause the connection."""
        self._verified = False
        lockout = await self._store.record_failure(reason=reason)
        self._paused.set(1)
        auth_failures(self._connection).inc()
        log.error(
            "autotask.auth.paused",
            connection=self._connection,
            seconds=round(max(0.0, lockout.until - self._clock.monotonic())),
            failures=lockout.failures,
            reason=reason,
        )
        return lockout

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _admit(self) -> None:
        lockout = await self._store.admit()
        if lockout is None:
            self._paused.set(0)
            return
        self._paused.set(1)
        # Whoever recorded it, the credentials are in doubt here too: after the cool-down this
        # process tries them with one call, not with everything it has queued.
        self._verified = False
        raise paused_error(self._connection, lockout, self._clock.monotonic())


def paused_error(connection: str, lockout: Lockout, now: float) -> AuthenticationPausedError:
    """The error a held-back call raises: what happened, for how long, and what to do."""
    remaining = max(0.0, lockout.until - now)
    if lockout.probing:
        when = "while another process tries the credentials again"
    else:
        when = f"for another {_duration(remaining)}"
    return AuthenticationPausedError(
        f"calls to connection {connection!r} are paused {when}: Autotask rejected its "
        f"credentials ({lockout.reason}; {lockout.failures} time(s) in a row), and repeated "
        "failed logins can lock the API user. Fix the API user's username, secret or "
        f"integration code, then run `autotask-sync connections test {connection}` "
        "(`autotask-sync test-connection` for the connection configured in the environment): "
        "it clears the pause when it passes",
        retry_after=max(1.0, remaining),
    )


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    if minutes == 0:
        return f"{rest} s"
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


__all__ = ["AuthGuard", "paused_error"]
