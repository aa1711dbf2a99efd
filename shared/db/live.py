"""A table kept current in a process's memory: load, LISTEN/NOTIFY, periodic reload.

The connection catalogue and the webhook registrations are small tables every process reads on
every request (which secret verifies this callout, which credentials call this tenant). Reading
them from PostgreSQL each time would put the database on the request path, so each process holds
a snapshot:

1. a full load at start;
2. ``LISTEN <channel>``: a trigger NOTIFYs on every change (migration 0002), and the snapshot is
   reloaded in full a moment later (notifications arriving together cause one reload);
3. a full reload every ``reload_interval`` anyway, in case a notification was lost (they are not
   delivered while the listening connection is down);
4. when PostgreSQL goes away, the last snapshot keeps serving; the loop reconnects with back-off
   (:data:`RECONNECT_BACKOFF`: jittered, so every process's tables do not return at once), and
   reloads as soon as it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Generic, TypeVar

import asyncpg

from shared.db.pool import DB_ERRORS, connect
from shared.errors import DatabaseError
from shared.logging import get_logger
from shared.runtime.backoff import Backoff, Retry

log = get_logger(__name__)

T = TypeVar("T")
Loader = Callable[[asyncpg.Connection], Awaitable[T]]
Listener = Callable[[T], None]

RECONNECT_BACKOFF = Backoff(first=timedelta(seconds=1), cap=timedelta(seconds=30))
"""Waits between attempts to reload after a failure: up to 1 s after the first, doubling to at
most 30 s."""


class LiveTable(Generic[T]):
    """The latest snapshot ``load`` produced, kept current (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        dsn: str,
        channel: str,
        load: Loader[T],
        reload_interval: timedelta = timedelta(seconds=60),
        debounce: timedelta = timedelta(milliseconds=50),
    ) -> None:
        self.name = name
        self._dsn = dsn
        self._channel = channel
        self._load = load
        self._reload_interval = reload_interval
        self._debounce = debounce
        self._value: T | None = None
        self._loaded_at: float | None = None
        self._listeners: list[Listener[T]] = []
        self._notified = asyncio.Event()
        self._stopping = asyncio.Event()
        self._first_load = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None

    @property
    def value(self) -> T | None:
        """The current snapshot; None until the first load succeeded."""
        return self._value

    @property
    def loaded(self) -> bool:
        return self._value is not None

    @property
    def age(self) -> float | None:
        """Seconds since the last successful load (None before the first)."""
        return None if self._loaded_at is None else time.monotonic() - self._loaded_at

    def subscribe(self, listener: Listener[T]) -> None:
        """Call ``listener(snapshot)`` after every successful load (first one included)."""
        self._listeners.append(listener)

    async def start(self, *, wait: timedelta = timedelta(seconds=10)) -> None:
        """Start the loop and wait up to ``wait`` for the first load (it goes on trying after)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"live-{self.name}")
        try:
            await asyncio.wait_for(self._first_load.wait(), wait.total_seconds())
        except TimeoutError:
            log.warning("live table not loaded yet; serving without it", table=self.name)

    async def stop(self) -> None:
        """Stop listening and close the connection. Idempotent."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close()

    async def reload(self) -> T:
        """Load now (e.g. right after this process changed the table); raises DatabaseError."""
        connection = await self._ensure_connection()
        try:
            value = await self._load(connection)
        except DB_ERRORS as exc:
            await self._close()
            raise DatabaseError(f"could not load {self.name}: {exc}") from exc
        self._publish(value)
        return value

    async def __aenter__(self) -> LiveTable[T]:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # --- the loop ---------------------------------------------------------------------------
    async def _run(self) -> None:
        retry = Retry(RECONNECT_BACKOFF)
        while not self._stopping.is_set():
            try:
                await self.reload()
                retry.succeeded()
                await self._wait_for_change()
            except DatabaseError as exc:
                delay = retry.failed()
                log.warning(
                    "live table reload failed; keeping the last snapshot",
                    table=self.name,
                    error=str(exc),
                    retry_in_s=round(delay, 2),
                    have_snapshot=self.loaded,
                )
                await retry.wait(delay, self._stopping)

    async def _wait_for_change(self) -> None:
        """Until a notification (then the debounce) or the reload interval, or the stop."""
        waiters = {
            asyncio.ensure_future(self._notified.wait()),
            asyncio.ensure_future(self._stopping.wait()),
        }
        try:
            await asyncio.wait(
                waiters,
                timeout=self._reload_interval.total_seconds(),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        if self._notified.is_set():
            await self._sleep(self._debounce.total_seconds())  # let a burst of changes land
            self._notified.clear()
        connection = self._connection
        if connection is None or connection.is_closed():
            raise DatabaseError(f"the listening connection of {self.name} was lost")

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return

    async def _ensure_connection(self) -> asyncpg.Connection:
        connection = self._connection
        if connection is not None and not connection.is_closed():
            return connection
        connection = await connect(self._dsn)
        try:
            await connection.add_listener(self._channel, self._on_notify)
        except DB_ERRORS as exc:
            await connection.close()
            raise DatabaseError(f"could not LISTEN on {self._channel}: {exc}") from exc
        connection.add_termination_listener(self._on_terminated)
        self._connection = connection
        return connection

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await asyncio.wait_for(connection.close(), 5)
            except (TimeoutError, *DB_ERRORS):
                connection.terminate()

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, _payload: object) -> None:
        self._notified.set()

    def _on_terminated(self, _connection: Any) -> None:
        self._notified.set()  # wake the loop: it notices the closed connection and reconnects

    def _publish(self, value: T) -> None:
        self._value = value
        self._loaded_at = time.monotonic()
        self._first_load.set()
        for listener in list(self._listeners):
            try:
                listener(value)
            except Exception:
                log.exception("live table listener failed", table=self.name)


__all__ = ["LiveTable"]
