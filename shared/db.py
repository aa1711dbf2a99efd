"""asyncpg pool factory with the project's codecs; errors translated to DatabaseError."""

from __future__ import annotations

import json
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.errors import DatabaseError
from shared.logging import redact_text

# A connection straight from asyncpg.connect() or one borrowed from a pool.
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy


async def _init_connection(connection: asyncpg.Connection) -> None:
    # jsonb columns come and go as Python objects rather than strings.
    await connection.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )
    await connection.set_type_codec(
        "json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, **options: Any
) -> asyncpg.Pool:
    """Open a pool; a failure names the host but never the password."""
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            command_timeout=60,
            **options,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseError(
            f"could not connect to PostgreSQL at {redact_text(_safe_dsn(dsn))}: "
            f"{redact_text(str(exc))}"
        ) from None
    assert pool is not None
    return pool


def _safe_dsn(dsn: str) -> str:
    """The DSN without user info, for messages."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        return "<dsn>"
    return f"{scheme}://{rest.rpartition('@')[2]}"
