"""A dedicated session whose opening is cancelled (a stop during a reconnect) leaves nothing
behind: no error on a future nobody awaits, no session open on the server."""

from __future__ import annotations

import asyncio
import gc
from datetime import timedelta

import asyncpg
import pytest

from shared.db.pool import connect, create_pool
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.integration


async def _sessions(admin: asyncpg.Connection) -> int:
    return int(
        await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    )


async def _dedicated(dsn: str) -> object:
    return await connect(dsn)


async def _pool(dsn: str) -> object:
    return await create_pool(dsn, min_size=2, max_size=2)


@pytest.mark.parametrize("opener", [_dedicated, _pool], ids=["dedicated", "pool"])
async def test_a_connect_cancelled_at_any_step_of_its_handshake_leaves_nothing(
    database_url: str, opener
) -> None:
    """An error left on a future fails the test through the suite's check of the event loop
    (tests/conftest.py); the sessions are counted here."""
    admin = await asyncpg.connect(database_url)
    try:
        before = await _sessions(admin)
        # The cancel lands after 0, 1, ... 24 turns of the event loop: before the TCP connect,
        # during the SSL request, the startup, the authentication and the session's codecs.
        for turns in range(25):
            for _repeat in range(4):
                attempt = asyncio.ensure_future(opener(database_url))
                for _ in range(turns):
                    await asyncio.sleep(0)
                attempt.cancel()
                try:
                    opened = await attempt
                except asyncio.CancelledError:
                    continue
                await opened.close()  # type: ignore[attr-defined]  # done before the cancel
        gc.collect()  # an unretrieved future's error is reported when it is collected
        # A closed session's server process ends a moment later; one left open never does.
        await eventually(
            lambda: _sessions_at_most(admin, before),
            within=timedelta(seconds=20),
            what="the sessions of cancelled connects to end",
        )
    finally:
        await admin.close()


async def _sessions_at_most(admin: asyncpg.Connection, count: int) -> bool:
    return await _sessions(admin) <= count
