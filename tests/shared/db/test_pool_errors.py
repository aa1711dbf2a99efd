"""Which PostgreSQL failures the services retry: the server's or the connection's, never the
statement's own (a rejected row stays rejected)."""

from __future__ import annotations

import asyncpg
import pytest

from shared.db.pool import DB_ERRORS, database_error, guarded
from shared.errors import DatabaseError


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        # what a pooled connection says after the server went away mid-statement
        asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_a_lost_server_or_connection_is_retriable(exc: BaseException) -> None:
    async def statement() -> None:
        raise exc

    with pytest.raises(DatabaseError) as raised:
        await guarded(statement(), "write the mirror")
    assert raised.value.retriable
    assert str(raised.value).startswith("could not write the mirror: ")


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
        asyncpg.UndefinedTableError('relation "mirror_tickets" does not exist'),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_statement_postgresql_rejects_is_not_retried(exc: BaseException) -> None:
    assert isinstance(exc, DB_ERRORS)
    assert not database_error(exc, "write the mirror").retriable
