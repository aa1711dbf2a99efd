"""PostgreSQL login roles for tests that read as someone else than the superuser: a downstream
reader of the mirror (docs/consumers.md), an application owner without CREATEROLE."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit, urlunsplit

from shared.db import connect


def login_dsn(
    dsn: str, *, user: str | None = None, password: str | None = None, database: str | None = None
) -> str:
    """``dsn`` logging in as ``user`` (with ``password``) and on ``database``, where given."""
    parts = urlsplit(dsn)
    login, _, host = parts.netloc.rpartition("@")
    if user is not None:
        login = f"{user}:{quote(password)}" if password is not None else user
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit(parts._replace(netloc=f"{login}@{host}", path=path))


@contextlib.asynccontextmanager
async def mirror_reader(dsn: str) -> AsyncIterator[str]:
    """A new login role granted ``autotask_reader``, as an operator makes one; yields its DSN on
    the database of ``dsn`` (a superuser's) and drops the role afterwards (roles are
    server-wide)."""
    name = f"reader_{secrets.token_hex(5)}"
    password = secrets.token_urlsafe(12)
    admin = await connect(dsn)
    try:
        await admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        await admin.execute(f"GRANT autotask_reader TO {name}")
    finally:
        await admin.close()
    try:
        yield login_dsn(dsn, user=name, password=password)
    finally:
        admin = await connect(dsn)
        try:
            await admin.execute(f"DROP ROLE IF EXISTS {name}")
        finally:
            await admin.close()
