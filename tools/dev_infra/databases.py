"""Scratch databases: one per test, benchmark or demo run, on whatever server the stack gives.

A migrated one is a copy of a template database that holds every migration (``CREATE DATABASE
... TEMPLATE``): copying files is several times cheaper than running the migrations' DDL again
for each of the hundreds of databases a test run makes. The template is built once per server
and set of migrations (its name carries their checksum), by whichever process needs it first.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator

import asyncpg

from shared.db import apply_migrations, connect, discover

_TEMPLATE_LOCK = 0x5C7A_7E3D
"""Advisory lock key serialising template builds between processes on one server."""
_templates: set[tuple[str, str]] = set()
"""(server, template) pairs known to exist, so the check is made once per process."""


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
        if migrated:
            template = await _migrated_template(admin, server_dsn)
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        else:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _dsn(server_dsn, name)
    finally:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            admin = await asyncpg.connect(server_dsn)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()


def template_name() -> str:
    """The template's name: it changes whenever a migration is added or edited."""
    digest = hashlib.sha256()
    for migration in discover():
        digest.update(f"{migration.version}:{migration.checksum}\n".encode())
    return f"autotask_sync_template_{digest.hexdigest()[:12]}"


async def _migrated_template(admin: asyncpg.Connection, server_dsn: str) -> str:
    """Build the template unless it exists. It is built under another name and renamed when
    done, so nobody copies it half-built or while the builder is still connected to it."""
    name = template_name()
    if (server_dsn, name) in _templates:
        return name
    await admin.execute("SELECT pg_advisory_lock($1)", _TEMPLATE_LOCK)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            building = f"{name}_building"
            await admin.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{building}"')
            db = await connect(_dsn(server_dsn, building))
            try:
                await apply_migrations(db)
            finally:
                await db.close()
            await admin.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    finally:
        await admin.execute("SELECT pg_advisory_unlock($1)", _TEMPLATE_LOCK)
    _templates.add((server_dsn, name))
    return name


def _dsn(server_dsn: str, database: str) -> str:
    return f"{server_dsn.rpartition('/')[0]}/{database}"
