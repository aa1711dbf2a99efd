"""Rows of the ``connections`` table: the connections configured in the database.

Secrets stay encrypted here (``bytea`` Fernet tokens); :meth:`StoredConnection.open` decrypts
them into an Autotask :class:`~shared.autotask.Connection` with the process's
:class:`~shared.secrets.SecretBox`. A failed statement is a DatabaseError; a duplicate or
malformed name, a ConfigError saying what to do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import SecretStr, ValidationError

from shared.autotask import Connection
from shared.db import DbSession, Record, db_errors, guarded
from shared.errors import ConfigError, DatabaseError
from shared.scope.rules import SyncScope
from shared.secrets import SecretBox
from shared.settings import CONNECTION_NAME_PATTERN

CHANNEL = "autotask_sync_connections"
"""NOTIFY channel of the table's trigger (migration 0002)."""

_COLUMNS = (
    "name, username, secret_encrypted, integration_code_encrypted, zone_url, zone_lookup_url, "
    "impersonation_resource_id, scope, enabled, created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class StoredConnection:
    """One row, secrets still encrypted; its repr shows no ciphertext."""

    name: str
    username: str
    secret_encrypted: bytes = field(repr=False)
    integration_code_encrypted: bytes = field(repr=False)
    zone_url: str | None = None
    zone_lookup_url: str | None = None
    impersonation_resource_id: int | None = None
    scope: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_record(cls, record: Record | Mapping[str, Any]) -> StoredConnection:
        return cls(
            name=record["name"],
            username=record["username"],
            secret_encrypted=bytes(record["secret_encrypted"]),
            integration_code_encrypted=bytes(record["integration_code_encrypted"]),
            zone_url=record["zone_url"],
            zone_lookup_url=record["zone_lookup_url"],
            impersonation_resource_id=record["impersonation_resource_id"],
            scope=record["scope"] or {},
            enabled=record["enabled"],
            created_at=record["created_at"],
            updated_at=record["updated_at"],
        )

    def sync_scope(self) -> SyncScope:
        return SyncScope.parse(dict(self.scope))

    def open(self, box: SecretBox, *, default_zone_lookup_url: str) -> Connection:
        """The Autotask connection, secrets decrypted (SecretDecryptionError if no key opens)."""
        secret = box.decrypt(self.secret_encrypted, what=f"connection {self.name!r}'s API secret")
        code = box.decrypt(
            self.integration_code_encrypted,
            what=f"connection {self.name!r}'s integration code",
        )
        try:
            return Connection(
                name=self.name,
                username=self.username,
                secret=secret,
                integration_code=code,
                zone_url=self.zone_url,
                zone_lookup_url=self.zone_lookup_url or default_zone_lookup_url,
                impersonation_resource_id=self.impersonation_resource_id,
            )
        except ValidationError as exc:
            fields = ", ".join(str(e["loc"][0]) for e in exc.errors() if e.get("loc"))
            raise ConfigError(f"connection {self.name!r} has invalid settings: {fields}") from None


@dataclass(frozen=True, slots=True)
class NewConnection:
    """What ``connections add`` stores (secrets in clear until :func:`insert` encrypts them)."""

    name: str
    username: str
    secret: SecretStr = field(repr=False)
    integration_code: SecretStr = field(repr=False)
    zone_url: str | None = None
    zone_lookup_url: str | None = None
    impersonation_resource_id: int | None = None
    scope: SyncScope = field(default_factory=SyncScope)
    enabled: bool = True


async def fetch_all(db: DbSession, *, enabled_only: bool = False) -> list[StoredConnection]:
    """Every row (or only enabled ones), by name."""
    where = "WHERE enabled" if enabled_only else ""
    rows = await guarded(
        db.fetch(f"SELECT {_COLUMNS} FROM connections {where} ORDER BY name"),  # noqa: S608 - fixed text
        "read the connections",
    )
    return [StoredConnection.from_record(row) for row in rows]


async def fetch_one(db: DbSession, name: str) -> StoredConnection | None:
    row = await guarded(
        db.fetchrow(f"SELECT {_COLUMNS} FROM connections WHERE name = $1", name),  # noqa: S608 - fixed text
        f"read connection {name!r}",
    )
    return None if row is None else StoredConnection.from_record(row)


async def insert(db: DbSession, new: NewConnection, box: SecretBox) -> None:
    """Store ``new``; a duplicate name is a ConfigError and leaves the table as it was."""
    try:
        await guarded(
            db.execute(
                "INSERT INTO connections (name, username, secret_encrypted, "
                "integration_code_encrypted, zone_url, zone_lookup_url, impersonation_resource_id, "
                "scope, enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                new.name,
                new.username,
                box.encrypt(new.secret),
                box.encrypt(new.integration_code),
                new.zone_url,
                new.zone_lookup_url,
                new.impersonation_resource_id,
                new.scope.to_json(),
                new.enabled,
            ),
            f"store connection {new.name!r}",
        )
    except DatabaseError as exc:
        refused = exc.sqlstate
        if refused == DatabaseError.UNIQUE_VIOLATION:
            raise ConfigError(
                f"connection {new.name!r} already exists; change it with `autotask-sync "
                "connections edit`, or choose another name"
            ) from None
        if refused == DatabaseError.CHECK_VIOLATION:
            raise ConfigError(_bad_name(new.name)) from None
        raise


async def update(
    db: DbSession,
    name: str,
    *,
    box: SecretBox | None = None,
    username: str | None = None,
    secret: SecretStr | None = None,
    integration_code: SecretStr | None = None,
    zone_url: str | None = None,
    zone_lookup_url: str | None = None,
    impersonation_resource_id: int | None = None,
    scope: SyncScope | None = None,
    enabled: bool | None = None,
) -> bool:
    """Change the given columns of ``name``; False when there is no such connection.

    ``box`` encrypts a new secret or integration code (needed only when one is given).
    """
    if (secret is not None or integration_code is not None) and box is None:
        raise ConfigError("a new secret needs the secret box (AUTOTASK_SYNC_SECRET_KEYS)")
    changes: dict[str, Any] = {
        "username": username,
        "secret_encrypted": None if secret is None or box is None else box.encrypt(secret),
        "integration_code_encrypted": (
            None if integration_code is None or box is None else box.encrypt(integration_code)
        ),
        "zone_url": zone_url,
        "zone_lookup_url": zone_lookup_url,
        "impersonation_resource_id": impersonation_resource_id,
        "scope": None if scope is None else scope.to_json(),
        "enabled": enabled,
    }
    columns = [(column, value) for column, value in changes.items() if value is not None]
    if not columns:
        return await fetch_one(db, name) is not None
    assignments = ", ".join(f"{column} = ${i}" for i, (column, _v) in enumerate(columns, start=2))
    status = await guarded(
        db.execute(
            f"UPDATE connections SET {assignments}, updated_at = now() WHERE name = $1",  # noqa: S608 - column names are ours
            name,
            *[value for _c, value in columns],
        ),
        f"update connection {name!r}",
    )
    return str(status).endswith(" 1")


async def delete(db: DbSession, name: str) -> bool:
    """Remove ``name``; False when there was no such connection."""
    status = await guarded(
        db.execute("DELETE FROM connections WHERE name = $1", name),
        f"remove connection {name!r}",
    )
    return str(status).endswith(" 1")


async def live_registrations(db: DbSession, name: str) -> int:
    """Webhook registrations of ``name`` that are not retired (they still receive callouts)."""
    count = await guarded(
        db.fetchval(
            "SELECT count(*) FROM webhook_registrations WHERE connection = $1 "
            "AND state <> 'retired'",
            name,
        ),
        f"count the webhook registrations of {name!r}",
    )
    return int(count or 0)


async def rekey(db: DbSession, box: SecretBox) -> dict[str, int]:
    """Re-encrypt every stored secret under the box's first key, in one transaction.

    Covers the connections' API secrets and integration codes and the webhook registrations'
    current and previous secrets. Either every value is re-encrypted or none is.
    """
    counts = {"connections": 0, "webhook_registrations": 0}
    with db_errors("re-encrypt the stored secrets"):
        async with db.transaction():
            rows = await db.fetch(
                "SELECT name, secret_encrypted, integration_code_encrypted FROM connections "
                "ORDER BY name FOR UPDATE"
            )
            for row in rows:
                name = row["name"]
                await db.execute(
                    "UPDATE connections SET secret_encrypted = $2, "
                    "integration_code_encrypted = $3 WHERE name = $1",
                    name,
                    box.reencrypt(
                        row["secret_encrypted"], what=f"connection {name!r}'s API secret"
                    ),
                    box.reencrypt(
                        row["integration_code_encrypted"],
                        what=f"connection {name!r}'s integration code",
                    ),
                )
                counts["connections"] += 1
            registrations = await db.fetch(
                "SELECT registration_id, connection, entity, secret_current, secret_previous "
                "FROM webhook_registrations ORDER BY registration_id FOR UPDATE"
            )
            for row in registrations:
                what = f"the {row['entity']} webhook secret of connection {row['connection']!r}"
                previous = row["secret_previous"]
                await db.execute(
                    "UPDATE webhook_registrations SET secret_current = $2, secret_previous = $3 "
                    "WHERE registration_id = $1",
                    row["registration_id"],
                    box.reencrypt(row["secret_current"], what=what),
                    None if previous is None else box.reencrypt(previous, what=what),
                )
                counts["webhook_registrations"] += 1
    return counts


def check_name(name: str) -> str:
    """``name`` if it is a valid connection name, else a ConfigError saying what is allowed."""
    if re.fullmatch(CONNECTION_NAME_PATTERN, name) is None:
        raise ConfigError(_bad_name(name))
    return name


def _bad_name(name: str) -> str:
    return (
        f"connection name {name!r} is not a lower-case slug: use 1-63 characters a-z, 0-9, '-' "
        "and '_', starting with a letter or digit (it appears in keys, rows and metric labels)"
    )


__all__ = [
    "CHANNEL",
    "NewConnection",
    "StoredConnection",
    "check_name",
    "delete",
    "fetch_all",
    "fetch_one",
    "insert",
    "live_registrations",
    "rekey",
    "update",
]
