"""Picklists and UDF definitions of the simulated tenant.

Values mirror what a stock Autotask tenant ships with (ids as integers, labels as shown in the UI);
queue ids are the odd large numbers real tenants have, so clients never assume small ids.
"""

from __future__ import annotations

from tools.autotask_sim.store.schema import PicklistValue, UdfSpec

P = PicklistValue

TICKET_STATUS = (
    P(1, "New", is_default=True),
    P(5, "Complete"),
    P(7, "Waiting Customer"),
    P(8, "In Progress"),
    P(9, "Waiting Materials"),
    P(10, "Dispatched"),
    P(12, "Waiting Vendor"),
    P(13, "On Hold", is_system=False),
)
TICKET_STATUS_COMPLETE = 5

TICKET_PRIORITY = (
    P(1, "High"),
    P(2, "Medium", is_default=True),
    P(3, "Low"),
    P(4, "Critical"),
)

TICKET_QUEUE = (
    P(5, "Client Portal"),
    P(6, "Post Sale"),
    P(8, "Level I Support", is_default=True),
    P(29682969, "Level II Support", is_system=False),
    P(29683354, "Monitoring Alert", is_system=False),
    P(29683490, "Recurring Tickets", is_system=False),
)

TICKET_TYPE = (
    P(1, "Service Request", is_default=True),
    P(2, "Incident"),
    P(3, "Problem"),
    P(4, "Change Request"),
    P(5, "Alert"),
)

TICKET_SOURCE = (
    P(-2, "Insourced"),
    P(-1, "Client Portal"),
    P(1, "Other"),
    P(2, "Phone", is_default=True),
    P(4, "Email"),
    P(8, "Monitoring Alert"),
)

ISSUE_TYPE = (
    P(4, "Hardware"),
    P(6, "Software"),
    P(9, "Network"),
    P(12, "Account / Access"),
)

SUB_ISSUE_TYPE = (
    P(101, "Laptop", parent_value=4),
    P(102, "Printer", parent_value=4),
    P(103, "Server", parent_value=4),
    P(201, "Office 365", parent_value=6),
    P(202, "Line of business app", parent_value=6),
    P(301, "VPN", parent_value=9),
    P(302, "Wi-Fi", parent_value=9),
    P(401, "Password reset", parent_value=12),
    P(402, "New user", parent_value=12),
)

COMPANY_TYPE = (
    P(1, "Customer", is_default=True),
    P(2, "Lead"),
    P(3, "Prospect"),
    P(4, "Dead"),
    P(6, "Cancellation"),
    P(7, "Vendor"),
    P(8, "Partner"),
)

CI_TYPE = (
    P(1, "Workstation", is_default=True),
    P(2, "Server"),
    P(3, "Network Device"),
    P(4, "Printer"),
    P(5, "Mobile Device"),
)

NOTE_TYPE = (
    P(1, "Task Summary"),
    P(2, "Task Detail", is_default=True),
    P(3, "Task Notes"),
    P(13, "Resolution"),
)

NOTE_PUBLISH = (
    P(1, "All Autotask Users", is_default=True),
    P(2, "Internal Project Team"),
    P(4, "Internal & Co-managed"),
)

RESOURCE_LICENSE = (
    P(1, "Administrator"),
    P(2, "Professional", is_default=True),
    P(7, "API User (API-only)"),
)

CONTRACT_TYPE = (
    P(1, "Time & Materials", is_default=True),
    P(3, "Fixed Price"),
    P(4, "Block Hours"),
    P(6, "Retainer"),
    P(7, "Recurring Service"),
    P(8, "Per Ticket"),
)

CONTRACT_STATUS = (
    P(0, "Inactive"),
    P(1, "Active", is_default=True),
)

CONTRACT_CATEGORY = (
    P(1, "Standard", is_default=True),
    P(2, "Managed Services"),
    P(3, "Project"),
)

TICKET_UDFS = (
    UdfSpec("External Reference", "External Reference", "string", length=100),
    UdfSpec(
        "Customer Impact",
        "Customer Impact",
        "string",
        length=20,
    ),
)
COMPANY_UDFS = (
    UdfSpec("Account Tier", "Account Tier", "string", length=20),
    UdfSpec("Billing Code", "Billing Code", "string", length=30),
)
CONTACT_UDFS = (UdfSpec("Preferred Language", "Preferred Language", "string", length=20),)
CI_UDFS = (
    UdfSpec("Warranty Vendor", "Warranty Vendor", "string", length=50),
    UdfSpec("RAM GB", "RAM GB", "double"),
)

__all__ = [
    "CI_TYPE",
    "CI_UDFS",
    "COMPANY_TYPE",
    "COMPANY_UDFS",
    "CONTACT_UDFS",
    "CONTRACT_CATEGORY",
    "CONTRACT_STATUS",
    "CONTRACT_TYPE",
    "ISSUE_TYPE",
    "NOTE_PUBLISH",
    "NOTE_TYPE",
    "RESOURCE_LICENSE",
    "SUB_ISSUE_TYPE",
    "TICKET_PRIORITY",
    "TICKET_QUEUE",
    "TICKET_SOURCE",
    "TICKET_STATUS",
    "TICKET_STATUS_COMPLETE",
    "TICKET_TYPE",
    "TICKET_UDFS",
]
