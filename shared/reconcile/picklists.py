"""PSA metadata in PostgreSQL: picklists (``psa_picklists``) and UDF definitions
(``psa_udf_definitions``) per connection and entity, replaced whole on each refresh.

The ``autotask.<table>_labeled`` and ``_live`` views (migration 0011) join the mirror's picklist
columns to these labels, so downstream shows "Complete" where the row says 5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.db.pool import DbSession, guarded


@dataclass(frozen=True, slots=True)
class PicklistEntry:
    """One value of one picklist field."""

    field: str
    value: str
    label: str
    is_active: bool = True
    is_default: bool = False
    is_system: bool = False
    sort_order: int | None = None
    parent_value: str | None = None


@dataclass(frozen=True, slots=True)
class UdfEntry:
    """One user-defined field's definition."""

    name: str
    label: str | None
    data_type: str
    is_required: bool
    is_picklist: bool
    picklist: Sequence[Mapping[str, Any]]
    definition: Mapping[str, Any]


async def replace(
    db: DbSession,
    connection: str,
    entity: str,
    *,
    picklists: Sequence[PicklistEntry],
    udfs: Sequence[UdfEntry],
) -> None:
    """Make the stored metadata of ``entity`` exactly ``picklists`` and ``udfs`` (one
    transaction: readers never see half a refresh)."""
    async with db.transaction():
        await guarded(
            db.execute(
                "DELETE FROM psa_picklists WHERE connection = $1 AND entity = $2",
                connection,
                entity,
            ),
            f"clear the {entity} picklists",
        )
        if picklists:
            await guarded(
                db.executemany(
                    "INSERT INTO psa_picklists (connection, entity, field, value, label, "
                    "is_active, is_default, is_system, sort_order, parent_value) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                    "ON CONFLICT (connection, entity, field, value) DO UPDATE SET "
                    "label = excluded.label, is_active = excluded.is_active",
                    [
                        (
                            connection,
                            entity,
                            p.field,
                            p.value,
                            p.label,
                            p.is_active,
                            p.is_default,
                            p.is_system,
                            p.sort_order,
                            p.parent_value,
                        )
                        for p in picklists
                    ],
                ),
                f"store the {entity} picklists",
            )
        await guarded(
            db.execute(
                "DELETE FROM psa_udf_definitions WHERE connection = $1 AND entity = $2",
                connection,
                entity,
            ),
            f"clear the {entity} UDF definitions",
        )
        if udfs:
            await guarded(
                db.executemany(
                    "INSERT INTO psa_udf_definitions (connection, entity, name, label, "
                    "data_type, is_required, is_picklist, picklist, definition) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                    "ON CONFLICT (connection, entity, name) DO NOTHING",
                    [
                        (
                            connection,
                            entity,
                            u.name,
                            u.label,
                            u.data_type,
                            u.is_required,
                            u.is_picklist,
                            list(u.picklist),
                            dict(u.definition),
                        )
                        for u in udfs
                    ],
                ),
                f"store the {entity} UDF definitions",
            )


async def labels(db: DbSession, connection: str, entity: str, field: str) -> dict[str, str]:
    """``value -> label`` of one picklist."""
    records = await guarded(
        db.fetch(
            "SELECT value, label FROM psa_picklists WHERE connection = $1 AND entity = $2 "
            "AND field = $3",
            connection,
            entity,
            field,
        ),
        f"read the {entity}.{field} picklist",
    )
    return {record["value"]: record["label"] for record in records}


__all__ = ["PicklistEntry", "UdfEntry", "labels", "replace"]
