"""Schemas of the business entities: Tickets, Companies, Contacts, ConfigurationItems, TicketNotes,
Resources, Contracts, and the ticket delete logs.

Names and types are the REST API's (autotask-api.md §3, §6 and the Anteris entity classes it
cites). Last-modified fields are read-only and not webhook fields: Autotask moves them itself.
"""

from __future__ import annotations

from tools.autotask_sim.catalog import picklists as pl
from tools.autotask_sim.store.schema import Capabilities, EntitySchema, FieldSpec

F = FieldSpec


def _id() -> FieldSpec:
    return F("id", "long", read_only=True)


def _stamp(name: str) -> FieldSpec:
    return F(name, "datetime", read_only=True)


TICKETS = EntitySchema(
    name="Tickets",
    fields=(
        _id(),
        F("ticketNumber", "string", 50, read_only=True, webhook=True),
        F("title", "string", 255, required=True, webhook=True),
        F("description", "string", 8000, webhook=True),
        F("status", "integer", required=True, picklist=pl.TICKET_STATUS, webhook=True),
        F("priority", "integer", required=True, picklist=pl.TICKET_PRIORITY, webhook=True),
        F("queueID", "integer", picklist=pl.TICKET_QUEUE, webhook=True),
        F("ticketType", "integer", picklist=pl.TICKET_TYPE, webhook=True),
        F("source", "integer", picklist=pl.TICKET_SOURCE, webhook=True),
        F("issueType", "integer", picklist=pl.ISSUE_TYPE, webhook=True),
        F(
            "subIssueType",
            "integer",
            picklist=pl.SUB_ISSUE_TYPE,
            picklist_parent="issueType",
            webhook=True,
        ),
        F("companyID", "integer", required=True, reference="Company", webhook=True),
        F("contactID", "integer", reference="Contact", webhook=True),
        F("assignedResourceID", "integer", reference="Resource", webhook=True),
        F("configurationItemID", "integer", reference="ConfigurationItem", webhook=True),
        F("creatorResourceID", "integer", read_only=True, reference="Resource"),
        F("dueDateTime", "datetime", webhook=True),
        F("estimatedHours", "double", webhook=True),
        F("completedDate", "datetime", read_only=True),
        _stamp("createDate"),
        _stamp("lastActivityDate"),
        _stamp("lastTrackedModificationDateTime"),
    ),
    udfs=pl.TICKET_UDFS,
    capabilities=Capabilities(webhooks=True),
)

COMPANIES = EntitySchema(
    name="Companies",
    fields=(
        _id(),
        F("companyName", "string", 100, required=True, webhook=True),
        F("companyNumber", "string", 50, webhook=True),
        F("companyType", "integer", required=True, picklist=pl.COMPANY_TYPE, webhook=True),
        F("isActive", "boolean", webhook=True),
        F("phone", "string", 25, required=True, webhook=True),
        F("fax", "string", 25, webhook=True),
        F("address1", "string", 128, webhook=True),
        F("address2", "string", 128, webhook=True),
        F("city", "string", 30, webhook=True),
        F("state", "string", 25, webhook=True),
        F("postalCode", "string", 10, webhook=True),
        F("webAddress", "string", 255, webhook=True),
        F("ownerResourceID", "integer", required=True, reference="Resource", webhook=True),
        _stamp("createDate"),
        _stamp("lastActivityDate"),
        _stamp("lastTrackedModifiedDateTime"),
    ),
    udfs=pl.COMPANY_UDFS,
    capabilities=Capabilities(webhooks=True),
)

CONTACTS = EntitySchema(
    name="Contacts",
    fields=(
        _id(),
        F("companyID", "integer", required=True, reference="Company", webhook=True),
        F("firstName", "string", 50, required=True, webhook=True),
        F("lastName", "string", 50, required=True, webhook=True),
        F("emailAddress", "string", 254, webhook=True),
        F("phone", "string", 25, webhook=True),
        F("mobilePhone", "string", 25, webhook=True),
        F("title", "string", 50, webhook=True),
        F("isActive", "integer", required=True, webhook=True),
        F("primaryContact", "boolean", webhook=True),
        _stamp("createDate"),
        _stamp("lastActivityDate"),
        _stamp("lastModifiedDate"),
    ),
    udfs=pl.CONTACT_UDFS,
    capabilities=Capabilities(webhooks=True),
)

CONFIGURATION_ITEMS = EntitySchema(
    name="ConfigurationItems",
    fields=(
        _id(),
        F("companyID", "integer", required=True, reference="Company", webhook=True),
        F("contactID", "integer", reference="Contact", webhook=True),
        F("productID", "integer", webhook=True),
        F("configurationItemType", "integer", picklist=pl.CI_TYPE, webhook=True),
        F("referenceTitle", "string", 200, required=True, webhook=True),
        F("referenceNumber", "string", 50, webhook=True),
        F("serialNumber", "string", 100, webhook=True),
        F("isActive", "boolean", required=True, webhook=True),
        F("installDate", "datetime", webhook=True),
        F("warrantyExpirationDate", "datetime", webhook=True),
        _stamp("createDate"),
        _stamp("lastModifiedTime"),
    ),
    udfs=pl.CI_UDFS,
    # The API refuses CI deletes; devices are deactivated instead (§3).
    capabilities=Capabilities(delete=False, webhooks=True),
)

TICKET_NOTES = EntitySchema(
    name="TicketNotes",
    fields=(
        _id(),
        F(
            "ticketID",
            "integer",
            required=True,
            create_only=True,
            reference="Ticket",
            webhook=True,
        ),
        F("title", "string", 250, required=True, webhook=True),
        F("description", "string", 32000, required=True, webhook=True),
        F("noteType", "integer", required=True, picklist=pl.NOTE_TYPE, webhook=True),
        F("publish", "integer", required=True, picklist=pl.NOTE_PUBLISH, webhook=True),
        F("creatorResourceID", "integer", read_only=True, reference="Resource"),
        _stamp("createDateTime"),
        _stamp("lastActivityDate"),
    ),
    capabilities=Capabilities(webhooks=True),
)

RESOURCES = EntitySchema(
    name="Resources",
    fields=(
        _id(),
        F("userName", "string", 32, read_only=True),
        F("email", "string", 254, required=True),
        F("firstName", "string", 50, required=True),
        F("lastName", "string", 50, required=True),
        F("title", "string", 50),
        F("resourceType", "string", 15, read_only=True),
        F("licenseType", "integer", read_only=True, picklist=pl.RESOURCE_LICENSE),
        F("isActive", "boolean"),
    ),
    # Resources are managed in the UI: the API reads and updates them only.
    capabilities=Capabilities(create=False, delete=False),
)

# Contracts: no webhooks, no creation stamp; lastModifiedDateTime moves on every change (the
# watermark GDS verified live). The API creates and updates contracts but does not delete them.
CONTRACTS = EntitySchema(
    name="Contracts",
    fields=(
        _id(),
        F("companyID", "integer", required=True, reference="Company"),
        F("contactID", "integer", reference="Contact"),
        F("contractName", "string", 100, required=True),
        F("contractNumber", "string", 50),
        F("contractType", "integer", required=True, picklist=pl.CONTRACT_TYPE),
        F("contractCategory", "integer", picklist=pl.CONTRACT_CATEGORY),
        F("status", "integer", required=True, picklist=pl.CONTRACT_STATUS),
        F("startDate", "datetime", required=True),
        F("endDate", "datetime", required=True),
        F("isDefaultContract", "boolean"),
        F("description", "string", 2000),
        F("estimatedRevenue", "double"),
        F("setupFee", "double"),
        F("serviceLevelAgreementID", "integer"),
        F("timeReportingRequiresStartAndStopTimes", "integer", required=True),
        _stamp("lastModifiedDateTime"),
    ),
    capabilities=Capabilities(delete=False),
)

DELETED_TICKET_LOGS = EntitySchema(
    name="DeletedTicketLogs",
    fields=(
        _id(),
        F("ticketID", "integer", read_only=True),
        F("ticketNumber", "string", 50, read_only=True),
        F("ticketTitle", "string", 255, read_only=True),
        F("deletedByResourceID", "integer", read_only=True, reference="Resource"),
        _stamp("deletedDateTime"),
    ),
    capabilities=Capabilities(create=False, update=False, delete=False),
)

DELETED_TICKET_ACTIVITY_LOGS = EntitySchema(
    name="DeletedTicketActivityLogs",
    fields=(
        _id(),
        F("ticketID", "integer", read_only=True),
        F("ticketNumber", "string", 50, read_only=True),
        F("typeID", "integer", read_only=True),
        F("noteOrAttachmentTitle", "string", 250, read_only=True),
        _stamp("activityDateTime"),
        _stamp("startDateTime"),
        _stamp("endDateTime"),
        F("hoursWorked", "double", read_only=True),
        F("createdByResourceID", "integer", read_only=True, reference="Resource"),
        F("deletedByResourceID", "integer", read_only=True, reference="Resource"),
        _stamp("deletedDateTime"),
    ),
    capabilities=Capabilities(create=False, update=False, delete=False),
)

# typeID of a deleted ticket note in DeletedTicketActivityLogs: UNCERTAIN (§6); our choice.
DELETED_ACTIVITY_NOTE_TYPE = 2

DATA_SCHEMAS: tuple[EntitySchema, ...] = (
    TICKETS,
    COMPANIES,
    CONTACTS,
    CONFIGURATION_ITEMS,
    TICKET_NOTES,
    RESOURCES,
    CONTRACTS,
)
LOG_SCHEMAS: tuple[EntitySchema, ...] = (DELETED_TICKET_LOGS, DELETED_TICKET_ACTIVITY_LOGS)

__all__ = [
    "COMPANIES",
    "CONFIGURATION_ITEMS",
    "CONTACTS",
    "CONTRACTS",
    "DATA_SCHEMAS",
    "DELETED_ACTIVITY_NOTE_TYPE",
    "DELETED_TICKET_ACTIVITY_LOGS",
    "DELETED_TICKET_LOGS",
    "LOG_SCHEMAS",
    "RESOURCES",
    "TICKETS",
    "TICKET_NOTES",
]
