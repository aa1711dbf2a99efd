"""Field metadata: what ``entityInformation/fields`` describes, and what validation and queries use.

One :class:`EntitySchema` per REST entity the simulator serves. Field names are the REST API's
camelCase names; lookups are case-insensitive because Autotask binds request bodies that way
(webhook bodies are accepted in PascalCase and camelCase, §7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tools.autotask_sim.jsontypes import JsonObject, JsonValue

DataType = Literal["integer", "long", "string", "boolean", "datetime", "double", "decimal"]
NUMERIC_TYPES = frozenset({"integer", "long", "double", "decimal"})
INTEGER_TYPES = frozenset({"integer", "long"})


@dataclass(frozen=True, slots=True)
class PicklistValue:
    """One picklist entry; ``value`` is the integer stored on records."""

    value: int
    label: str
    is_default: bool = False
    parent_value: int | None = None
    is_active: bool = True
    is_system: bool = True

    def to_json(self, sort_order: int) -> JsonObject:
        return {
            "value": str(self.value),
            "label": self.label,
            "isDefaultValue": self.is_default,
            "sortOrder": sort_order,
            "parentValue": "" if self.parent_value is None else str(self.parent_value),
            "isActive": self.is_active,
            "isSystem": self.is_system,
        }


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One standard field of an entity."""

    name: str
    data_type: DataType
    length: int = 0
    required: bool = False
    read_only: bool = False
    create_only: bool = False
    """Writable on create, ignored on update (a note cannot move to another ticket)."""
    queryable: bool = True
    reference: str | None = None
    """``referenceEntityType`` (singular, e.g. ``Company``) for id fields pointing elsewhere."""
    picklist: tuple[PicklistValue, ...] | None = None
    picklist_parent: str | None = None
    webhook: bool = False
    """``isSupportedWebhookField``: may be subscribed to / displayed in callouts."""

    def picklist_ids(self) -> frozenset[int]:
        return frozenset(p.value for p in self.picklist or ())

    def to_json(self) -> JsonObject:
        """The ``entityInformation/fields`` entry for this field."""
        picklist: JsonValue = None
        if self.picklist is not None:
            picklist = [p.to_json(i) for i, p in enumerate(self.picklist, start=1)]
        return {
            "name": self.name,
            "dataType": self.data_type,
            "length": self.length,
            "isRequired": self.required,
            "isReadOnly": self.read_only,
            "isQueryable": self.queryable,
            "isReference": self.reference is not None,
            "referenceEntityType": self.reference or "",
            "isPickList": self.picklist is not None,
            "picklistValues": picklist,
            "picklistParentValueField": self.picklist_parent or "",
            "isSupportedWebhookField": self.webhook,
        }


@dataclass(frozen=True, slots=True)
class UdfSpec:
    """A user-defined field; values are stored as strings (or None) in ``userDefinedFields``."""

    name: str
    label: str
    udf_type: Literal["string", "double", "datetime", "integer"] = "string"
    length: int = 0
    picklist: tuple[PicklistValue, ...] | None = None
    webhook: bool = True

    def to_json(self) -> JsonObject:
        picklist: JsonValue = None
        if self.picklist is not None:
            picklist = [p.to_json(i) for i, p in enumerate(self.picklist, start=1)]
        return {
            "name": self.name,
            "label": self.label,
            "description": None,
            "type": self.udf_type,
            "udfType": 1,
            "dataType": self.udf_type,
            "length": self.length,
            "isRequired": False,
            "isReadOnly": False,
            "isQueryable": True,
            "isReference": False,
            "referenceEntityType": None,
            "isPickList": self.picklist is not None,
            "picklistValues": picklist,
            "defaultValue": "",
            "isSupportedWebhookField": self.webhook,
        }


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the API allows on an entity at all (``canCreate`` ... in entityInformation)."""

    create: bool = True
    update: bool = True
    delete: bool = True
    query: bool = True
    webhooks: bool = False


@dataclass(frozen=True)
class EntitySchema:
    """The fields, UDFs and capabilities of one REST entity."""

    name: str
    fields: tuple[FieldSpec, ...]
    udfs: tuple[UdfSpec, ...] = ()
    capabilities: Capabilities = Capabilities()
    _by_lower: dict[str, FieldSpec] = field(init=False, repr=False, compare=False)
    _udf_by_lower: dict[str, UdfSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_lower", {f.name.lower(): f for f in self.fields})
        object.__setattr__(self, "_udf_by_lower", {u.name.lower(): u for u in self.udfs})

    @property
    def has_udfs(self) -> bool:
        return bool(self.udfs)

    def field(self, name: str) -> FieldSpec | None:
        """The standard field called ``name`` (any case), or None."""
        return self._by_lower.get(name.lower())

    def udf(self, name: str) -> UdfSpec | None:
        """The UDF called ``name`` (any case), or None."""
        return self._udf_by_lower.get(name.lower())

    def writable(self, *, creating: bool) -> tuple[FieldSpec, ...]:
        """Fields a create (or update) body may set."""
        return tuple(
            f
            for f in self.fields
            if not f.read_only and (creating or not f.create_only) and f.name != "id"
        )


__all__ = [
    "INTEGER_TYPES",
    "NUMERIC_TYPES",
    "Capabilities",
    "DataType",
    "EntitySchema",
    "FieldSpec",
    "PicklistValue",
    "UdfSpec",
]
