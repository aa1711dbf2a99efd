"""PostgreSQL sessions: the pool, dedicated sessions, and the one boundary where asyncpg's errors
become :class:`~shared.errors.DatabaseError`.

Code outside ``shared/db`` never names asyncpg: it holds a :data:`Pool`, borrows a
:data:`DbSession` with :func:`session` (or :func:`transaction`), and catches ``DatabaseError``,
whose ``retriable`` says whether waiting can cure it::

    async with session(pool, "read the spool") as db:
        rows = await db.fetch("SELECT ...")

Statements run on a session the caller already holds go through :func:`guarded` (one awaitable)
or :func:`db_errors` (a block). The word "connection" is the project's for an Autotask tenant; a
PostgreSQL session is ``db``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from typing import Any, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.errors import DatabaseError
from shared.logging import redact_text

T = TypeVar("T")

Pool: TypeAlias = asyncpg.Pool
"""The process's pool of PostgreSQL sessions (:func:`create_pool`)."""

DedicatedSession: TypeAlias = asyncpg.Connection
"""A session of its own (:func:`connect`): LISTEN, or advisory locks held across statements."""

DbSession: TypeAlias = asyncpg.Connection | PoolConnectionProxy
"""Any session: dedicated, or borrowed from the pool."""

Record: TypeAlias = asyncpg.Record
"""A result row (read by column name)."""


async def init_session(db: asyncpg.Connection) -> None:
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
            init=init_session,
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
        await init_session(connection)
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
    sqlstate = getattr(exc, "sqlstate", None)
    return DatabaseError(
        f"could not {what}: {detail}",
        retriable=isinstance(exc, _TRANSIENT),
        sqlstate=sqlstate if isinstance(sqlstate, str) else None,
    )


async def guarded(awaitable: Awaitable[T], what: str) -> T:
    """Await a statement; a failure becomes :func:`database_error`."""
    with db_errors(what):
        return await awaitable


@contextmanager
def db_errors(what: str) -> Iterator[None]:
    """Statements in this block raise :class:`DatabaseError` ("could not {what}: ...") instead
    of asyncpg's errors."""
    try:
        yield
    except DB_ERRORS as exc:
        raise database_error(exc, what) from exc


@asynccontextmanager
async def session(
    pool: Pool, what: str, *, wait: timedelta | None = None
) -> AsyncIterator[DbSession]:
    """Borrow a session from ``pool`` for the block (waiting at most ``wait`` for one).

    Failing to get one, and any asyncpg error in the block, raise :class:`DatabaseError`
    ("could not {what}: ..."); the session goes back to the pool either way (the pool drops one
    the server closed)."""
    try:
        async with pool.acquire(timeout=None if wait is None else wait.total_seconds()) as db:
            yield db
    except DB_ERRORS as exc:
        raise database_error(exc, what) from exc


@asynccontextmanager
async def transaction(
    pool: Pool, what: str, *, wait: timedelta | None = None
) -> AsyncIterator[DbSession]:
    """:func:`session` with the block in one transaction: committed when it ends normally,
    rolled back when it raises."""
    async with session(pool, what, wait=wait) as db, db.transaction():
        yield db


def _safe_dsn(dsn: str) -> str:
    """The DSN without user info, for messages."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        return "<dsn>"
    return f"{scheme}://{rest.rpartition('@')[2]}"
