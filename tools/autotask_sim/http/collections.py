"""REST collections: one uniform view over every kind of entity the API serves.

The route handlers only know :class:`Collection` (GET by id, query, create, update, delete,
metadata) and :class:`ChildCollection` (``/{Parent}/{id}/{Child}``). The implementations here map
those onto the tenant (business entities), read-only logs, the webhook registry and the
webhook error log, and carry each one's permissions and visibility rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.entities import REGISTRY
from tools.autotask_sim.access.users import ApiUser
from tools.autotask_sim.apierror import method_not_allowed, not_found, permission_denied
from tools.autotask_sim.config import PermissionAction
from tools.autotask_sim.jsontypes import Record
from tools.autotask_sim.state import SimulatorState
from tools.autotask_sim.store.schema import Capabilities, EntitySchema
from tools.autotask_sim.store.table import Table
from tools.autotask_sim.store.tenant import body_id
from tools.autotask_sim.store.webhooks import ChildKind


@dataclass(frozen=True, slots=True)
class Ctx:
    """Who is calling and where from."""

    user: ApiUser
    person_id: int
    """Resource the change is attributed to (ImpersonationResourceId, else the API user)."""
    origin: str
    zone: int


class ChildCollection:
    """``/{Parent}/{parentId}/{Child}``: list, get, create, update (id in body), delete."""

    schema: EntitySchema
    perm_entity: str
    capabilities: Capabilities

    def list(self, parent_id: int, ctx: Ctx) -> list[Record]:
        raise NotImplementedError

    def get(self, parent_id: int, child_id: int, ctx: Ctx) -> Record | None:
        found = [r for r in self.list(parent_id, ctx) if r.get("id") == child_id]
        return found[0] if found else None

    def create(self, parent_id: int, body: Mapping[str, Any], ctx: Ctx) -> Record:
        raise method_not_allowed("POST")

    def update(self, parent_id: int, body: Mapping[str, Any], ctx: Ctx, replace: bool) -> Record:
        raise method_not_allowed("PATCH")

    def delete(self, parent_id: int, child_id: int, ctx: Ctx) -> None:
        raise method_not_allowed("DELETE")


class Collection:
    """A top-level REST entity. Read-only unless a subclass says otherwise."""

    def __init__(self, name: str, table: Table, perm_entity: str | None = None) -> None:
        self.name = name
        self.table = table
        self.schema = table.schema
        self.perm_entity = perm_entity or name
        self.children: dict[str, ChildCollection] = {}

    @property
    def capabilities(self) -> Capabilities:
        return self.schema.capabilities

    @property
    def has_visibility_rule(self) -> bool:
        return False

    def visible(self, record: Record, ctx: Ctx) -> bool:
        return True

    def render(self, record: Record) -> Record:
        return record

    def create(self, body: Mapping[str, Any], ctx: Ctx) -> Record:
        raise method_not_allowed("POST")

    def update(
        self, body: Mapping[str, Any], ctx: Ctx, *, replace: bool, record_id: int | None
    ) -> Record:
        raise method_not_allowed("PUT" if replace else "PATCH")

    def delete(self, record_id: int, ctx: Ctx) -> None:
        raise method_not_allowed("DELETE")


class EntityCollection(Collection):
    """A business entity backed by the tenant (changes fire callouts)."""

    def __init__(self, state: SimulatorState, name: str) -> None:
        super().__init__(name, state.tenant.require(name))
        self.state = state
        for spec in REGISTRY:
            if spec.child_of and spec.child_of.parent == name:
                child = EntityChild(state, spec.rest_name, spec.child_of.parent_id_field)
                self.children[spec.child_of.collection.lower()] = child

    def create(self, body: Mapping[str, Any], ctx: Ctx) -> Record:
        if not self.capabilities.create:
            raise method_not_allowed("POST")
        return self.state.tenant.create(self.name, body, ctx.person_id, via_api=True)

    def update(
        self, body: Mapping[str, Any], ctx: Ctx, *, replace: bool, record_id: int | None
    ) -> Record:
        if not self.capabilities.update:
            raise method_not_allowed("PUT" if replace else "PATCH")
        return self.state.tenant.update(
            self.name, body, ctx.person_id, replace=replace, record_id=record_id, via_api=True
        )

    def delete(self, record_id: int, ctx: Ctx) -> None:
        if not self.capabilities.delete:
            raise method_not_allowed("DELETE")
        self.state.tenant.delete(self.name, record_id, ctx.person_id, via_api=True)


class EntityChild(ChildCollection):
    """A business entity reached through its parent (``/Tickets/{id}/Notes``)."""

    def __init__(self, state: SimulatorState, name: str, parent_field: str) -> None:
        self.state = state
        self.name = name
        self.table = state.tenant.require(name)
        self.schema = self.table.schema
        self.perm_entity = name
        self.capabilities = self.schema.capabilities
        self.parent_field = parent_field

    def list(self, parent_id: int, ctx: Ctx) -> list[Record]:
        key = self.parent_field
        return [r for r in self.table.rows() if r.get(key) == parent_id]

    def get(self, parent_id: int, child_id: int, ctx: Ctx) -> Record | None:
        record = self.table.get(child_id)
        return record if record is not None and record.get(self.parent_field) == parent_id else None

    def create(self, parent_id: int, body: Mapping[str, Any], ctx: Ctx) -> Record:
        forced = {k: v for k, v in body.items() if k.lower() != self.parent_field.lower()}
        forced[self.parent_field] = parent_id
        return self.state.tenant.create(self.name, forced, ctx.person_id, via_api=True)

    def update(self, parent_id: int, body: Mapping[str, Any], ctx: Ctx, replace: bool) -> Record:
        if self.get(parent_id, body_id(body), ctx) is None:
            raise not_found(f"No {self.name} entity with that id under parent {parent_id}.")
        return self.state.tenant.update(
            self.name, body, ctx.person_id, replace=replace, via_api=True
        )

    def delete(self, parent_id: int, child_id: int, ctx: Ctx) -> None:
        if self.get(parent_id, child_id, ctx) is None:
            raise not_found(f"No {self.name} entity with id {child_id} under parent {parent_id}.")
        self.state.tenant.delete(self.name, child_id, ctx.person_id, via_api=True)


def require_permission(
    state: SimulatorState, user: ApiUser, entity: str, action: PermissionAction
) -> None:
    """Refuse the call when the user's security level lacks ``action`` on ``entity``."""
    if not user.security.allows(entity, action):
        raise permission_denied(state.config.api.permission_denied_status, action, entity)


def _require_webhook_grant(state: SimulatorState, ctx: Ctx, action: str, what: str) -> None:
    if not ctx.user.security.can_create_webhooks:
        raise permission_denied(state.config.api.permission_denied_status, action, what)


class WebhookCollection(Collection):
    """``{X}Webhooks``: definitions plus Fields / UdfFields / ExcludedResources children."""

    def __init__(self, state: SimulatorState, root: str) -> None:
        registry_root = state.webhooks.root(root)
        assert registry_root is not None
        super().__init__(registry_root.name, registry_root.webhooks)
        self.state = state
        for kind in registry_root.children:
            self.children[kind.lower()] = WebhookChild(state, registry_root.name, kind)

    def render(self, record: Record) -> Record:
        return self.state.webhooks.render(record)

    def create(self, body: Mapping[str, Any], ctx: Ctx) -> Record:
        return self.state.webhooks.create(self.name, body, ctx.user)

    def update(
        self, body: Mapping[str, Any], ctx: Ctx, *, replace: bool, record_id: int | None
    ) -> Record:
        if record_id is not None:
            raise method_not_allowed("PUT")  # the swagger has GET and DELETE on /{id} only
        _require_webhook_grant(self.state, ctx, "update", self.name)
        return self.state.webhooks.update(self.name, body, replace=replace)

    def delete(self, record_id: int, ctx: Ctx) -> None:
        _require_webhook_grant(self.state, ctx, "delete", self.name)
        self.state.webhooks.delete(self.name, record_id)


class WebhookChild(ChildCollection):
    """A webhook's Fields, UdfFields or ExcludedResources."""

    def __init__(self, state: SimulatorState, root: str, kind: ChildKind) -> None:
        registry_root = state.webhooks.root(root)
        assert registry_root is not None
        self.state = state
        self.root = root
        self.kind = kind
        self.schema = registry_root.children[kind].schema
        self.perm_entity = root
        self.capabilities = self.schema.capabilities

    def list(self, parent_id: int, ctx: Ctx) -> list[Record]:
        return self.state.webhooks.children(self.root, self.kind, parent_id)

    def create(self, parent_id: int, body: Mapping[str, Any], ctx: Ctx) -> Record:
        _require_webhook_grant(self.state, ctx, "create", self.schema.name)
        return self.state.webhooks.create_child(self.root, self.kind, parent_id, body)

    def update(self, parent_id: int, body: Mapping[str, Any], ctx: Ctx, replace: bool) -> Record:
        if not self.capabilities.update:
            raise method_not_allowed("PUT" if replace else "PATCH")
        _require_webhook_grant(self.state, ctx, "update", self.schema.name)
        return self.state.webhooks.update_child(self.root, self.kind, parent_id, body)

    def delete(self, parent_id: int, child_id: int, ctx: Ctx) -> None:
        _require_webhook_grant(self.state, ctx, "delete", self.schema.name)
        self.state.webhooks.delete_child(self.root, self.kind, parent_id, child_id)


class ErrorLogCollection(Collection):
    """``WebhookEventErrorLogs``: query, get and delete; each user sees only the rows of the
    callouts its own webhooks made."""

    def __init__(self, state: SimulatorState) -> None:
        super().__init__("WebhookEventErrorLogs", state.webhooks.error_log)
        self.state = state

    @property
    def has_visibility_rule(self) -> bool:
        return True

    def visible(self, record: Record, ctx: Ctx) -> bool:
        record_id = record.get("id")
        source = (
            self.state.webhooks.error_log_sources.get(record_id)
            if isinstance(record_id, int)
            else None
        )
        return source is None or source.owner is None or source.owner == ctx.user.resource_id

    def delete(self, record_id: int, ctx: Ctx) -> None:
        record = self.table.get(record_id)
        if record is None or not self.visible(record, ctx):
            raise not_found(f"No WebhookEventErrorLogs entity with id {record_id}.")
        self.state.webhooks.delete_error_log(record_id)


def build_collections(state: SimulatorState) -> dict[str, Collection]:
    """Every top-level collection, keyed by lower-case REST name."""
    out: dict[str, Collection] = {}
    for name, table in state.tenant.tables.items():
        if name in ("DeletedTicketLogs", "DeletedTicketActivityLogs"):
            out[name.lower()] = Collection(name, table)
        else:
            out[name.lower()] = EntityCollection(state, name)
    for root in state.webhooks.roots.values():
        out[root.name.lower()] = WebhookCollection(state, root.name)
        for table in root.children.values():
            # Top-level child entities: metadata (the field-id picklists) and reads.
            out[table.schema.name.lower()] = Collection(table.schema.name, table, root.name)
    out["webhookeventerrorlogs"] = ErrorLogCollection(state)
    return out


__all__ = [
    "ChildCollection",
    "Collection",
    "Ctx",
    "EntityCollection",
    "ErrorLogCollection",
    "WebhookCollection",
    "build_collections",
    "require_permission",
]
