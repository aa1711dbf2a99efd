"""The scope each connection's mirror of each entity follows (table ``sync_scope_applied``).

Recorded when a first load finishes and when a scope reconciliation finishes
(:mod:`shared.reconcile.rescope`); read by the schedule, which compares the boundary it
draws with the one the connection's current scope draws (:mod:`shared.scope.boundary`).
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

from shared.db.pool import DbSession, guarded
from shared.errors import ConfigError
from shared.logging import get_logger
from shared.scope.rules import SyncScope

log = get_logger(__name__)


async def read_all(db: DbSession) -> dict[tuple[str, str], SyncScope]:
    """``(connection, entity) -> scope`` for every recorded entity. A stored scope this version
    cannot read counts as not recorded (the entity then follows the current scope)."""
    records = await guarded(
        db.fetch("SELECT connection, entity, scope FROM sync_scope_applied"),
        "read the scopes the mirror follows",
    )
    applied = {}
    for record in records:
        try:
            applied[(record["connection"], record["entity"])] = _parsed(record["scope"])
        except ConfigError as exc:
            log.warning("stored applied scope unreadable; following the current one",
                        connection=record["connection"], entity=record["entity"],
                        error=str(exc))  # fmt: skip
    return applied


def _parsed(stored: Any) -> SyncScope:
    """The scope of a stored document; a thousand connections' seven entities share a few
    documents, read every check of the schedule, so each is parsed once."""
    return _parse_text(json.dumps(stored, sort_keys=True))


@functools.lru_cache(maxsize=1024)
def _parse_text(text: str) -> SyncScope:
    return SyncScope.parse(text)


async def read(db: DbSession, connection: str, entity: str) -> SyncScope | None:
    """The scope the mirror of ``entity`` follows for ``connection``; None when not recorded."""
    value = await guarded(
        db.fetchval(
            "SELECT scope FROM sync_scope_applied WHERE connection = $1 AND entity = $2",
            connection,
            entity,
        ),
        f"read the scope {entity} follows",
    )
    return None if value is None else SyncScope.parse(value)


async def read_connection(db: DbSession, connection: str) -> dict[str, tuple[SyncScope, datetime]]:
    """``entity -> (scope, applied_at)`` recorded for ``connection``."""
    records = await guarded(
        db.fetch(
            "SELECT entity, scope, applied_at FROM sync_scope_applied WHERE connection = $1",
            connection,
        ),
        f"read the scopes the mirror of {connection!r} follows",
    )
    return {r["entity"]: (SyncScope.parse(r["scope"]), r["applied_at"]) for r in records}


async def record(db: DbSession, connection: str, entity: str, scope: SyncScope) -> None:
    """The mirror of ``entity`` for ``connection`` follows ``scope`` from now on."""
    await guarded(
        db.execute(
            "INSERT INTO sync_scope_applied (connection, entity, scope) VALUES ($1, $2, $3) "
            "ON CONFLICT (connection, entity) DO UPDATE SET scope = excluded.scope, "
            "applied_at = now()",
            connection,
            entity,
            scope.to_json(),
        ),
        f"record the scope {entity} follows",
    )


__all__ = ["read", "read_all", "read_connection", "record"]
