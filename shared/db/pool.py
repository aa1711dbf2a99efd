"""asyncpg pool factory with the project's codecs; errors translated to DatabaseError."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.errors import DatabaseError
from shared.logging import redact_text

# A connection straight from asyncpg.connect() or one borrowed from a pool.
T = TypeVar("T")

PgConnection: TypeAlias = asyncpg.Connection | PoolConnectionProxy


async def init_connection(db: asyncpg.Connection) -> None:
    """Codecs every connection of the project uses: jsonb/json as Python objects."""
    await db.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await db.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, **options: Any
) -> asyncpg.Pool:
    """Open a pool; a failure names the host but never the password."""
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=init_connection,
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


async def connect(
    dsn: str, *, connect_timeout: timedelta = timedelta(seconds=10)
) -> asyncpg.Connection:
    """One dedicated connection (for LISTEN, advisory locks held across calls); errors are
    DatabaseError and never show the password."""
    try:
        connection = await asyncpg.connect(dsn, timeout=connect_timeout.total_seconds())
        await init_connection(connection)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseError(
            f"could not connect to PostgreSQL at {redact_text(_safe_dsn(dsn))}: "
            f"{redact_text(str(exc)) or type(exc).__name__}"
        ) from None
    return connection


DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
"""What asyncpg raises for a failed statement or a lost connection. ``InternalClientError``
("cannot switch to state 12; another operation is in progress") is what a pooled connection
says when the server went away in the middle of its statement (MagicStack/asyncpg#1069); the
pool terminates such a connection when it is released, so the next try gets a new one."""


_TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,  # the connection was closed under the statement
    asyncpg.InternalClientError,  # ...or its protocol was left mid-operation by that
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.OperatorInterventionError,  # 57: shutting down, starting up, cancelled
    asyncpg.InsufficientResourcesError,  # 53: too many connections, out of memory or disk
    asyncpg.TransactionRollbackError,  # 40: deadlock, serialization failure
)
"""Failures that trying again later can cure; any other PostgresError is the statement's fault."""


def database_error(exc: BaseException, what: str) -> DatabaseError:
    """DatabaseError("could not {what}: ...") for an asyncpg failure, retriable only when the
    server or the connection was the problem (a rejected row stays rejected)."""
    detail = redact_text(str(exc)) or type(exc).__name__
    return DatabaseError(f"could not {what}: {detail}", retriable=isinstance(exc, _TRANSIENT))


async def guarded(awaitable: Awaitable[T], what: str) -> T:
    """Await a statement; a failure becomes :func:`database_error`."""
    try:
        return await awaitable
    except DB_ERRORS as exc:
        raise database_error(exc, what) from exc


def _safe_dsn(dsn: str) -> str:
    """The DSN without user info, for messages."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        return "<dsn>"
    return f"{scheme}://{rest.rpartition('@')[2]}"
