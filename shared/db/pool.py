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

Every DSN comes from :func:`shared.db.dsn.database_dsn`, TLS included. A session that cannot be
opened because of TLS (a certificate that does not verify, a name it is not valid for, a server
without TLS, a certificate file that cannot be read) fails with one line that names the setting
to fix, and, when opening a pool or a dedicated session, is not retriable: waiting does not
change a certificate, so a starting service stops at once instead of trying for minutes.
"""

from __future__ import annotations

import asyncio
import errno
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeAlias, TypeVar
from urllib.parse import parse_qsl, urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.db.dsn import FILE_PARAMETERS
from shared.errors import DatabaseError
from shared.logging import redact_text
from shared.settings import ENV_PREFIX

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
    """Open a pool; a failure names the host but never the password. A pool that fails or is
    cancelled while it opens its first sessions closes those it opened (asyncpg leaves them to
    the abandoned pool, open on the server)."""
    pool = asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_session,
        connect=_handshake,
        command_timeout=60,
        **options,
    )
    with _opening(dsn):
        try:
            await pool
        except BaseException:
            pool.terminate()
            raise
    return pool


async def connect(
    dsn: str, *, connect_timeout: timedelta = timedelta(seconds=10)
) -> asyncpg.Connection:
    """One dedicated connection (for LISTEN, advisory locks held across calls); errors are
    DatabaseError and never show the password."""
    with _opening(dsn):
        connection = await _handshake(dsn, timeout=connect_timeout.total_seconds())
        try:
            await init_session(connection)
        except BaseException:
            connection.terminate()
            raise
    return connection


@contextmanager
def _opening(dsn: str) -> Iterator[None]:
    """What opening a session (or a pool's first ones) raises, as :func:`connect_error`."""
    try:
        yield
    except (TimeoutError, *DB_ERRORS) as exc:
        raise connect_error(exc, dsn) from None


CANCELLED_CONNECT_GRACE = timedelta(seconds=2)
"""How long a cancelled handshake may finish before it is cut (see :func:`_handshake`)."""


async def _handshake(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    """``asyncpg.connect`` that a cancel does not cut in the middle.

    Cutting asyncpg's handshake at the wrong moment leaves an error on a future nobody awaits
    (its SSL-request protocol is told the connection was lost: MagicStack/asyncpg#1211, #1310),
    which asyncio reports as "Future exception was never retrieved", and can leave the session
    open on the server. A handshake is a few round trips, so a stop that cancels it waits for it
    (up to :data:`CANCELLED_CONNECT_GRACE`) and closes what it opened; one still going after the
    grace (an unreachable server) is cut. The pool opens its sessions through it too."""
    attempt = asyncio.ensure_future(asyncpg.connect(*args, **kwargs))
    try:
        return await asyncio.shield(attempt)
    except asyncio.CancelledError:
        done, _ = await asyncio.wait({attempt}, timeout=CANCELLED_CONNECT_GRACE.total_seconds())
        if not done:
            attempt.cancel()
            await asyncio.wait({attempt})
        if not attempt.cancelled() and attempt.exception() is None:
            attempt.result().terminate()
        raise


def connect_error(exc: BaseException, dsn: str) -> DatabaseError:
    """DatabaseError("could not connect to PostgreSQL at <host>: ...") for a session that could
    not be opened; never the password. A TLS or client configuration problem says which
    setting to fix and is not retriable."""
    where = redact_text(_safe_dsn(dsn))
    problem = _tls_problem(exc, dsn)
    if problem is not None:
        return DatabaseError(
            f"could not connect to PostgreSQL at {where}: {problem}", retriable=False
        )
    detail = _one_line(redact_text(str(exc))) or type(exc).__name__
    return DatabaseError(f"could not connect to PostgreSQL at {where}: {detail}")


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
    server or the connection was the problem (a rejected row stays rejected).

    A TLS problem of a new pooled session is explained (:func:`connect_error`) but stays
    retriable here: the statement is not at fault, and must not be given up on for it."""
    detail = _tls_problem(exc, None) or redact_text(str(exc)) or type(exc).__name__
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
    """The DSN without user info and query (which may hold ``password`` or ``sslpassword``),
    for messages."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        return "<dsn>"
    return f"{scheme}://{rest.partition('?')[0].rpartition('@')[2]}"


_ROOT_CERT_FIX = f"check {ENV_PREFIX}DATABASE_SSLROOTCERT or sslrootcert in DATABASE_URL"
_MODE_FIX = f"check {ENV_PREFIX}DATABASE_SSLMODE or sslmode in DATABASE_URL"
_CLIENT_CERT_FIX = (
    f"check {ENV_PREFIX}DATABASE_SSLCERT and {ENV_PREFIX}DATABASE_SSLKEY "
    "or sslcert and sslkey in DATABASE_URL"
)
_TLS_CUT = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
"""TLS errors that mean the connection broke, not that the configuration is wrong."""


def _tls_problem(exc: BaseException, dsn: str | None) -> str | None:
    """What went wrong with TLS (or the client's configuration) and which setting fixes it;
    None when ``exc`` is not such a problem.

    What to fix comes first and the library's words last: a log line keeps a field's first
    256 characters (``shared.logging.FIELD_LIMIT``)."""
    text = _one_line(redact_text(str(exc)))
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = str(getattr(exc, "verify_message", None) or text).rstrip(".")
        if "mismatch" in reason:  # "Hostname mismatch" / "IP address mismatch"
            return (
                "certificate verify failed: check the host in DATABASE_URL, the server's "
                f"certificate does not list it (sslmode=verify-full checks the name) ({reason})"
            )
        return f"certificate verify failed: {_ROOT_CERT_FIX} ({reason})"
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, _TLS_CUT):
        reason = getattr(exc, "reason", None) or text
        return f"TLS failed: {_CLIENT_CERT_FIX} ({reason})"
    if isinstance(exc, ConnectionError) and "rejected SSL upgrade" in text:
        return (
            "the server does not offer TLS, which sslmode demands: turn ssl on at the server, "
            f"or {_MODE_FIX}"
        )
    if isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.EACCES, errno.EISDIR):
        unreadable = _unreadable_file(dsn) if dsn else None
        if unreadable is not None:
            key, path = unreadable
            setting = f"{ENV_PREFIX}DATABASE_{key.upper()} or " if key != "sslcrl" else ""
            return f"cannot read {path}: check {setting}{key} in DATABASE_URL ({exc.strerror})"
        return None
    if isinstance(exc, asyncpg.ClientConfigurationError):
        if "root certificate" in text:
            return f"no root certificate: {_ROOT_CERT_FIX} ({text})"
        if "sslmode" in text:
            return f"{_MODE_FIX} ({text})"
        return f"check DATABASE_URL ({text})"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        if "no encryption" in text:  # pg_hba.conf has only hostssl lines for us
            return f"the server accepts only TLS: {_MODE_FIX} (verify-full) ({text})"
        if "certificate" in text:
            return f"{_CLIENT_CERT_FIX} ({text})"
    return None


def _unreadable_file(dsn: str) -> tuple[str, str] | None:
    """The first certificate or key file the DSN names that cannot be read, as (parameter,
    path)."""
    try:
        parameters = dict(parse_qsl(urlsplit(dsn).query))
    except ValueError:
        return None
    for key in FILE_PARAMETERS:
        path = parameters.get(key)
        if path is not None and not _readable(Path(path)):
            return key, path
    return None


def _readable(path: Path) -> bool:
    try:
        with path.open("rb"):
            return True
    except OSError:
        return False


def _one_line(text: str) -> str:
    return " ".join(text.split())
