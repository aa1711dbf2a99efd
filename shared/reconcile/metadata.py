"""PSA metadata ("Sync PSA Data"): picklists and UDF definitions of every synced entity.

Two calls per entity (``entityInformation/fields`` carries the picklists, ``.../userDefinedFields``
the UDFs), replaced whole in PostgreSQL (:mod:`shared.reconcile.picklists`) so a label renamed
or a value deactivated in Autotask shows after the next refresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.autotask import AutotaskClient, FieldInfo, PicklistValue, UdfDefinition
from shared.db import Pool, session
from shared.entities import EntitySpec
from shared.errors import NotFoundError
from shared.reconcile import picklists


@dataclass
class Refreshed:
    """What one refresh picklists."""

    entities: int = 0
    picklist_values: int = 0
    udfs: int = 0
    api_calls: int = 0


async def refresh(
    client: AutotaskClient, pool: Pool, connection: str, entities: Sequence[EntitySpec]
) -> Refreshed:
    """Read and store the metadata of ``entities``."""
    done = Refreshed()
    for spec in entities:
        fields = await client.field_info(spec.rest_name)
        done.api_calls += 1
        try:
            udfs = await client.udf_definitions(spec.rest_name)
        except NotFoundError:
            udfs = []  # an entity without user-defined fields
        done.api_calls += 1
        entries = [entry for f in fields for entry in _picklist(f)]
        definitions = [_udf(u) for u in udfs]
        async with session(pool, f"store the metadata of {spec.rest_name}") as db:
            await picklists.replace(
                db, connection, spec.rest_name, picklists=entries, udfs=definitions
            )
        done.entities += 1
        done.picklist_values += len(entries)
        done.udfs += len(definitions)
    return done


def _picklist(field: FieldInfo) -> list[picklists.PicklistEntry]:
    return [_entry(field.name, value) for value in field.picklist_values or ()]


def _entry(field: str, value: PicklistValue) -> picklists.PicklistEntry:
    return picklists.PicklistEntry(
        field=field,
        value=value.value,
        label=value.label,
        is_active=value.is_active,
        is_default=value.is_default_value,
        is_system=value.is_system,
        sort_order=value.sort_order,
        parent_value=value.parent_value or None,
    )


def _udf(udf: UdfDefinition) -> picklists.UdfEntry:
    raw = udf.model_dump(mode="json", by_alias=True)
    label = raw.get("label")
    return picklists.UdfEntry(
        name=udf.name,
        label=label if isinstance(label, str) else None,
        data_type=udf.data_type,
        is_required=udf.is_required,
        is_picklist=udf.is_pick_list,
        picklist=[v.model_dump(mode="json", by_alias=True) for v in udf.picklist_values or ()],
        definition=raw,
    )


__all__ = ["Refreshed", "refresh"]
