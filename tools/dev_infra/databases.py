"""Scratch databases: one per test, benchmark or demo run, on whatever server the stack gives."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg

from shared.db import apply_migrations, connect


@contextlib.asynccontextmanager
async def scratch_database(
    server_dsn: str, prefix: str, *, migrated: bool = True
) -> AsyncIterator[str]:
    """A new database named ``{prefix}_{random}`` on the server ``server_dsn`` points at, with
    the project's migrations applied unless ``migrated`` is false; yields its DSN and drops it
    afterwards, whoever is still connected."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = f"{server_dsn.rpartition('/')[0]}/{name}"
    try:
        if migrated:
            db = await connect(dsn)
            try:
                await apply_migrations(db)
            finally:
                await db.close()
        yield dsn
    finally:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            admin = await asyncpg.connect(server_dsn)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()
