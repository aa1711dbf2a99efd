"""What a tenant has: its webhooks (with children), entity metadata and the API user's resource.

The typed views (:class:`ActualWebhook`, :class:`ActualState`) are plain data the planner
reads; the functions below fill them through the Autotask client, as a person would: every
webhook of every root (foreign ones included, so the planner can prove it leaves them alone), the
children only of this connection's own webhooks, field ids from the ``fieldID`` / ``udfFieldID``
picklists of the child entities (autotask-api.md §7). Responses are read case-insensitively
(the GUID's spelling differs between sources). Every call is interactive priority: a person or
a healing pass is waiting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from services.provisioner import naming
from services.provisioner.desired import EntityMetadata
from services.provisioner.store import RegistrationSummary
from shared.autotask import AutotaskClient, Child, F, FieldInfo, Priority, Query
from shared.entities import EntitySpec, by_rest_name, by_webhook_root, webhook_entities
from shared.errors import NotFoundError, PermissionDeniedError
from shared.integers import parse_int
from shared.scope.rules import WebhookEvent

NOW = Priority.INTERACTIVE
_EVENT_KEYS: dict[WebhookEvent, str] = {
    "create": "isSubscribedToCreateEvents",
    "update": "isSubscribedToUpdateEvents",
    "delete": "isSubscribedToDeleteEvents",
}


@dataclass(frozen=True, slots=True, order=True)
class ActualChild:
    """A Fields / UdfFields / ExcludedResources row: ``target`` is the field or resource id."""

    target: int
    child_id: int
    subscribed: bool = False
    display_always: bool = False


@dataclass(frozen=True, slots=True)
class ActualWebhook:
    """One webhook as Autotask shows it; children only for this connection's own."""

    entity: str
    root: str
    webhook_id: int
    name: str
    webhook_url: str = ""
    deactivation_url: str = ""
    active: bool = False
    ready: bool = False
    events: frozenset[WebhookEvent] = frozenset()
    notification_email: str | None = None
    threshold_notifications: bool = False
    guid: str | None = None
    owner_resource_id: int | None = None
    fields: tuple[ActualChild, ...] = ()
    udf_fields: tuple[ActualChild, ...] = ()
    excluded: tuple[ActualChild, ...] = ()


@dataclass(frozen=True, slots=True)
class ActualState:
    """Everything the planner compares the desired state against."""

    connection: str
    webhooks: tuple[ActualWebhook, ...] = ()
    registrations: tuple[RegistrationSummary, ...] = ()
    """The connection's live (not retired) registrations."""
    unread_roots: Mapping[str, str] = field(default_factory=dict)
    """Webhook roots that could not be read, and why: nothing is planned for them."""


# --- metadata -------------------------------------------------------------------------------
def child_entity(root: str, collection: str) -> str:
    """``TicketWebhooks`` + ``Fields`` → ``TicketWebhookFields`` (the top-level child entity)."""
    return f"{root.removesuffix('s')}{collection}"


async def read_metadata(
    client: AutotaskClient, entities: Iterable[str]
) -> tuple[dict[str, EntityMetadata], dict[str, str]]:
    """Each entity's metadata, and the entities whose metadata the API user may not read."""
    found: dict[str, EntityMetadata] = {}
    refused: dict[str, str] = {}
    for entity in entities:
        try:
            found[entity] = await _entity_metadata(client, by_rest_name(entity))
        except PermissionDeniedError as exc:
            refused[entity] = str(exc)
    return found, refused


async def _entity_metadata(client: AutotaskClient, spec: EntitySpec) -> EntityMetadata:
    root = spec.webhook_root
    assert root is not None
    info = await client.entity_information(spec.rest_name)
    fields = await client.field_info(spec.rest_name)
    field_ids = _picklist(await client.field_info(child_entity(root, "Fields")), "fieldID")
    udf_ids: dict[str, int] | None = None
    udfs: list[Any] = []
    if spec.webhook_udf_child:
        udf_ids = {}
        if info.has_user_defined_fields:
            udfs = await client.udf_definitions(spec.rest_name)
            if udfs:
                udf_field_info = await client.field_info(child_entity(root, "UdfFields"))
                udf_ids = _picklist(udf_field_info, "udfFieldID")
    access = info.user_access_for_query
    readable = not (access is False or str(access).strip().lower() == "none")
    return EntityMetadata(
        entity=spec.rest_name,
        readable=readable,
        fields=fields,
        udfs=udfs,
        field_ids=field_ids,
        udf_ids=udf_ids,
    )


def _picklist(fields: Sequence[FieldInfo], name: str) -> dict[str, int]:
    """Label (REST field or UDF name) → id from the picklist of field ``name``."""
    for info in fields:
        if info.name.lower() == name.lower():
            return {
                p.label: value
                for p in info.picklist_values or ()
                if p.label and (value := parse_int(p.value)) is not None
            }
    return {}


async def find_api_user(client: AutotaskClient) -> int | None:
    """The resource id of the connection's API user (None if the level cannot see it)."""
    username = client.connection.username
    try:
        rows = await client.query_all(
            "Resources", Query.where(F("userName").eq(username)), priority=NOW
        )
    except PermissionDeniedError:
        return None
    for row in rows:
        if str(_get(row, "userName") or "").strip().lower() == username.lower():
            value = _get(row, "id")
            return int(value) if value is not None else None
    return None


# --- webhooks -------------------------------------------------------------------------------
async def read_webhooks(
    client: AutotaskClient, *, connection: str
) -> tuple[list[ActualWebhook], dict[str, str]]:
    """Every webhook of every root; children of ``connection``'s own. Also the roots that could
    not be read (permission) and why."""
    webhooks: list[ActualWebhook] = []
    unread: dict[str, str] = {}
    for spec in webhook_entities():
        root = spec.webhook_root
        assert root is not None
        try:
            rows = await client.query_all(root, priority=NOW)
        except PermissionDeniedError as exc:
            unread[root] = str(exc)
            continue
        for row in rows:
            webhook = _webhook(spec, row)
            if webhook is None:
                continue
            if naming.is_ours(webhook.name, connection=connection, entity=spec.rest_name):
                try:
                    webhook = await _with_children(client, webhook)
                except NotFoundError:
                    continue  # deleted while we looked
            webhooks.append(webhook)
    return webhooks, unread


async def _with_children(client: AutotaskClient, webhook: ActualWebhook) -> ActualWebhook:
    def child(collection: str) -> Child:
        return Child(webhook.root, webhook.webhook_id, collection)

    fields = await client.list_children(child("Fields"), priority=NOW)
    udfs: list[dict[str, Any]] = []
    if by_webhook_root(webhook.root).webhook_udf_child:
        udfs = await client.list_children(child("UdfFields"), priority=NOW)
    excluded = await client.list_children(child("ExcludedResources"), priority=NOW)
    return replace(
        webhook,
        fields=_children(fields, "fieldID"),
        udf_fields=_children(udfs, "udfFieldID"),
        excluded=_children(excluded, "resourceID"),
    )


def _webhook(spec: EntitySpec, row: Mapping[str, Any]) -> ActualWebhook | None:
    webhook_id = parse_int(_get(row, "id"))
    if webhook_id is None:
        return None
    assert spec.webhook_root is not None
    return ActualWebhook(
        entity=spec.rest_name,
        root=spec.webhook_root,
        webhook_id=webhook_id,
        name=str(_get(row, "name") or ""),
        webhook_url=str(_get(row, "webhookUrl") or ""),
        deactivation_url=str(_get(row, "deactivationUrl") or ""),
        active=_get(row, "isActive") is True,
        ready=_get(row, "isReady") is True,
        events=frozenset(e for e, key in _EVENT_KEYS.items() if _get(row, key) is True),
        notification_email=(str(_get(row, "notificationEmailAddress") or "").strip() or None),
        threshold_notifications=_get(row, "sendThresholdExceededNotification") is True,
        guid=_str_or_none(_get(row, "webhookGuid")),
        owner_resource_id=parse_int(_get(row, "ownerResourceID")),
    )


def _children(rows: Iterable[Mapping[str, Any]], key: str) -> tuple[ActualChild, ...]:
    found = []
    for row in rows:
        child_id, target = parse_int(_get(row, "id")), parse_int(_get(row, key))
        if child_id is None or target is None:
            continue
        found.append(
            ActualChild(
                target=target,
                child_id=child_id,
                subscribed=_get(row, "isSubscribedField") is True,
                display_always=_get(row, "isDisplayAlwaysField") is True,
            )
        )
    return tuple(sorted(found))


def _get(row: Mapping[str, Any], key: str) -> Any:
    """``row[key]`` matched case-insensitively (``webhookGuid`` / ``webhookGUID``...)."""
    if key in row:
        return row[key]
    lowered = key.lower()
    return next((value for name, value in row.items() if name.lower() == lowered), None)


def _str_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


__all__ = [
    "ActualChild",
    "ActualState",
    "ActualWebhook",
    "child_entity",
    "find_api_user",
    "read_metadata",
    "read_webhooks",
]
