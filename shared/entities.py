"""The entity registry: one entry per Autotask entity the project knows.

Everything that iterates over entities (the simulator, the client, the provisioner, the sync worker,
the reconciler, the scope judge, topics, schemas) reads this table, so supporting a new entity is
one entry here plus a migration for its mirror table (and the generated files: ``python -m tools
schemas``, ``python -m tools kustomize topics``). ``tests/contracts/`` names whatever an entry
still lacks.

Field names are the REST API's camelCase names (autotask-api.md §3, §6).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, TypeAlias


@dataclass(frozen=True, slots=True)
class PromotedColumn:
    """A typed column of the mirror table generated from the entity's JSON."""

    column: str
    json_field: str
    sql_type: str  # "bigint", "integer", "text", "boolean", "timestamptz"


@dataclass(frozen=True, slots=True)
class ChildOf:
    """Where an entity also lives as a child collection: ``/{parent}/{id}/{collection}``."""

    parent: str  # REST name of the parent entity, e.g. "Tickets"
    collection: str  # child collection name, e.g. "Notes"
    parent_id_field: str  # field on the child holding the parent id, e.g. "ticketID"


MIRROR_SCHEMA = "autotask"
"""The PostgreSQL schema of the mirror tables and their views, apart from the services' state
tables: what downstream readers are granted (docs/consumers.md)."""


FieldType: TypeAlias = Literal["long", "integer", "double", "string", "boolean", "datetime"]
"""A field's ``dataType`` in ``/{Entity}/entityInformation/fields`` (autotask-api.md §3)."""


@dataclass(frozen=True, slots=True)
class Field:
    """One standard field of an entity as the REST API returns it (every field is in every
    record, null when empty; ``required`` ones, the metadata's ``isRequired``, never are)."""

    name: str
    type: FieldType
    required: bool = False


# --- how the sync scope judges an entity (shared/scope/membership.py) ------------------------
@dataclass(frozen=True, slots=True)
class OwnFields:
    """Judged on its own fields, by the ``filter`` section of a connection's sync scope
    (``tickets``, ``companies``: the sections of :class:`shared.scope.rules.SyncScope`)."""

    filter: str


@dataclass(frozen=True, slots=True)
class FollowsParent:
    """In scope while its parent is: when the parent's scope is restricted, the parent's row
    must be live (not deleted, not out of scope) in the mirror."""

    parent: str
    """REST name of the parent entity, e.g. ``Companies``."""
    parent_id_field: str
    """Field on this entity holding the parent's id, e.g. ``companyID``."""


@dataclass(frozen=True, slots=True)
class Unscoped:
    """No scope filter applies: every row is mirrored."""


UNSCOPED = Unscoped()

ScopeRule: TypeAlias = OwnFields | FollowsParent | Unscoped
"""How the sync scope decides whether a row of an entity is mirrored."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EntitySpec:
    """Everything the project needs to know about one Autotask entity."""

    rest_name: str
    """Plural REST resource name, e.g. ``Tickets``."""

    callout_types: tuple[str, ...]
    """Callout ``EntityType`` values: the first is canonical, the rest are aliases seen in use."""

    last_modified_field: str | None
    """Watermark / monotonic-version field; None when the entity has none (id sweeps only)."""

    create_field: str | None
    """Creation timestamp, OR-ed into incremental sweeps for rows with no modified stamp yet."""

    table: str
    """Mirror table name in PostgreSQL; also names the change topic (``autotask.<table>.v1``)."""

    scope: ScopeRule
    """How a connection's sync scope judges rows of the entity (no default: every entry says)."""

    activity_field: str | None = None
    """A stamp that also moves with related activity (a ticket's ``lastActivityDate`` when a
    note is added), OR-ed into incremental sweeps so the mirror's copy of it converges too."""

    webhook_root: str | None = None
    """``{X}Webhooks`` REST root, or None when Autotask offers no webhooks for the entity."""

    webhook_udf_child: bool = True
    """The webhook root has a ``UdfFields`` child (``TicketNoteWebhooks`` has none: ticket notes
    have no UDFs, autotask-api.md §7). Meaningless without ``webhook_root``."""

    webhook_by_default: bool = False
    """The provisioner gives the entity a webhook unless ``AUTOTASK_SYNC_WEBHOOK_ENTITIES`` says
    otherwise."""

    delete_log: str | None = None
    """Entity that records deletions (``DeletedTicketLogs``), if any."""

    delete_log_id_field: str | None = None
    """Field of the delete-log row that holds the deleted entity's id."""

    activity_delete_log: str | None = None
    """Entity that records deletions of this entity's activities (notes, attachments, time
    entries) by naming this entity's id (``DeletedTicketActivityLogs``): its children read it to
    find their own deletes."""

    activity_delete_log_id_field: str | None = None
    """Field of the activity delete-log row that holds this entity's id."""

    can_delete: bool = True
    """False where the API refuses deletes (ConfigurationItems are deactivated instead)."""

    fields: tuple[Field, ...] = ()
    """The entity's standard fields, as ``entityInformation/fields`` lists them: what the topic
    schemas type and what timestamps are normalised by (``tests/contracts`` checks them against
    the simulator's catalogue)."""

    udfs: bool = False
    """Records carry ``userDefinedFields`` (a list of ``{"name", "value"}``)."""

    child_of: ChildOf | None = None
    promoted: tuple[PromotedColumn, ...] = ()
    subscribed_fields: tuple[str, ...] = ()
    """Default webhook fields whose change triggers a callout."""

    display_always_fields: tuple[str, ...] = ()
    """Default webhook fields included in every callout of the webhook."""

    synced_by_default: bool = True
    """Swept and mirrored for a connection whose scope does not list its entities."""

    @property
    def callout_type(self) -> str:
        return self.callout_types[0]

    @property
    def topic_suffix(self) -> str:
        """Lower-case plural used in change topic names: ``autotask.<suffix>.v1``."""
        return self.table

    @property
    def has_webhooks(self) -> bool:
        return self.webhook_root is not None

    @property
    def mirror_table(self) -> str:
        """The mirror table as SQL names it, schema-qualified: ``autotask.<table>``."""
        return f"{MIRROR_SCHEMA}.{self.table}"


TICKETS = EntitySpec(
    rest_name="Tickets",
    callout_types=("Ticket",),
    fields=(
        Field("id", "long", required=True),
        Field("ticketNumber", "string"),
        Field("title", "string", required=True),
        Field("description", "string"),
        Field("status", "integer", required=True),
        Field("priority", "integer", required=True),
        Field("queueID", "integer"),
        Field("ticketType", "integer"),
        Field("source", "integer"),
        Field("issueType", "integer"),
        Field("subIssueType", "integer"),
        Field("companyID", "integer", required=True),
        Field("contactID", "integer"),
        Field("assignedResourceID", "integer"),
        Field("configurationItemID", "integer"),
        Field("creatorResourceID", "integer"),
        Field("dueDateTime", "datetime"),
        Field("estimatedHours", "double"),
        Field("completedDate", "datetime"),
        Field("createDate", "datetime"),
        Field("lastActivityDate", "datetime"),
        Field("lastTrackedModificationDateTime", "datetime"),
    ),
    udfs=True,
    last_modified_field="lastTrackedModificationDateTime",
    create_field="createDate",
    table="tickets",
    scope=OwnFields("tickets"),
    activity_field="lastActivityDate",
    webhook_root="TicketWebhooks",
    webhook_by_default=True,
    delete_log="DeletedTicketLogs",
    delete_log_id_field="ticketID",
    activity_delete_log="DeletedTicketActivityLogs",
    activity_delete_log_id_field="ticketID",
    promoted=(
        PromotedColumn("ticket_number", "ticketNumber", "text"),
        PromotedColumn("title", "title", "text"),
        PromotedColumn("status", "status", "integer"),
        PromotedColumn("priority", "priority", "integer"),
        PromotedColumn("queue_id", "queueID", "bigint"),
        PromotedColumn("company_id", "companyID", "bigint"),
        PromotedColumn("assigned_resource_id", "assignedResourceID", "bigint"),
    ),
    subscribed_fields=(
        "title",
        "description",
        "status",
        "priority",
        "queueID",
        "companyID",
        "contactID",
        "assignedResourceID",
        "dueDateTime",
        "issueType",
        "subIssueType",
    ),
    display_always_fields=("ticketNumber",),
)

COMPANIES = EntitySpec(
    rest_name="Companies",
    callout_types=("Company", "Account"),
    fields=(
        Field("id", "long", required=True),
        Field("companyName", "string", required=True),
        Field("companyNumber", "string"),
        Field("companyType", "integer", required=True),
        Field("isActive", "boolean"),
        Field("phone", "string", required=True),
        Field("fax", "string"),
        Field("address1", "string"),
        Field("address2", "string"),
        Field("city", "string"),
        Field("state", "string"),
        Field("postalCode", "string"),
        Field("webAddress", "string"),
        Field("ownerResourceID", "integer", required=True),
        Field("createDate", "datetime"),
        Field("lastActivityDate", "datetime"),
        Field("lastTrackedModifiedDateTime", "datetime"),
    ),
    udfs=True,
    last_modified_field="lastTrackedModifiedDateTime",
    create_field="createDate",
    table="companies",
    scope=OwnFields("companies"),
    webhook_root="CompanyWebhooks",
    webhook_by_default=True,
    promoted=(
        PromotedColumn("company_name", "companyName", "text"),
        PromotedColumn("company_type", "companyType", "integer"),
        PromotedColumn("is_active", "isActive", "boolean"),
        PromotedColumn("owner_resource_id", "ownerResourceID", "bigint"),
    ),
    subscribed_fields=(
        "companyName",
        "companyType",
        "isActive",
        "phone",
        "address1",
        "city",
        "ownerResourceID",
        "webAddress",
    ),
    display_always_fields=("companyName",),
)

CONTACTS = EntitySpec(
    rest_name="Contacts",
    callout_types=("Contact",),
    fields=(
        Field("id", "long", required=True),
        Field("companyID", "integer", required=True),
        Field("firstName", "string", required=True),
        Field("lastName", "string", required=True),
        Field("emailAddress", "string"),
        Field("phone", "string"),
        Field("mobilePhone", "string"),
        Field("title", "string"),
        Field("isActive", "integer", required=True),
        Field("primaryContact", "boolean"),
        Field("createDate", "datetime"),
        Field("lastActivityDate", "datetime"),
        Field("lastModifiedDate", "datetime"),
    ),
    udfs=True,
    last_modified_field="lastModifiedDate",
    create_field="createDate",
    table="contacts",
    scope=FollowsParent("Companies", "companyID"),
    webhook_root="ContactWebhooks",
    promoted=(
        PromotedColumn("company_id", "companyID", "bigint"),
        PromotedColumn("email_address", "emailAddress", "text"),
        PromotedColumn("first_name", "firstName", "text"),
        PromotedColumn("last_name", "lastName", "text"),
        # The API sends 0/1 (the entity's JSON keeps that); the column is boolean like the
        # other entities' is_active.
        PromotedColumn("is_active", "isActive", "boolean"),
    ),
    subscribed_fields=(
        "firstName",
        "lastName",
        "emailAddress",
        "phone",
        "mobilePhone",
        "title",
        "isActive",
        "companyID",
    ),
    display_always_fields=("companyID",),
)

CONFIGURATION_ITEMS = EntitySpec(
    rest_name="ConfigurationItems",
    callout_types=("ConfigurationItem", "InstalledProduct"),
    fields=(
        Field("id", "long", required=True),
        Field("companyID", "integer", required=True),
        Field("contactID", "integer"),
        Field("productID", "integer"),
        Field("configurationItemType", "integer"),
        Field("referenceTitle", "string", required=True),
        Field("referenceNumber", "string"),
        Field("serialNumber", "string"),
        Field("isActive", "boolean", required=True),
        Field("installDate", "datetime"),
        Field("warrantyExpirationDate", "datetime"),
        Field("createDate", "datetime"),
        Field("lastModifiedTime", "datetime"),
    ),
    udfs=True,
    last_modified_field="lastModifiedTime",
    create_field="createDate",
    table="configuration_items",
    scope=FollowsParent("Companies", "companyID"),
    webhook_root="ConfigurationItemWebhooks",
    can_delete=False,
    promoted=(
        PromotedColumn("company_id", "companyID", "bigint"),
        PromotedColumn("reference_title", "referenceTitle", "text"),
        PromotedColumn("serial_number", "serialNumber", "text"),
        PromotedColumn("is_active", "isActive", "boolean"),
    ),
    subscribed_fields=(
        "referenceTitle",
        "serialNumber",
        "isActive",
        "companyID",
        "contactID",
        "configurationItemType",
        "warrantyExpirationDate",
    ),
    display_always_fields=("companyID",),
)

TICKET_NOTES = EntitySpec(
    rest_name="TicketNotes",
    callout_types=("TicketNote",),
    fields=(
        Field("id", "long", required=True),
        Field("ticketID", "integer", required=True),
        Field("title", "string", required=True),
        Field("description", "string", required=True),
        Field("noteType", "integer", required=True),
        Field("publish", "integer", required=True),
        Field("creatorResourceID", "integer"),
        Field("createDateTime", "datetime"),
        Field("lastActivityDate", "datetime"),
    ),
    last_modified_field="lastActivityDate",
    create_field="createDateTime",
    table="ticket_notes",
    scope=FollowsParent("Tickets", "ticketID"),
    webhook_root="TicketNoteWebhooks",
    webhook_udf_child=False,
    child_of=ChildOf(parent="Tickets", collection="Notes", parent_id_field="ticketID"),
    promoted=(
        PromotedColumn("ticket_id", "ticketID", "bigint"),
        PromotedColumn("note_type", "noteType", "integer"),
        PromotedColumn("publish", "publish", "integer"),
        PromotedColumn("title", "title", "text"),
    ),
    subscribed_fields=("title", "description", "noteType", "publish"),
    display_always_fields=("ticketID",),
)

# Entities without webhooks: mirrored by sweeps alone (shared/reconcile/). Resources have no
# last-modified field, so every sweep reads them whole (a small table); Contracts move
# lastModifiedDateTime (GDS verified it live) and have no creation stamp.
RESOURCES = EntitySpec(
    rest_name="Resources",
    callout_types=("Resource",),
    fields=(
        Field("id", "long", required=True),
        Field("userName", "string"),
        Field("email", "string", required=True),
        Field("firstName", "string", required=True),
        Field("lastName", "string", required=True),
        Field("title", "string"),
        Field("resourceType", "string"),
        Field("licenseType", "integer"),
        Field("isActive", "boolean"),
    ),
    last_modified_field=None,
    create_field=None,
    table="resources",
    scope=UNSCOPED,
    can_delete=False,  # resources are deactivated, never deleted through the API
    promoted=(
        PromotedColumn("user_name", "userName", "text"),
        PromotedColumn("email", "email", "text"),
        PromotedColumn("is_active", "isActive", "boolean"),
    ),
)

CONTRACTS = EntitySpec(
    rest_name="Contracts",
    callout_types=("Contract",),
    fields=(
        Field("id", "long", required=True),
        Field("companyID", "integer", required=True),
        Field("contactID", "integer"),
        Field("contractName", "string", required=True),
        Field("contractNumber", "string"),
        Field("contractType", "integer", required=True),
        Field("contractCategory", "integer"),
        Field("status", "integer", required=True),
        Field("startDate", "datetime", required=True),
        Field("endDate", "datetime", required=True),
        Field("isDefaultContract", "boolean"),
        Field("description", "string"),
        Field("estimatedRevenue", "double"),
        Field("setupFee", "double"),
        Field("serviceLevelAgreementID", "integer"),
        Field("timeReportingRequiresStartAndStopTimes", "integer", required=True),
        Field("lastModifiedDateTime", "datetime"),
    ),
    last_modified_field="lastModifiedDateTime",
    create_field=None,
    table="contracts",
    scope=FollowsParent("Companies", "companyID"),
    can_delete=False,  # the API creates and updates contracts; it does not delete them
    promoted=(
        PromotedColumn("company_id", "companyID", "bigint"),
        PromotedColumn("contract_name", "contractName", "text"),
        PromotedColumn("contract_number", "contractNumber", "text"),
        PromotedColumn("contract_type", "contractType", "integer"),
        PromotedColumn("status", "status", "integer"),
    ),
)

REGISTRY: tuple[EntitySpec, ...] = (
    TICKETS,
    COMPANIES,
    CONTACTS,
    CONFIGURATION_ITEMS,
    TICKET_NOTES,
    RESOURCES,
    CONTRACTS,
)

_BY_REST = {spec.rest_name.lower(): spec for spec in REGISTRY}
_BY_CALLOUT = {name.lower(): spec for spec in REGISTRY for name in spec.callout_types}
_BY_WEBHOOK = {spec.webhook_root.lower(): spec for spec in REGISTRY if spec.webhook_root}


def by_rest_name(name: str) -> EntitySpec:
    """Look an entity up by its REST name (case-insensitive). Raises KeyError if unknown."""
    return _BY_REST[name.lower()]


def by_callout_type(entity_type: str) -> EntitySpec:
    """Look an entity up by a callout's ``EntityType`` (aliases included, case-insensitive)."""
    return _BY_CALLOUT[entity_type.lower()]


def by_webhook_root(root: str) -> EntitySpec:
    """Look an entity up by its ``{X}Webhooks`` root (case-insensitive)."""
    return _BY_WEBHOOK[root.lower()]


def find_rest_name(name: str) -> EntitySpec | None:
    return _BY_REST.get(name.lower())


def webhook_entities() -> Iterator[EntitySpec]:
    """Entities Autotask can send callouts for, in registry order."""
    return (spec for spec in REGISTRY if spec.has_webhooks)


def default_webhook_entities() -> Iterator[EntitySpec]:
    """Entities the provisioner gives a webhook unless configured otherwise, in registry order."""
    return (spec for spec in webhook_entities() if spec.webhook_by_default)


def synced_entities() -> Iterator[EntitySpec]:
    """Entities the sync mirrors unless configured otherwise, in registry order."""
    return (spec for spec in REGISTRY if spec.synced_by_default)


__all__ = [
    "COMPANIES",
    "CONFIGURATION_ITEMS",
    "CONTACTS",
    "CONTRACTS",
    "MIRROR_SCHEMA",
    "REGISTRY",
    "RESOURCES",
    "TICKETS",
    "TICKET_NOTES",
    "UNSCOPED",
    "ChildOf",
    "EntitySpec",
    "Field",
    "FieldType",
    "FollowsParent",
    "OwnFields",
    "PromotedColumn",
    "ScopeRule",
    "Unscoped",
    "by_callout_type",
    "by_rest_name",
    "by_webhook_root",
    "default_webhook_entities",
    "find_rest_name",
    "synced_entities",
    "webhook_entities",
]
