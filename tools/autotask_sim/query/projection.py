"""``IncludeFields`` (§3): which fields a query returns, and trimming records to them.

``id`` always comes back. UDF names may be listed individually (only those UDFs are returned)
or as ``userDefinedFields`` (all of them). Unknown names are rejected, like unknown filter fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tools.autotask_sim.apierror import business_error
from tools.autotask_sim.jsontypes import Record
from tools.autotask_sim.store.schema import EntitySchema

if TYPE_CHECKING:
    from tools.autotask_sim.query.grammar import CompiledQuery


def include_fields(
    schema: EntitySchema, raw: Any
) -> tuple[tuple[str, ...] | None, frozenset[str] | None]:
    """(standard field names, UDF names) to return; (None, None) when not restricted."""
    if raw is None:
        return None, None
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        raise business_error("Invalid query: 'IncludeFields' must be a list of field names.")
    names: list[str] = ["id"]  # id always comes back
    udfs: set[str] = set()
    for name in raw:
        spec = schema.field(name)
        if spec is not None:
            if spec.name not in names:
                names.append(spec.name)
            continue
        udf = schema.udf(name)
        if udf is not None:
            udfs.add(udf.name)
            continue
        if name.lower() == "userdefinedfields" and schema.has_udfs:
            udfs.update(u.name for u in schema.udfs)
            continue
        raise business_error(
            f"Invalid query: unable to find field {name} in the {schema.name} entity."
        )
    return tuple(names), frozenset(udfs)


def project(record: Record, query: CompiledQuery) -> Record:
    """``record`` trimmed to the query's ``IncludeFields``."""
    if query.include_fields is None:
        return record
    out: Record = {name: record.get(name) for name in query.include_fields}
    if query.include_udfs:
        udfs = record.get("userDefinedFields") or ()
        assert isinstance(udfs, Sequence)
        out["userDefinedFields"] = [
            u for u in udfs if isinstance(u, Mapping) and u.get("name") in query.include_udfs
        ]
    return out


__all__ = ["include_fields", "project"]
