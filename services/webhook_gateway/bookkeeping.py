"""When each registration last had a callout accepted, written in the background.

The request path only updates a dict in memory; every ``interval`` the latest time per
registration is written in one batch (``record_callouts``), and once more at shutdown. A failed
write keeps the times for the next one, so an outage delays the bookkeeping but does not lose it
(it is informational: the provisioner uses it to spot silent webhooks).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from shared.db import Pool, session
from shared.errors import DatabaseError
from shared.logging import get_logger
from shared.registrations import record_callouts

log = get_logger(__name__)


class LastCallouts:
    """The latest accepted callout time per registration, flushed in batches."""

    def __init__(self, *, pool: Pool, interval: timedelta) -> None:
        self._pool = pool
        self._interval = interval.total_seconds()
        self._pending: dict[str, datetime] = {}

    def saw(self, registration_id: str, at: datetime) -> None:
        """A callout of ``registration_id`` received at ``at`` was made durable."""
        previous = self._pending.get(registration_id)
        if previous is None or at > previous:
            self._pending[registration_id] = at

    async def flush(self) -> bool:
        """Write what is pending; False (and kept for next time) when PostgreSQL refused."""
        if not self._pending:
            return True
        batch, self._pending = self._pending, {}
        try:
            async with asyncio.timeout(max(self._interval, 5.0)):
                async with session(self._pool, "record when callouts were last seen") as db:
                    await record_callouts(db, batch)
        except (DatabaseError, TimeoutError) as exc:
            for registration_id, at in batch.items():
                self.saw(registration_id, at)
            log.warning("could not record when callouts were last seen", error=repr(exc))
            return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every interval until ``stop``; the wait ends early on ``stop``, so what
        arrived last is flushed too."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
            await self.flush()


__all__ = ["LastCallouts"]
