"""Session advisory locks held on a dedicated connection: one holder across every replica.

A sweep of one connection and entity takes ``lock_key("sweep", connection, entity)`` for as long
as it runs. The lock lives on a connection of its own (not a pooled one, which would hand the
session to someone else), so it is released when the holder releases it, closes the connection,
or dies: PostgreSQL ends the session and frees its locks, so a SIGKILLed replica never leaves a
sweep locked.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import timedelta

import asyncpg

from shared.db.pool import DB_ERRORS, connect, guarded
from shared.errors import DatabaseError


def lock_key(*parts: str) -> int:
    """A signed 64-bit key for ``parts`` (a collision only makes two holders wait for each
    other)."""
    digest = hashlib.blake2b("|".join(("autotask-sync", *parts)).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


class AdvisoryLock:
    """``pg_advisory_lock(key)`` on its own connection; see the module docstring.

    ::

        lock = AdvisoryLock(dsn, lock_key("sweep", "acme", "Tickets"))
        if await lock.try_acquire():
            try: ...
            finally: await lock.release()
    """

    def __init__(self, dsn: str, key: int, *, name: str = "") -> None:
        self._dsn = dsn
        self.key = key
        self.name = name or str(key)
        self._connection: asyncpg.Connection | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None and not self._connection.is_closed()

    async def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; False (at once) otherwise."""
        if self.held:
            return True
        connection = await connect(self._dsn)
        try:
            got = await guarded(
                connection.fetchval("SELECT pg_try_advisory_lock($1)", self.key),
                f"take the lock {self.name}",
            )
        except DatabaseError:
            await connection.close()
            raise
        if not got:
            await connection.close()
            return False
        self._connection = connection
        return True

    async def acquire(self, *, wait: timedelta, poll: timedelta = timedelta(seconds=1)) -> bool:
        """Take the lock, waiting up to ``wait`` for its holder to finish; False if it did not."""
        deadline = time.monotonic() + wait.total_seconds()
        while True:
            if await self.try_acquire():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(poll.total_seconds(), left))

    async def release(self) -> None:
        """Give the lock back (closing its connection); idempotent."""
        connection, self._connection = self._connection, None
        if connection is None or connection.is_closed():
            return
        try:
            await connection.execute("SELECT pg_advisory_unlock($1)", self.key)
        except DB_ERRORS:
            pass  # the session is going away: closing it frees the lock anyway
        finally:
            await connection.close()


__all__ = ["AdvisoryLock", "lock_key"]
