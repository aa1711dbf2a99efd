"""Webhook definitions (§7): the five ``{X}Webhooks`` roots and their child collections.

Each root holds its webhooks plus its child tables: ``Fields`` (standard field ids, subscribed
and/or display-always), ``UdfFields`` (not on TicketNoteWebhooks: ticket notes have no UDFs) and
``ExcludedResources``. Bodies bind PascalCase or camelCase, unknown properties are ignored;
answers are camelCase, the GUID as ``webhookGuid``. ``isReady`` is derived: true once a
subscribed field (standard or UDF) exists.

Creates need the fields live metadata marks required (ConfigurationItemWebhooks need neither
``isActive`` nor ``sendThresholdExceededNotification``); a child's ``webhookID`` comes from the
URL when the body leaves it out. Validation texts follow the doc where it quotes them ("name must
be less than or equal to 50 characters" comes out of the generic length check).

A webhook stops (``on_deactivated``) when deliveries keep failing, when it is deleted or set
inactive through the API, and when its owner resource is deactivated or deleted.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from shared.entities import EntitySpec, webhook_entities
from tools.autotask_sim.access.users import ApiUser
from tools.autotask_sim.apierror import business_error, not_found, permission_denied
from tools.autotask_sim.callouts.events import ChangeEvent
from tools.autotask_sim.catalog import (
    ERROR_LOG_WEBHOOK_COLUMN,
    WEBHOOK_EVENT_ERROR_LOGS,
    WEBHOOK_FIELD_IDS,
)
from tools.autotask_sim.catalog.system_entities import (
    webhook_excluded_resources_schema,
    webhook_fields_schema,
    webhook_schema,
    webhook_udf_fields_schema,
)
from tools.autotask_sim.clock import SimClock
from tools.autotask_sim.config import DeactivationTrigger, SimulatorConfig
from tools.autotask_sim.jsontypes import Record
from tools.autotask_sim.store.schema import EntitySchema
from tools.autotask_sim.store.table import Table
from tools.autotask_sim.store.tenant import NO_MATCH_DELETE, NO_MATCH_UPDATE, body_id
from tools.autotask_sim.store.validation import BodyReader, ReferenceCheck

ChildKind = Literal["Fields", "UdfFields", "ExcludedResources"]
_CHILD_KEY = {"Fields": "fieldID", "UdfFields": "udfFieldID", "ExcludedResources": "resourceID"}
EVENT_FLAGS = {
    "Create": "isSubscribedToCreateEvents",
    "Update": "isSubscribedToUpdateEvents",
    "Delete": "isSubscribedToDeleteEvents",
}
DeactivationHook = Callable[[str, Record, DeactivationTrigger], None]
HTTPS_ONLY_TEXT = "{field} must be an https URL on port 443."


def https_on_443(url: str) -> bool:
    """Whether ``url`` is https on port 443, where the vendor says callouts arrive (§8.1)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return False
    return parts.scheme.lower() == "https" and bool(parts.hostname) and port in (None, 443)


@dataclass(frozen=True, slots=True)
class ErrorLogSource:
    """Where an error-log row came from: the truth the row itself may not carry."""

    root: str
    webhook_id: int
    owner: int | None
    """The webhook owner's resource id: only that integration may see the row."""


@dataclass
class WebhookRoot:
    """One ``{X}Webhooks`` root with its child tables."""

    spec: EntitySpec
    webhooks: Table
    children: dict[ChildKind, Table]
    readers: dict[str, BodyReader]

    @property
    def name(self) -> str:
        return self.spec.webhook_root or ""


class WebhookRegistry:
    """All webhook definitions of the tenant."""

    def __init__(
        self, config: SimulatorConfig, clock: SimClock, exists: ReferenceCheck, seed: int
    ) -> None:
        self.config = config
        self.clock = clock
        self._rng = random.Random(f"webhooks:{seed}")
        self.roots: dict[str, WebhookRoot] = {}
        for spec in webhook_entities():
            webhooks = Table(webhook_schema(spec))
            children: dict[ChildKind, Table] = {"Fields": Table(webhook_fields_schema(spec))}
            if WEBHOOK_FIELD_IDS[spec.rest_name].udfs:
                children["UdfFields"] = Table(webhook_udf_fields_schema(spec))
            children["ExcludedResources"] = Table(webhook_excluded_resources_schema(spec))
            readers = {
                name: BodyReader(table.schema, clock, exists)
                for name, table in (("Webhooks", webhooks), *children.items())
            }
            root = WebhookRoot(spec, webhooks, children, readers)
            self.roots[root.name.lower()] = root
        self.error_log = Table(WEBHOOK_EVENT_ERROR_LOGS)
        self.error_log_sources: dict[int, ErrorLogSource] = {}
        self.on_deactivated: DeactivationHook | None = None
        self.on_reactivated: Callable[[str, int], None] | None = None

    def root(self, name: str) -> WebhookRoot | None:
        return self.roots.get(name.lower())

    def root_for_entity(self, rest_name: str) -> WebhookRoot | None:
        return next((r for r in self.roots.values() if r.spec.rest_name == rest_name), None)

    def render(self, record: Record) -> Record:
        """A webhook as GET returns it (the secret hidden unless configured otherwise)."""
        if self.config.api.echo_webhook_secret:
            return record
        out = dict(record)
        out["secretKey"] = None
        return out

    # -------------------------------------------------------------- webhooks

    def create(self, root_name: str, body: Mapping[str, Any], user: ApiUser) -> Record:
        root = self._root(root_name)
        if not user.security.can_create_webhooks:
            raise permission_denied(self.config.api.permission_denied_status, "create", root.name)
        owned = sum(
            1
            for r in self.roots.values()
            for w in r.webhooks.rows()
            if w.get("ownerResourceID") == user.resource_id
        )
        if owned >= user.security.max_webhooks:
            raise business_error(
                f"The maximum number of webhooks ({user.security.max_webhooks}) allowed for the "
                "security level of the logged in Resource has been reached."
            )
        schema = root.webhooks.schema
        values = root.readers["Webhooks"].read(self._complete(schema, body), creating=True)
        record: Record = {f.name: None for f in schema.fields}
        for flag in (*EVENT_FLAGS.values(), "isActive", "sendThresholdExceededNotification"):
            record[flag] = False  # nothing is on unless asked for
        record.update(values.fields)
        record["id"] = root.webhooks.allocate_id()
        record["isReady"] = False
        record["ownerResourceID"] = user.resource_id
        record["webhookGuid"] = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self._check_rules(root, record)
        root.webhooks.put(record)
        return record

    def update(
        self,
        root_name: str,
        body: Mapping[str, Any],
        *,
        replace: bool = False,
        record_id: int | None = None,
    ) -> Record:
        root = self._root(root_name)
        target = record_id if record_id is not None else body_id(body)
        current = root.webhooks.get(target)
        if current is None:
            raise business_error(NO_MATCH_UPDATE)
        if replace:
            body = self._complete(root.webhooks.schema, body)
        values = root.readers["Webhooks"].read(body, creating=False, replace=replace)
        record = dict(current)
        record.update(values.fields)
        self._check_rules(root, record)
        root.webhooks.put(record)
        was_active, is_active = bool(current.get("isActive")), bool(record.get("isActive"))
        if was_active and not is_active and self.on_deactivated:
            self.on_deactivated(root.name, record, "patch")
        if is_active and not was_active and self.on_reactivated:
            self.on_reactivated(root.name, target)
        return record

    def delete(self, root_name: str, webhook_id: int) -> Record:
        root = self._root(root_name)
        record = root.webhooks.remove(webhook_id)
        if record is None:
            raise business_error(NO_MATCH_DELETE)
        for table in root.children.values():
            for child in [c for c in table.rows() if c.get("webhookID") == webhook_id]:
                table.remove(child["id"])
        if self.on_deactivated:
            self.on_deactivated(root.name, record, "delete")
        return record

    def deactivate(
        self, root_name: str, webhook_id: int, reason: DeactivationTrigger = "auto"
    ) -> Record | None:
        """Autotask's own deactivation: after too many failed events, or the owner gone."""
        root = self._root(root_name)
        current = root.webhooks.get(webhook_id)
        if current is None or not current.get("isActive"):
            return None
        record = dict(current)
        record["isActive"] = False
        root.webhooks.put(record)
        if self.on_deactivated:
            self.on_deactivated(root.name, record, reason)
        return record

    def on_change(self, event: ChangeEvent) -> None:
        """Bus listener: a resource deactivated or deleted stops the webhooks it owns (§8.4)."""
        if event.entity != "Resources":
            return
        gone = event.action == "Delete" or (
            "isActive" in event.changed and not event.record.get("isActive")
        )
        if not gone:
            return
        for root in self.roots.values():
            for webhook in list(root.webhooks.rows()):
                if webhook.get("ownerResourceID") == event.entity_id:
                    self.deactivate(root.name, webhook["id"], "owner")

    def _complete(self, schema: EntitySchema, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """``body`` with required booleans it leaves out bound as false, unless configured to
        reject them (a non-nullable .NET bool binds a missing value as false)."""
        if self.config.webhooks.missing_required_booleans == "reject":
            return body
        given = {key.lower() for key in body if isinstance(key, str)}
        missing = {
            f.name: False
            for f in schema.fields
            if f.required and f.data_type == "boolean" and f.name.lower() not in given
        }
        return {**missing, **body} if missing else body

    def _check_rules(self, root: WebhookRoot, record: Record) -> None:
        if self.config.webhooks.https_only == "on_save":
            for field in ("webhookUrl", "deactivationUrl"):
                if not https_on_443(str(record.get(field) or "")):
                    raise business_error(HTTPS_ONLY_TEXT.format(field=field))
        others = [w for w in root.webhooks.rows() if w["id"] != record["id"]]
        if self.config.webhooks.reject_duplicates:
            url = str(record.get("webhookUrl") or "").lower()
            for other in others:
                if str(other.get("webhookUrl") or "").lower() != url:
                    continue
                for action, flag in EVENT_FLAGS.items():
                    if record.get(flag) and other.get(flag):
                        raise business_error(
                            f"A webhook with this WebhookUrl is already subscribed to {action} "
                            f"events for this entity (webhook {other['id']})."
                        )
        if record.get("isActive"):
            active = sum(1 for w in others if w.get("isActive"))
            if active >= self.config.webhooks.max_active_per_entity:
                raise business_error(
                    f"The maximum of {self.config.webhooks.max_active_per_entity} active webhooks "
                    f"for {root.spec.rest_name} has been reached."
                )

    # -------------------------------------------------------------- children

    def children(self, root_name: str, kind: ChildKind, webhook_id: int) -> list[Record]:
        root = self._root(root_name)
        self._webhook(root, webhook_id)
        return [c for c in self._table(root, kind).rows() if c.get("webhookID") == webhook_id]

    def create_child(
        self, root_name: str, kind: ChildKind, webhook_id: int, body: Mapping[str, Any]
    ) -> Record:
        root = self._root(root_name)
        self._webhook(root, webhook_id)
        table = self._table(root, kind)
        given = {k.lower(): v for k, v in body.items() if isinstance(k, str)}
        if "webhookid" not in given:
            body = {**body, "webhookID": webhook_id}  # the parent in the URL fills it
        values = root.readers[kind].read(self._complete(table.schema, body), creating=True)
        if values.fields.get("webhookID") != webhook_id:
            raise business_error(
                f"webhookID {values.fields.get('webhookID')} does not match the webhook "
                f"{webhook_id} in the URL."
            )
        key = _CHILD_KEY[kind]
        if any(
            c.get("webhookID") == webhook_id and c.get(key) == values.fields.get(key)
            for c in table.rows()
        ):
            raise business_error(
                f"{key} {values.fields.get(key)} is already on webhook {webhook_id}."
            )
        record: Record = {f.name: None for f in table.schema.fields}
        if kind != "ExcludedResources":
            record.update(isSubscribedField=False, isDisplayAlwaysField=False)
        record.update(values.fields)
        record["id"] = table.allocate_id()
        record["webhookID"] = webhook_id
        table.put(record)
        self._refresh_ready(root, webhook_id)
        return record

    def update_child(
        self, root_name: str, kind: ChildKind, webhook_id: int, body: Mapping[str, Any]
    ) -> Record:
        root = self._root(root_name)
        table = self._table(root, kind)
        current = table.get(body_id(body))
        if current is None or current.get("webhookID") != webhook_id:
            raise business_error(NO_MATCH_UPDATE)
        values = root.readers[kind].read(body, creating=False)
        record = dict(current)
        record.update(values.fields)
        table.put(record)
        self._refresh_ready(root, webhook_id)
        return record

    def delete_child(self, root_name: str, kind: ChildKind, webhook_id: int, child_id: int) -> None:
        root = self._root(root_name)
        table = self._table(root, kind)
        current = table.get(child_id)
        if current is None or current.get("webhookID") != webhook_id:
            raise business_error(NO_MATCH_DELETE)
        table.remove(child_id)
        self._refresh_ready(root, webhook_id)

    def _refresh_ready(self, root: WebhookRoot, webhook_id: int) -> None:
        webhook = root.webhooks.get(webhook_id)
        if webhook is None:
            return
        need_subscribed = self.config.webhooks.ready_requires_subscribed_field
        field_tables = [t for kind, t in root.children.items() if kind != "ExcludedResources"]
        ready = any(
            c.get("webhookID") == webhook_id and (c.get("isSubscribedField") or not need_subscribed)
            for table in field_tables
            for c in table.rows()
        )
        if bool(webhook.get("isReady")) != ready:
            updated = dict(webhook)
            updated["isReady"] = ready
            root.webhooks.put(updated)

    # ------------------------------------------------------------ error log

    def add_error_log(
        self, root_name: str, webhook: Record, message: str, payload: str, sequence: int
    ) -> Record:
        """A ``WebhookEventErrorLogs`` row for an event that ran out of attempts.

        Only company and contact webhooks have an id column; other rows carry just the payload.
        """
        row: Record = {f.name: None for f in self.error_log.schema.fields}
        row.update(
            id=self.error_log.allocate_id(),
            createDateTime=self.clock.stamp(
                "WebhookEventErrorLogs", "createDateTime", self.clock.now()
            ),
            errorMessage=message[:8000],
            payload=payload[:8000],
            sequenceNumber=sequence,
        )
        column = ERROR_LOG_WEBHOOK_COLUMN.get(self._root(root_name).name)
        if column is not None:
            row[column] = webhook["id"]
        self.error_log.put(row)
        owner = webhook.get("ownerResourceID")
        self.error_log_sources[row["id"]] = ErrorLogSource(
            self._root(root_name).name, webhook["id"], owner if isinstance(owner, int) else None
        )
        return row

    def delete_error_log(self, row_id: int) -> None:
        """Remove an error-log row (``DELETE /WebhookEventErrorLogs/{id}``)."""
        self.error_log.remove(row_id)
        self.error_log_sources.pop(row_id, None)

    # -------------------------------------------------------------- helpers

    def _root(self, name: str) -> WebhookRoot:
        root = self.root(name)
        if root is None:
            raise not_found()
        return root

    @staticmethod
    def _table(root: WebhookRoot, kind: ChildKind) -> Table:
        table = root.children.get(kind)
        if table is None:
            raise not_found()  # TicketNoteWebhooks/{id}/UdfFields does not exist
        return table

    def _webhook(self, root: WebhookRoot, webhook_id: int) -> Record:
        webhook = root.webhooks.get(webhook_id)
        if webhook is None:
            raise not_found(f"No {root.name} entity with id {webhook_id} was found.")
        return webhook

    def field_ids(self, root: WebhookRoot) -> tuple[dict[int, str], dict[int, str]]:
        ids = WEBHOOK_FIELD_IDS[root.spec.rest_name]
        return ids.fields, ids.udfs


__all__ = [
    "EVENT_FLAGS",
    "HTTPS_ONLY_TEXT",
    "ChildKind",
    "ErrorLogSource",
    "WebhookRegistry",
    "WebhookRoot",
    "https_on_443",
]
