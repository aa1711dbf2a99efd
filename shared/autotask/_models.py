"""Typed views of the Autotask answers the client interprets itself.

Entity rows stay plain ``dict``s (the mirror stores them whole); metadata the project reasons
about (zone, usage, entity and field information) is parsed into frozen models. Unknown keys are
kept (``extra="allow"``) because zones run different releases (autotask-api.md §1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

Entity = dict[str, Any]


class _ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True
    )


class ZoneInfo(_ApiModel):
    """``zoneInformation``: the tenant's REST root (``url``) and UI host (``webUrl``)."""

    url: str
    zone_name: str | None = None
    web_url: str | None = None
    ci: int | None = None


class ThresholdInfo(_ApiModel):
    """``ThresholdInformation``: the tenant's hourly budget and its use so far."""

    external_request_threshold: int = 10_000
    request_threshold_timeframe: int = 60
    """Minutes in the (rolling) window."""
    current_timeframe_request_count: int = 0

    @property
    def used_ratio(self) -> float:
        if self.external_request_threshold <= 0:
            return 1.0
        return self.current_timeframe_request_count / self.external_request_threshold


class EntityInfo(_ApiModel):
    """``/{Entity}/entityInformation``: what the API (and this user) may do with the entity."""

    name: str = ""
    can_create: bool = False
    can_delete: bool = False
    can_query: bool = False
    can_update: bool = False
    user_access_for_create: Any = None
    user_access_for_delete: Any = None
    user_access_for_query: Any = None
    user_access_for_update: Any = None
    has_user_defined_fields: bool = False
    supports_webhook_callouts: bool = False


class PicklistValue(_ApiModel):
    value: str
    label: str = ""
    is_default_value: bool = False
    sort_order: int | None = None
    parent_value: str | None = None
    is_active: bool = True
    is_system: bool = False


class FieldInfo(_ApiModel):
    """One field of ``/{Entity}/entityInformation/fields``; picklists are embedded."""

    name: str
    data_type: str = ""
    length: int | None = None
    is_required: bool = False
    is_read_only: bool = False
    is_queryable: bool = True
    is_reference: bool = False
    reference_entity_type: str | None = None
    is_pick_list: bool = False
    picklist_values: list[PicklistValue] | None = None
    picklist_parent_value_field: str | None = None
    is_supported_webhook_field: bool = False

    def picklist(self) -> dict[str, str]:
        """``value -> label`` of the field's picklist (empty when it has none)."""
        return {p.value: p.label for p in self.picklist_values or ()}


class UdfDefinition(_ApiModel):
    """One of ``/{Entity}/entityInformation/userDefinedFields``."""

    name: str
    data_type: str = ""
    is_required: bool = False
    is_pick_list: bool = False
    picklist_values: list[PicklistValue] | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a query: its rows and whether another follows."""

    items: list[Entity]
    next_page_url: str | None
    number: int
    """1-based position in the walk."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What :meth:`AutotaskClient.fetch_by_ids` found, and which ids it did not."""

    found: dict[int, Entity] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    calls: int = 0
    """Query calls spent (pages included)."""


__all__ = [
    "BatchResult",
    "Entity",
    "EntityInfo",
    "FieldInfo",
    "Page",
    "PicklistValue",
    "ThresholdInfo",
    "UdfDefinition",
    "ZoneInfo",
]
