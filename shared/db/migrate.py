"""Versioned SQL migrations: ``NNNN_name.sql`` files in this folder, applied in order.

Each file runs in its own transaction and is recorded in ``schema_migrations`` with a checksum.
Applying is idempotent (applied versions are skipped) and safe with several replicas starting at
once (a PostgreSQL advisory lock serialises runners). A recorded migration whose file has changed
since is an error: migrations are append-only, fix forward with a new file.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from shared.db.pool import DbSession
from shared.errors import DatabaseError, MigrationError
from shared.logging import get_logger

log = get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every runner of this project.
_LOCK_KEY = 0x4155_5453_594E_43  # "AUTSYNC"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All migration files in version order; duplicate versions are an error."""
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name} is not named NNNN_name.sql")
        version = int(match["version"])
        if version in migrations:
            raise MigrationError(f"two migration files have version {version:04d}")
        migrations[version] = Migration(version, match["name"], path.read_text())
    return [migrations[v] for v in sorted(migrations)]


async def apply_migrations(db: DbSession, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply pending migrations; returns those applied now (empty when up to date)."""
    migrations = discover(directory)
    applied_now: list[Migration] = []
    current = "bookkeeping"
    # A migration's WARNING (e.g. a role it may not create) is for the person running migrate,
    # not only the server's log.
    db.add_log_listener(_said)
    try:
        await db.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await db.execute(_CREATE_TABLE)
            recorded = {
                row["version"]: row["checksum"]
                for row in await db.fetch("SELECT version, checksum FROM schema_migrations")
            }
            for migration in migrations:
                if migration.version in recorded:
                    if recorded[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version:04d}_{migration.name} was changed "
                            "after it was applied; add a new migration instead"
                        )
                    continue
                current = f"{migration.version:04d}_{migration.name}"
                started = time.monotonic()
                async with db.transaction():
                    await db.execute(migration.sql)
                    await db.execute(
                        "INSERT INTO schema_migrations (version, name, checksum, duration_ms) "
                        "VALUES ($1, $2, $3, $4)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                        int((time.monotonic() - started) * 1000),
                    )
                log.info("applied migration", version=migration.version, name=migration.name)
                applied_now.append(migration)
        finally:
            await db.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"migration failed at {current}: {exc}") from exc
    except (OSError, asyncpg.InterfaceError) as exc:
        raise DatabaseError(f"lost the database connection while migrating: {exc}") from exc
    finally:
        db.remove_log_listener(_said)
    return applied_now


def _said(_db: object, message: asyncpg.PostgresLogMessage) -> None:
    """A warning the server sent while migrating, logged (its notices, such as "already
    exists, skipping", are not worth anyone's attention)."""
    if str(getattr(message, "severity", "")).upper() == "WARNING":
        log.warning("the database warned while migrating", message=message.message)
