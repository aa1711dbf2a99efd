"""Webhook definitions (§7): the five ``{X}Webhooks`` roots and their child collections.

Each root holds its webhooks plus three child tables: ``Fields`` (standard field ids, subscribed
and/or display-always), ``UdfFields`` and ``ExcludedResources``. Bodies bind PascalCase or
camelCase; answers are camelCase. ``isReady`` is derived: true once a subscribed field (standard
or UDF) exists. Validation texts follow the doc where it quotes them ("name must be less than or
equal to 50 characters" comes out of the generic length check).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from shared.entities import EntitySpec, webhook_entities
from tools.autotask_sim.apierror import business_error, not_found, permission_denied
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
from tools.autotask_sim.config import SimulatorConfig
from tools.autotask_sim.jsontypes import Record
from tools.autotask_sim.table import Table
from tools.autotask_sim.tenant import NO_MATCH_DELETE, NO_MATCH_UPDATE, body_id
from tools.autotask_sim.users import ApiUser
from tools.autotask_sim.validation import BodyReader, ReferenceCheck

ChildKind = Literal["Fields", "UdfFields", "ExcludedResources"]
CHILD_KINDS: dict[str, ChildKind] = {
    "fields": "Fields",
    "udffields": "UdfFields",
    "excludedresources": "ExcludedResources",
}
_CHILD_KEY = {"Fields": "fieldID", "UdfFields": "udfFieldID", "ExcludedResources": "resourceID"}
EVENT_FLAGS = {
    "Create": "isSubscribedToCreateEvents",
    "Update": "isSubscribedToUpdateEvents",
    "Delete": "isSubscribedToDeleteEvents",
}
DeactivationHook = Callable[[str, Record, str], None]


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
            tables: dict[str, Table] = {
                "Webhooks": Table(webhook_schema(spec.webhook_root or "")),
                "Fields": Table(webhook_fields_schema(spec)),
                "UdfFields": Table(webhook_udf_fields_schema(spec)),
                "ExcludedResources": Table(webhook_excluded_resources_schema(spec)),
            }
            readers = {k: BodyReader(t.schema, clock, exists) for k, t in tables.items()}
            children: dict[ChildKind, Table] = {
                "Fields": tables["Fields"],
                "UdfFields": tables["UdfFields"],
                "ExcludedResources": tables["ExcludedResources"],
            }
            root = WebhookRoot(spec, tables["Webhooks"], children, readers)
            self.roots[root.name.lower()] = root
        self.error_log = Table(WEBHOOK_EVENT_ERROR_LOGS)
        self.error_log_owner: dict[int, int] = {}
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
        values = root.readers["Webhooks"].read(body, creating=True)
        record: Record = {f.name: None for f in root.webhooks.schema.fields}
        for flag in (*EVENT_FLAGS.values(), "isActive", "sendThresholdExceededNotification"):
            record[flag] = False  # nothing is on unless asked for
        record.update(values.fields)
        record["id"] = root.webhooks.allocate_id()
        record["isReady"] = False
        record["ownerResourceID"] = user.resource_id
        record["webhookGUID"] = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
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

    def deactivate(self, root_name: str, webhook_id: int) -> Record | None:
        """Autotask's own deactivation after too many failed events."""
        root = self._root(root_name)
        current = root.webhooks.get(webhook_id)
        if current is None or not current.get("isActive"):
            return None
        record = dict(current)
        record["isActive"] = False
        root.webhooks.put(record)
        if self.on_deactivated:
            self.on_deactivated(root.name, record, "auto")
        return record

    def _check_rules(self, root: WebhookRoot, record: Record) -> None:
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
        return [c for c in root.children[kind].rows() if c.get("webhookID") == webhook_id]

    def create_child(
        self, root_name: str, kind: ChildKind, webhook_id: int, body: Mapping[str, Any]
    ) -> Record:
        root = self._root(root_name)
        self._webhook(root, webhook_id)
        table = root.children[kind]
        values = root.readers[kind].read(body, creating=True)
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
        table = root.children[kind]
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
        table = root.children[kind]
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
        ready = any(
            c.get("webhookID") == webhook_id and (c.get("isSubscribedField") or not need_subscribed)
            for table in (root.children["Fields"], root.children["UdfFields"])
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
        """A ``WebhookEventErrorLogs`` row for an event that ran out of attempts."""
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
        row[ERROR_LOG_WEBHOOK_COLUMN[self._root(root_name).name]] = webhook["id"]
        self.error_log.put(row)
        owner = webhook.get("ownerResourceID")
        if isinstance(owner, int):
            self.error_log_owner[row["id"]] = owner
        return row

    # -------------------------------------------------------------- helpers

    def _root(self, name: str) -> WebhookRoot:
        root = self.root(name)
        if root is None:
            raise not_found()
        return root

    def _webhook(self, root: WebhookRoot, webhook_id: int) -> Record:
        webhook = root.webhooks.get(webhook_id)
        if webhook is None:
            raise not_found(f"No {root.name} entity with id {webhook_id} was found.")
        return webhook

    def field_ids(self, root: WebhookRoot) -> tuple[dict[int, str], dict[int, str]]:
        ids = WEBHOOK_FIELD_IDS[root.spec.rest_name]
        return ids.fields, ids.udfs


__all__ = ["CHILD_KINDS", "EVENT_FLAGS", "ChildKind", "WebhookRegistry", "WebhookRoot"]
