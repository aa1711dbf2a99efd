"""A connection's sync scope: which entities are synced, and which tickets and companies.

These are the filters MSP vendors' setup wizards offer: tickets by queue, category and status;
companies by company type or an explicit list ("select the companies to import"). Each filter is
a :class:`RowFilter` section of :class:`SyncScope`; which entity a section judges, and which
entities follow a parent instead (contacts their company, ticket notes their ticket), the entity
registry says (``EntitySpec.scope``, judged by :mod:`shared.scope.membership`). ``webhooks``
overrides, for one connection, what the provisioner's settings say about its webhooks (entities,
events, fields, e-mail, excluded resources). The model is stored as JSON in
``connections.scope`` and rejects unknown keys, so a typo is an error instead of a filter
silently ignored.

This module is pure: it knows the rules, not the tenant. Whether a queue id exists is checked
against the tenant's picklists by ``autotask-sync connections test``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from shared.entities import (
    REGISTRY,
    EntitySpec,
    by_rest_name,
    find_rest_name,
    synced_entities,
    webhook_entities,
)
from shared.errors import ConfigError
from shared.integers import parse_int


class _Filter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _sorted_ids(values: list[int]) -> list[int]:
    return sorted(set(values))


Ids = Annotated[list[int], AfterValidator(_sorted_ids)]
"""Picklist values or entity ids: stored sorted and without repeats."""


class RowFilter(_Filter):
    """A section of the scope that judges rows of one entity on their own fields."""

    @abstractmethod
    def admits(self, row: Mapping[str, Any]) -> bool:
        """Whether ``row`` (a REST record) is in scope."""

    @property
    @abstractmethod
    def restricted(self) -> bool:
        """Whether the section can keep any row out (False: everything is in scope)."""

    @abstractmethod
    def within(self, other: RowFilter) -> bool:
        """Whether every row this section admits, ``other`` admits too: going from ``other`` to
        this one only narrows, no row can enter. False when that cannot be told."""


class TicketScope(RowFilter):
    """Tickets (and their notes) to sync. Empty lists mean no restriction."""

    include_queues: Ids = Field(default_factory=list)
    exclude_queues: Ids = Field(default_factory=list)
    include_categories: Ids = Field(default_factory=list)
    exclude_categories: Ids = Field(default_factory=list)
    include_statuses: Ids = Field(default_factory=list)
    exclude_statuses: Ids = Field(default_factory=list)

    def admits(self, ticket: Mapping[str, Any]) -> bool:
        """Whether ``ticket`` (a REST record) is in scope."""
        return (
            _allowed(ticket.get("queueID"), self.include_queues, self.exclude_queues)
            and _allowed(
                ticket.get("ticketCategory"), self.include_categories, self.exclude_categories
            )
            and _allowed(ticket.get("status"), self.include_statuses, self.exclude_statuses)
        )

    @property
    def restricted(self) -> bool:
        return any(getattr(self, name) for name in type(self).model_fields)

    def within(self, other: RowFilter) -> bool:
        if not isinstance(other, TicketScope):
            return False
        # The fields are ANDed: each one's admitted values within the other's is enough.
        return (
            _values_within(self.include_queues, self.exclude_queues,
                           other.include_queues, other.exclude_queues)
            and _values_within(self.include_categories, self.exclude_categories,
                               other.include_categories, other.exclude_categories)
            and _values_within(self.include_statuses, self.exclude_statuses,
                               other.include_statuses, other.exclude_statuses)
        )  # fmt: skip


class CompanyScope(RowFilter):
    """Companies (and their contacts and configuration items) to sync.

    ``company_types`` and ``company_ids`` combine with OR: a company is in scope when its type is
    listed or its id is; both empty means every company.
    """

    company_types: Ids = Field(default_factory=list)
    company_ids: Ids = Field(default_factory=list)

    def admits(self, company: Mapping[str, Any]) -> bool:
        """Whether ``company`` (a REST record) is in scope."""
        if not self.restricted:
            return True
        return parse_int(company.get("companyType")) in self.company_types or (
            parse_int(company.get("id")) in self.company_ids
        )

    @property
    def restricted(self) -> bool:
        return bool(self.company_types or self.company_ids)

    def within(self, other: RowFilter) -> bool:
        if not isinstance(other, CompanyScope):
            return False
        if not other.restricted:
            return True
        if not self.restricted:
            return False
        # A company this admits by id may be one ``other`` admits by type: not known here.
        return set(self.company_types) <= set(other.company_types) and set(self.company_ids) <= set(
            other.company_ids
        )


WebhookEvent = Literal["create", "update", "delete"]


def _webhook_entity(name: str) -> str:
    spec = find_rest_name(name)
    if spec is None or not spec.has_webhooks:
        choices = ", ".join(s.rest_name for s in webhook_entities())
        raise ValueError(f"{name!r} is not an entity with webhooks (choose from {choices})")
    return spec.rest_name


class WebhookFieldScope(_Filter):
    """Which fields of one entity's webhook are subscribed and display-always (REST field
    names or UDF names); None keeps the provisioner's default for that list."""

    subscribed: list[str] | None = None
    display_always: list[str] | None = None


class WebhookScope(_Filter):
    """Overrides of the provisioner's webhook defaults for one connection; None keeps them."""

    entities: list[str] | None = None
    """Entities that get a webhook (REST names)."""
    events: list[WebhookEvent] | None = None
    notification_email: str | None = None
    exclude_api_user: bool | None = None
    excluded_resources: Ids = Field(default_factory=list)
    """Resource ids whose changes never call back, besides the API user's own."""
    fields: dict[str, WebhookFieldScope] = Field(default_factory=dict)
    """Per entity (REST name)."""

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return list(dict.fromkeys(_webhook_entity(name) for name in value))

    @field_validator("fields")
    @classmethod
    def _known_field_entities(
        cls, value: dict[str, WebhookFieldScope]
    ) -> dict[str, WebhookFieldScope]:
        return {_webhook_entity(name): choice for name, choice in value.items()}


class SyncScope(_Filter):
    """What one connection syncs. The default syncs every default entity, unfiltered."""

    entities: list[str] | None = None
    """REST names (``Tickets``...); None means the registry's default set."""
    tickets: TicketScope = Field(default_factory=TicketScope)
    companies: CompanyScope = Field(default_factory=CompanyScope)
    webhooks: WebhookScope = Field(default_factory=WebhookScope)
    """The connection's webhooks, where they differ from the provisioner's settings."""

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        names = []
        for name in value:
            spec = find_rest_name(name)
            if spec is None:
                choices = ", ".join(s.rest_name for s in REGISTRY)
                raise ValueError(f"unknown entity {name!r} (choose from {choices})")
            names.append(spec.rest_name)
        return list(dict.fromkeys(names))

    @classmethod
    def parse(cls, data: Mapping[str, Any] | str | None) -> SyncScope:
        """A scope from stored JSON (a dict or text); errors name the offending key."""
        if data is None:
            return cls()
        try:
            if isinstance(data, str):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'scope'}: {error['msg']}"
                for error in exc.errors()
            )
            raise ConfigError(f"invalid sync scope: {problems}") from None

    @classmethod
    def filter_sections(cls) -> tuple[str, ...]:
        """The sections that are row filters (``tickets``, ``companies``), in model order."""
        return tuple(
            name
            for name, info in cls.model_fields.items()
            if isinstance(info.annotation, type) and issubclass(info.annotation, RowFilter)
        )

    def row_filter(self, section: str) -> RowFilter:
        """The row filter of ``section``; KeyError when no such section exists."""
        if section not in self.filter_sections():
            raise KeyError(section)
        value = getattr(self, section)
        assert isinstance(value, RowFilter)
        return value

    def synced(self) -> list[EntitySpec]:
        """The entities this connection syncs, in registry order."""
        if self.entities is None:
            return list(synced_entities())
        return [by_rest_name(name) for name in self.entities]

    def syncs(self, entity: EntitySpec) -> bool:
        return any(spec.rest_name == entity.rest_name for spec in self.synced())

    def to_json(self) -> dict[str, Any]:
        """The stored form: only what differs from the defaults."""
        return self.model_dump(mode="json", exclude_defaults=True)

    def summary(self) -> str:
        """One line for people: ``entities Tickets,Companies; tickets include_queues=[8, 29]``.

        Ids and picklist values are shown as lists, never counted: ``include_queues=2`` read as
        queue 2. A long list shows its first few and its length."""
        parts = []
        if self.entities is not None:
            parts.append("entities " + ",".join(self.entities))
        for section in self.filter_sections():
            listed = {k: v for k, v in getattr(self, section).model_dump().items() if v}
            if listed:
                parts.append(f"{section} " + " ".join(f"{k}={_ids(v)}" for k, v in listed.items()))
        return "; ".join(parts) or "everything"


def _values_within(
    include: list[int], exclude: list[int], other_include: list[int], other_exclude: list[int]
) -> bool:
    """Whether the values ``include``/``exclude`` admit are all admitted by the other pair (an
    empty include list admits every value, a missing value included)."""
    if other_include:
        admitted = set(include) - set(exclude)
        outside = admitted - set(other_include) or admitted & set(other_exclude)
        return bool(include) and not outside
    if include:
        return not (set(include) - set(exclude)) & set(other_exclude)
    return set(other_exclude) <= set(exclude)


_SHOWN_IDS = 5


def _ids(values: list[int]) -> str:
    """``[8, 29]``; ``[1, 2, 3, 4, 5, ...] (250)`` for a long list."""
    shown = ", ".join(map(str, values[:_SHOWN_IDS]))
    if len(values) <= _SHOWN_IDS:
        return f"[{shown}]"
    return f"[{shown}, ...] ({len(values)})"


def _allowed(value: Any, include: list[int], exclude: list[int]) -> bool:
    # Picklist values arrive as numbers or numeric strings; anything else matches nothing.
    number = parse_int(value)
    if include and number not in include:
        return False
    return not (exclude and number in exclude)


__all__ = [
    "CompanyScope",
    "RowFilter",
    "SyncScope",
    "TicketScope",
    "WebhookEvent",
    "WebhookFieldScope",
    "WebhookScope",
]
