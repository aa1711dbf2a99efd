"""Which webhooks a change fires, and the ``Fields`` each callout carries (§7, §8.2).

A webhook fires for an event when it is active and ready, subscribed to the event type, its
owner may read the entity (``callouts.require_owner_read``), the resource that made the change is
not in its ExcludedResources (which, by default, covers writes made through the REST API too),
and, for updates, at least one subscribed field (standard or UDF) changed. ``Fields`` holds the
changed subscribed fields (new values) plus every display-always field; what creates and
deletes carry is configurable because the doc is unsure (defaults: display-always only for
creates, ``{}`` for deletes, as in Nango's sample).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tools.autotask_sim.callouts.events import ChangeEvent
from tools.autotask_sim.config import CalloutConfig, SimulatorConfig
from tools.autotask_sim.jsontypes import JsonValue, Record
from tools.autotask_sim.store.webhooks import EVENT_FLAGS, ChildKind, WebhookRegistry, WebhookRoot

OwnerCanRead = Callable[[int, str], bool]


@dataclass(frozen=True, slots=True)
class CalloutTarget:
    """One webhook to call for one event, with the payload's ``Fields``."""

    root: str
    webhook: Record
    fields: dict[str, JsonValue]


@dataclass(frozen=True, slots=True)
class _Selection:
    subscribed: frozenset[str]
    display: frozenset[str]
    subscribed_udfs: frozenset[str]
    display_udfs: frozenset[str]
    excluded: frozenset[int]


class CalloutMatcher:
    """Turns change events into callout targets."""

    def __init__(
        self, registry: WebhookRegistry, root: SimulatorConfig, owner_can_read: OwnerCanRead
    ) -> None:
        self.registry = registry
        self._root = root
        self.owner_can_read = owner_can_read

    @property
    def config(self) -> CalloutConfig:
        return self._root.callouts

    def match(self, event: ChangeEvent) -> list[CalloutTarget]:
        root = self.registry.root_for_entity(event.entity)
        if root is None:
            return []
        flag = EVENT_FLAGS[event.action]
        targets: list[CalloutTarget] = []
        for webhook in root.webhooks.rows():
            if not (webhook.get("isActive") and webhook.get("isReady") and webhook.get(flag)):
                continue
            owner = webhook.get("ownerResourceID")
            if (
                self.config.require_owner_read
                and isinstance(owner, int)
                and not self.owner_can_read(owner, event.entity)
            ):
                continue  # a webhook only fires if its API user can see the entity
            webhook_id = webhook["id"]
            assert isinstance(webhook_id, int)
            sel = self._selection(root, webhook_id)
            if event.person_id in sel.excluded and (
                self.config.exclusions_cover_api_writes or not event.via_api
            ):
                continue
            names, udf_names = self._payload_names(event, sel)
            if names is None:
                continue
            fields = self._fields(root, event.record, names, udf_names)
            targets.append(CalloutTarget(root.name, webhook, fields))
        return targets

    def _selection(self, root: WebhookRoot, webhook_id: int) -> _Selection:
        field_ids, udf_ids = self.registry.field_ids(root)
        sub: set[str] = set()
        disp: set[str] = set()
        sub_udf: set[str] = set()
        disp_udf: set[str] = set()
        sources: list[tuple[ChildKind, str, dict[int, str], set[str], set[str]]] = [
            ("Fields", "fieldID", field_ids, sub, disp),
            ("UdfFields", "udfFieldID", udf_ids, sub_udf, disp_udf),
        ]
        for kind, key, names, subscribed, display in sources:
            table = root.children.get(kind)
            if table is None:
                continue  # TicketNoteWebhooks have no UdfFields
            for row in table.rows():
                if row.get("webhookID") != webhook_id:
                    continue
                name = names.get(row[key])
                if name is None:
                    continue
                if row.get("isSubscribedField"):
                    subscribed.add(name)
                if row.get("isDisplayAlwaysField"):
                    display.add(name)
        excluded = frozenset(
            r["resourceID"]
            for r in root.children["ExcludedResources"].rows()
            if r.get("webhookID") == webhook_id
        )
        return _Selection(
            frozenset(sub), frozenset(disp), frozenset(sub_udf), frozenset(disp_udf), excluded
        )

    def _payload_names(
        self, event: ChangeEvent, sel: _Selection
    ) -> tuple[set[str] | None, set[str]]:
        """(standard names, UDF names) to include; (None, ...) when the webhook must not fire."""
        if event.action == "Update":
            changed = event.changed & sel.subscribed
            changed_udfs = event.changed_udfs & sel.subscribed_udfs
            if not changed and not changed_udfs:
                return None, set()
            return set(changed | sel.display), set(changed_udfs | sel.display_udfs)
        if event.action == "Create":
            if self.config.create_fields == "subscribed_and_display_always":
                names = set((event.changed & sel.subscribed) | sel.display)
                return names, set(sel.subscribed_udfs | sel.display_udfs)
            return set(sel.display), set(sel.display_udfs)
        if self.config.delete_fields == "display_always":
            return set(sel.display), set(sel.display_udfs)
        return set(), set()

    def _fields(
        self, root: WebhookRoot, record: Record, names: set[str], udf_names: set[str]
    ) -> dict[str, JsonValue]:
        fields: dict[str, JsonValue] = {}
        schema_fields = self.registry.field_ids(root)[0].values()
        for name in schema_fields:  # schema order keeps Fields deterministic
            if name in names:
                fields[self._key(name)] = self._value(record.get(name))
        if udf_names:
            udfs = record.get("userDefinedFields") or ()
            assert isinstance(udfs, Sequence)
            for item in udfs:
                if isinstance(item, Mapping) and item.get("name") in udf_names:
                    fields[str(item["name"])] = self._value(item.get("value"))
        return fields

    def _key(self, name: str) -> str:
        if self.config.field_key_case == "pascal":
            return name[:1].upper() + name[1:]
        return name

    def _value(self, value: JsonValue) -> JsonValue:
        if not self.config.values_as_strings or value is None:
            return value
        if isinstance(value, bool):
            return "True" if value else "False"  # .NET's ToString
        return str(value)


__all__ = ["CalloutMatcher", "CalloutTarget"]
