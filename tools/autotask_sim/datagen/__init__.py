"""Seeded generation of a realistic tenant: resources, companies, contacts, CIs, tickets, notes,
and contracts when asked for.

Same seed and sizes (and ``anchor_time``) → the same tenant, record for record. Records use the
REST field names and types of the catalog. Creation times are increasing with ids, as in a real
database, and ids have occasional gaps so clients never assume contiguous ids. Generation avoids
per-field overhead (plain loops, precomputed pools and format choices) so a 100,000-ticket tenant
builds in a few seconds.
"""

from __future__ import annotations

from datetime import datetime

from tools.autotask_sim.clock import SimClock
from tools.autotask_sim.config import SimulatorConfig
from tools.autotask_sim.datagen import accounts, service
from tools.autotask_sim.datagen.base import (
    FIRST_RESOURCE_ID,
    OWN_COMPANY_ID,
    SYSTEM_RESOURCE_ID,
    ApiCredentials,
    Gen,
    TenantData,
    credentials_for,
)
from tools.autotask_sim.datagen.service import ticket_number


def generate_tenant(config: SimulatorConfig, clock: SimClock, anchor: datetime) -> TenantData:
    """Build the whole tenant described by ``config``."""
    gen = Gen(config, clock, anchor)
    data = TenantData()
    resources = accounts.resources(gen)
    data.records["Resources"] = resources
    resource_ids = [r["id"] for r in resources if r["id"] != SYSTEM_RESOURCE_ID][:-1]
    api_resource = resources[-1]["id"]
    assert isinstance(api_resource, int)
    data.api_user = credentials_for(config, api_resource)
    resources[-1]["userName"] = data.api_user.username
    resources[-1]["email"] = data.api_user.username
    companies = accounts.companies(gen, resource_ids)
    data.records["Companies"] = companies
    company_ids = [c["id"] for c in companies]
    contacts = accounts.contacts(gen, company_ids)
    data.records["Contacts"] = contacts
    data.records["ConfigurationItems"] = service.configuration_items(gen, company_ids)
    tickets, created_ms = service.tickets(gen, company_ids, contacts, resource_ids)
    data.records["Tickets"] = tickets
    data.records["TicketNotes"] = service.notes(gen, tickets, created_ms, resource_ids)
    if config.contracts:
        data.records["Contracts"] = accounts.contracts(
            gen, company_ids, [c["id"] for c in contacts]
        )
    return data


__all__ = [
    "FIRST_RESOURCE_ID",
    "OWN_COMPANY_ID",
    "SYSTEM_RESOURCE_ID",
    "ApiCredentials",
    "TenantData",
    "credentials_for",
    "generate_tenant",
    "ticket_number",
]
