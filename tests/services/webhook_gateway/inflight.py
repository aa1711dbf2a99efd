"""Holding callouts in flight for stop tests: the spool locked against writes (callouts sent
while Kafka is away wait in their spool write), and whether the gateway still takes connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiohttp

from shared.db import DedicatedSession, connect
from tests.helpers.waiting import eventually
from tests.services.webhook_gateway.helpers import signed_headers


@asynccontextmanager
async def spool_locked(dsn: str) -> AsyncIterator[DedicatedSession]:
    """The spool takes no row while the block runs (reads still work); callouts wait in their
    spool write until it ends."""
    db = await connect(dsn)
    try:
        transaction = db.transaction()
        await transaction.start()
        await db.execute("LOCK TABLE callout_spool IN EXCLUSIVE MODE")
        try:
            yield db
        finally:
            await transaction.rollback()
    finally:
        await db.close()


async def spool_writes_waiting(db: DedicatedSession) -> int:
    """Sessions waiting for the spool table's lock (callouts in their spool write)."""
    count = await db.fetchval(
        "SELECT count(*) FROM pg_locks WHERE relation = 'callout_spool'::regclass AND NOT granted"
    )
    return int(count)


async def refuses_connections(url: str) -> bool:
    """Whether a new connection to ``url`` is refused (or dropped unanswered)."""
    async with aiohttp.ClientSession() as fresh:
        try:
            async with fresh.get(url):
                return False
        except aiohttp.ClientConnectionError:
            return True


@asynccontextmanager
async def callouts_waiting_in_the_spool(
    http: aiohttp.ClientSession, url: str, bodies: Sequence[bytes], *, secret: str, dsn: str
) -> AsyncIterator[list[asyncio.Task[int]]]:
    """``bodies`` posted signed to ``url`` (a gateway without Kafka), the block entered once
    each waits in its spool write; the spool is unlocked as the block ends. Yields the posts
    (their statuses once done)."""

    async def post(body: bytes) -> int:
        async with http.post(url, data=body, headers=signed_headers(secret, body)) as response:
            return response.status

    async with spool_locked(dsn) as locker:
        posts = [asyncio.create_task(post(body)) for body in bodies]

        async def all_waiting() -> bool:
            return await spool_writes_waiting(locker) >= len(bodies)

        await eventually(all_waiting)
        yield posts
