"""Schemas of the webhook entities (§7) and the webhook error log, plus the webhook field ids.

Webhook field ids are not in the parent entity's metadata: clients read them from the ``fieldID``
picklist of ``/{X}WebhookFields/entityInformation/fields`` (label = REST field name, value = id),
and UDF ids from the ``udfFieldID`` picklist of ``/{X}WebhookUdfFields/...``. The ids here are
stable per field so tests and clients can rely on lookups, never on the numbers themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.entities import EntitySpec, webhook_entities
from tools.autotask_sim.catalog.data_entities import DATA_SCHEMAS
from tools.autotask_sim.store.schema import Capabilities, EntitySchema, FieldSpec, PicklistValue

F = FieldSpec

# First field id per webhook entity; gaps keep the ranges apart.
_FIELD_ID_BASE = {
    "Companies": 100,
    "Contacts": 300,
    "ConfigurationItems": 500,
    "Tickets": 700,
    "TicketNotes": 900,
}
_UDF_ID_BASE = 29682800


@dataclass(frozen=True, slots=True)
class WebhookFieldIds:
    """Field id ↔ REST field name maps of one webhook entity."""

    fields: dict[int, str]
    udfs: dict[int, str]

    def field_id(self, name: str) -> int:
        lowered = name.lower()
        return next(i for i, n in self.fields.items() if n.lower() == lowered)

    def udf_id(self, name: str) -> int:
        lowered = name.lower()
        return next(i for i, n in self.udfs.items() if n.lower() == lowered)


def _build_ids() -> dict[str, WebhookFieldIds]:
    schemas = {s.name: s for s in DATA_SCHEMAS}
    result: dict[str, WebhookFieldIds] = {}
    udf_next = _UDF_ID_BASE
    for spec in webhook_entities():
        schema = schemas[spec.rest_name]
        base = _FIELD_ID_BASE[spec.rest_name]
        fields = {base + i: f.name for i, f in enumerate(schema.fields) if f.webhook}
        udfs: dict[int, str] = {}
        for udf in schema.udfs:
            if udf.webhook:
                udfs[udf_next] = udf.name
            udf_next += 1
        result[spec.rest_name] = WebhookFieldIds(fields=fields, udfs=udfs)
    return result


WEBHOOK_FIELD_IDS: dict[str, WebhookFieldIds] = _build_ids()
"""Per data entity REST name."""


def webhook_schema(spec: EntitySpec) -> EntitySchema:
    """Schema of a ``{X}Webhooks`` entity; required fields as live metadata marks them (§7).

    ConfigurationItemWebhooks differ: ``isActive`` and ``sendThresholdExceededNotification``
    are nullable there, so a create may leave them out.
    """
    flags_required = spec.rest_name != "ConfigurationItems"
    return EntitySchema(
        name=spec.webhook_root or "",
        fields=(
            F("id", "long", read_only=True),
            F("name", "string", 50, required=True),
            F("webhookUrl", "string", 500, required=True),
            F("deactivationUrl", "string", 500, required=True),
            F("secretKey", "string", 64, required=True, queryable=False),
            F("isActive", "boolean", required=flags_required),
            F("isReady", "boolean", read_only=True),
            F("isSubscribedToCreateEvents", "boolean"),
            F("isSubscribedToUpdateEvents", "boolean"),
            F("isSubscribedToDeleteEvents", "boolean"),
            F("sendThresholdExceededNotification", "boolean", required=flags_required),
            F("notificationEmailAddress", "string", 150),
            F("ownerResourceID", "integer", read_only=True, reference="Resource"),
            # Live field metadata spells it webhookGuid; Nango's docs write webhookGUID.
            F("webhookGuid", "string", 100, read_only=True),
        ),
    )


def webhook_fields_schema(spec: EntitySpec) -> EntitySchema:
    """Schema of ``{X}WebhookFields``; ``fieldID`` is a picklist of the entity's field ids."""
    ids = WEBHOOK_FIELD_IDS[spec.rest_name]
    picklist = tuple(PicklistValue(i, name) for i, name in ids.fields.items())
    return EntitySchema(
        name=_child_name(spec, "Fields"),
        fields=(
            F("id", "long", read_only=True),
            F("fieldID", "integer", required=True, create_only=True, picklist=picklist),
            F("isSubscribedField", "boolean", required=True),
            F("isDisplayAlwaysField", "boolean", required=True),
            F("webhookID", "integer", required=True, create_only=True),
        ),
    )


def webhook_udf_fields_schema(spec: EntitySpec) -> EntitySchema:
    """Schema of ``{X}WebhookUdfFields``; ``udfFieldID`` is a picklist of the UDF ids.

    Only entities with UDFs have it: TicketNoteWebhooks have no UdfFields child.
    """
    ids = WEBHOOK_FIELD_IDS[spec.rest_name]
    picklist = tuple(PicklistValue(i, name) for i, name in ids.udfs.items())
    return EntitySchema(
        name=_child_name(spec, "UdfFields"),
        fields=(
            F("id", "long", read_only=True),
            F("udfFieldID", "integer", required=True, create_only=True, picklist=picklist),
            F("isSubscribedField", "boolean", required=True),
            F("isDisplayAlwaysField", "boolean", required=True),
            F("webhookID", "integer", required=True, create_only=True),
        ),
    )


def webhook_excluded_resources_schema(spec: EntitySpec) -> EntitySchema:
    """Schema of ``{X}WebhookExcludedResources`` (create, read and delete only)."""
    return EntitySchema(
        name=_child_name(spec, "ExcludedResources"),
        fields=(
            F("id", "long", read_only=True),
            F("resourceID", "integer", required=True, create_only=True, reference="Resource"),
            F("webhookID", "integer", required=True, create_only=True),
        ),
        capabilities=Capabilities(update=False),
    )


# Error-log column holding the owning webhook's id. The vendor table and both swagger-derived
# clients list only these two (the company one named after the legacy "Account" entity): rows of
# Ticket, ConfigurationItem and TicketNote webhooks carry no webhook id and are matched to their
# webhook through the Guid in ``payload``.
ERROR_LOG_WEBHOOK_COLUMN = {
    "CompanyWebhooks": "accountWebhookID",
    "ContactWebhooks": "contactWebhookID",
}

WEBHOOK_EVENT_ERROR_LOGS = EntitySchema(
    name="WebhookEventErrorLogs",
    fields=(
        F("id", "long", read_only=True),
        F("createDateTime", "datetime", read_only=True),
        F("errorMessage", "string", 8000, read_only=True),
        F("payload", "string", 8000, read_only=True),
        F("sequenceNumber", "integer", read_only=True),
        *(F(col, "integer", read_only=True) for col in ERROR_LOG_WEBHOOK_COLUMN.values()),
    ),
    capabilities=Capabilities(create=False, update=False),
)


def _child_name(spec: EntitySpec, child: str) -> str:
    root = spec.webhook_root or ""
    return root[: -len("s")] + child if root.endswith("Webhooks") else root + child


__all__ = [
    "ERROR_LOG_WEBHOOK_COLUMN",
    "WEBHOOK_EVENT_ERROR_LOGS",
    "WEBHOOK_FIELD_IDS",
    "WebhookFieldIds",
    "webhook_excluded_resources_schema",
    "webhook_fields_schema",
    "webhook_schema",
    "webhook_udf_fields_schema",
]
