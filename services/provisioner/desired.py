"""The desired webhooks of one connection: pure, from settings, scope and the tenant's metadata.

For every selected entity (``AUTOTASK_SYNC_WEBHOOK_ENTITIES``, by default the registry's
``webhook_by_default`` entries, of those the connection syncs) the connection wants one webhook
named by :mod:`naming`, calling the gateway, subscribed to the configured events, with

- every standard and UDF field the entity reports as a supported webhook field subscribed (so
  any change fires), unless the scope lists the subscribed fields;
- the id-like and external-id fields display-always (the registry's defaults, ``...Number``
  fields, UDFs named like an external reference), so every callout can be matched without a read;
- the integration's own API user excluded (its writes never echo back), plus any resource the
  settings or scope add.

An entity whose desired webhook cannot be worked out (the API user cannot read it, a field in
the scope does not exist, the metadata could not be read) is *blocked*: the planner leaves
whatever exists for it alone rather than deleting a webhook because of a typo.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.provisioner import naming
from services.provisioner.settings import EVENTS, ProvisionerSettings
from shared.autotask import FieldInfo, UdfDefinition
from shared.entities import by_rest_name
from shared.errors import ConfigError
from shared.scope.rules import SyncScope, WebhookEvent

_EVENT_FLAGS: dict[WebhookEvent, str] = {
    "create": "isSubscribedToCreateEvents",
    "update": "isSubscribedToUpdateEvents",
    "delete": "isSubscribedToDeleteEvents",
}
_SHOWN_CHOICES = 30


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """What one connection asks of its webhooks: settings with the scope's overrides applied."""

    gateway_url: str
    entities: tuple[str, ...]
    events: frozenset[WebhookEvent]
    notification_email: str | None = None
    threshold_notifications: bool = False
    exclude_api_user: bool = True
    excluded_resources: frozenset[int] = frozenset()
    subscribed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per entity: the subscribed field names, where the scope lists them."""
    display_always: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def resolve(cls, settings: ProvisionerSettings, scope: SyncScope) -> WebhookPolicy:
        """The policy of a connection with ``scope``; ConfigError without a gateway URL."""
        if not settings.gateway_public_url:
            raise ConfigError(
                "AUTOTASK_SYNC_GATEWAY_PUBLIC_URL is not set: set it to the gateway's public "
                "https base URL (what Autotask calls back), e.g. https://hooks.example.com"
            )
        hooks = scope.webhooks
        if hooks.entities is not None:
            entities = tuple(hooks.entities)
        else:
            entities = tuple(e for e in settings.webhook_entities if scope.syncs(by_rest_name(e)))
        events = hooks.events if hooks.events is not None else settings.webhook_events
        email = (
            hooks.notification_email
            if hooks.notification_email is not None
            else settings.webhook_notification_email
        ).strip() or None
        exclude_user = (
            hooks.exclude_api_user
            if hooks.exclude_api_user is not None
            else settings.webhook_exclude_api_user
        )
        return cls(
            gateway_url=settings.gateway_public_url,
            entities=entities,
            events=frozenset(e for e in EVENTS if e in events),
            notification_email=email,
            threshold_notifications=settings.webhook_threshold_notifications and email is not None,
            exclude_api_user=exclude_user,
            excluded_resources=frozenset(settings.webhook_excluded_resources)
            | frozenset(hooks.excluded_resources),
            subscribed={
                e: tuple(c.subscribed) for e, c in hooks.fields.items() if c.subscribed is not None
            },
            display_always={
                e: tuple(c.display_always)
                for e, c in hooks.fields.items()
                if c.display_always is not None
            },
        )


@dataclass(frozen=True, slots=True)
class EntityMetadata:
    """What the tenant says about one entity and its webhook root (read by ``actual.py``)."""

    entity: str
    readable: bool
    """The API user's security level may query the entity (callouts need it too)."""
    fields: Sequence[FieldInfo]
    udfs: Sequence[UdfDefinition]
    field_ids: Mapping[str, int]
    """REST field name → webhook field id (``fieldID`` picklist of ``{X}WebhookFields``)."""
    udf_ids: Mapping[str, int] | None
    """UDF name → id (``udfFieldID`` picklist); None where the root has no UdfFields child."""


@dataclass(frozen=True, slots=True, order=True)
class FieldChoice:
    """One field of a webhook: its Autotask id and what it does in callouts."""

    field_id: int
    name: str
    subscribed: bool
    display_always: bool


@dataclass(frozen=True, slots=True)
class DesiredWebhook:
    """The one webhook a connection wants for an entity."""

    entity: str
    root: str
    name: str
    gateway_url: str
    events: frozenset[WebhookEvent]
    notification_email: str | None
    threshold_notifications: bool
    fields: tuple[FieldChoice, ...]
    udf_fields: tuple[FieldChoice, ...]
    excluded_resources: frozenset[int]
    has_udf_child: bool = True

    def webhook_url(self, registration_id: str) -> str:
        return naming.callout_url(self.gateway_url, registration_id)

    def deactivation_url(self, registration_id: str) -> str:
        return naming.deactivation_url(self.gateway_url, registration_id)

    def properties(self, registration_id: str) -> dict[str, Any]:
        """The webhook's own fields as Autotask names them (no secret, no id)."""
        return {
            "name": self.name,
            "webhookUrl": self.webhook_url(registration_id),
            "deactivationUrl": self.deactivation_url(registration_id),
            **{flag: event in self.events for event, flag in _EVENT_FLAGS.items()},
            "sendThresholdExceededNotification": self.threshold_notifications,
            "notificationEmailAddress": self.notification_email,
        }

    def digest(self, registration_id: str) -> str:
        """A short hash of everything desired (recorded in the registration once applied)."""
        document = {
            "properties": self.properties(registration_id),
            "fields": [[f.field_id, f.subscribed, f.display_always] for f in self.fields],
            "udf_fields": [[f.field_id, f.subscribed, f.display_always] for f in self.udf_fields],
            "excluded": sorted(self.excluded_resources),
        }
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class DesiredState:
    """Every webhook one connection wants, and the entities it cannot decide about."""

    connection: str
    webhooks: Mapping[str, DesiredWebhook] = field(default_factory=dict)
    blocked: Mapping[str, str] = field(default_factory=dict)
    """Entity → why its webhook is left as it is."""
    notes: tuple[str, ...] = ()
    """Warnings that do not stop anything (e.g. the API user's resource was not found)."""

    @property
    def entities(self) -> frozenset[str]:
        return frozenset(self.webhooks) | frozenset(self.blocked)


def desired_state(
    *,
    connection: str,
    policy: WebhookPolicy,
    metadata: Mapping[str, EntityMetadata],
    api_user_resource_id: int | None,
    unreadable: Mapping[str, str] | None = None,
) -> DesiredState:
    """The webhooks ``connection`` wants. ``metadata`` holds each policy entity that could be
    read; ``unreadable`` says why the others could not."""
    webhooks: dict[str, DesiredWebhook] = {}
    blocked: dict[str, str] = dict(unreadable or {})
    notes: list[str] = []
    excluded = set(policy.excluded_resources)
    if policy.exclude_api_user:
        if api_user_resource_id is None:
            notes.append(
                "the API user's resource was not found (Resources query by its username), so "
                "its own writes will call back: give its security level read access to "
                "Resources, or list its resource id in AUTOTASK_SYNC_WEBHOOK_EXCLUDED_RESOURCES"
            )
        else:
            excluded.add(api_user_resource_id)
    for entity in policy.entities:
        if entity in blocked:
            continue
        meta = metadata.get(entity)
        if meta is None:
            blocked[entity] = "its metadata could not be read"
            continue
        try:
            webhooks[entity] = _desired_webhook(connection, policy, meta, frozenset(excluded))
        except ConfigError as exc:
            blocked[entity] = str(exc)
    return DesiredState(connection, webhooks, blocked, tuple(notes))


def _desired_webhook(
    connection: str, policy: WebhookPolicy, meta: EntityMetadata, excluded: frozenset[int]
) -> DesiredWebhook:
    entity = meta.entity
    spec = by_rest_name(entity)
    if not meta.readable:
        raise ConfigError(
            f"the API user's security level cannot read {entity}, and Autotask only calls back "
            f"for records the API user may see: grant it query (view) access to {entity} "
            "under Admin > Account Settings & Users > Security Levels, or leave "
            f"{entity} out of AUTOTASK_SYNC_WEBHOOK_ENTITIES"
        )
    supported = {f.name for f in meta.fields if f.is_supported_webhook_field}
    standard = {name: fid for name, fid in meta.field_ids.items() if name in supported}
    udf_ids = meta.udf_ids or {}
    udf_supported = {u.name for u in meta.udfs if _udf_supported(u)}
    udfs = {name: uid for name, uid in udf_ids.items() if name in udf_supported}

    def is_display(name: str, udf: bool) -> bool:
        if udf:
            return "external" in name.lower()
        return (
            name in spec.display_always_fields
            or name == "id"
            or name.endswith("Number")
            or "external" in name.lower()
        )

    subscribed = _chosen(policy.subscribed.get(entity), standard, udfs, entity, "subscribed")
    display = _chosen(policy.display_always.get(entity), standard, udfs, entity, "display_always")
    if subscribed is None:
        subscribed = set(standard) | {f"udf:{n}" for n in udfs}
    if display is None:
        display = {n for n in standard if is_display(n, False)}
        display |= {f"udf:{n}" for n in udfs if is_display(n, True)}
    if not subscribed:
        raise ConfigError(
            f"no subscribed field for {entity}: a webhook needs at least one to become ready; "
            f"list one under webhooks.fields.{entity}.subscribed in the connection's scope"
        )
    fields = tuple(
        sorted(
            FieldChoice(fid, name, name in subscribed, name in display)
            for name, fid in standard.items()
            if name in subscribed or name in display
        )
    )
    udf_fields = tuple(
        sorted(
            FieldChoice(uid, name, f"udf:{name}" in subscribed, f"udf:{name}" in display)
            for name, uid in udfs.items()
            if f"udf:{name}" in subscribed or f"udf:{name}" in display
        )
    )
    assert spec.webhook_root is not None
    return DesiredWebhook(
        entity=entity,
        root=spec.webhook_root,
        name=naming.webhook_name(connection, entity),
        gateway_url=policy.gateway_url,
        events=policy.events,
        notification_email=policy.notification_email,
        threshold_notifications=policy.threshold_notifications,
        fields=fields,
        udf_fields=udf_fields,
        excluded_resources=excluded,
        has_udf_child=spec.webhook_udf_child,
    )


def _chosen(
    names: tuple[str, ...] | None,
    standard: Mapping[str, int],
    udfs: Mapping[str, int],
    entity: str,
    what: str,
) -> set[str] | None:
    """Scope-listed names resolved (case-insensitively) to standard names or ``udf:`` names."""
    if names is None:
        return None
    by_lower = {n.lower(): n for n in standard}
    udf_lower = {n.lower(): f"udf:{n}" for n in udfs}
    found: set[str] = set()
    unknown = []
    for name in names:
        key = name.strip().lower()
        if key in by_lower:
            found.add(by_lower[key])
        elif key in udf_lower:
            found.add(udf_lower[key])
        else:
            unknown.append(name)
    if unknown:
        choices = sorted(standard) + sorted(udfs)
        shown = ", ".join(choices[:_SHOWN_CHOICES]) + (
            " ..." if len(choices) > _SHOWN_CHOICES else ""
        )
        raise ConfigError(
            f"webhooks.fields.{entity}.{what} in the connection's scope names "
            f"{', '.join(map(repr, unknown))}, which {entity} does not offer as webhook fields "
            f"(choose from {shown})"
        )
    return found


def _udf_supported(udf: UdfDefinition) -> bool:
    """UDF metadata carries ``isSupportedWebhookField`` as an extra key; absent means yes."""
    flag = (udf.model_extra or {}).get("isSupportedWebhookField", True)
    return flag is not False


__all__ = [
    "DesiredState",
    "DesiredWebhook",
    "EntityMetadata",
    "FieldChoice",
    "WebhookPolicy",
    "desired_state",
]
