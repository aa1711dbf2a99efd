"""The generated tenant: seeded, realistic shapes and internally consistent."""

from __future__ import annotations

import re
from datetime import datetime

from tools.autotask_sim import ApiBehaviour, SimulatorConfig
from tools.autotask_sim.clock import SimClock
from tools.autotask_sim.datagen import TenantData, generate_tenant

ANCHOR = datetime(2025, 6, 1, 12, 0, 0)


def _tenant(**overrides: object) -> TenantData:
    config = SimulatorConfig(anchor_time=ANCHOR, **overrides)
    return generate_tenant(config, SimClock(config.api.timestamp_z), ANCHOR)


def test_same_seed_same_tenant_different_seed_different() -> None:
    assert _tenant(seed=3).records == _tenant(seed=3).records
    assert _tenant(seed=3).records["Tickets"] != _tenant(seed=4).records["Tickets"]


def test_sizes_and_api_user() -> None:
    data = _tenant(companies=7, contacts=9, configuration_items=5, tickets=30, ticket_notes=40)
    sizes = {k: len(v) for k, v in data.records.items()}
    assert sizes == {
        "Resources": 21,  # 20 + the built-in system resource 4
        "Companies": 7,
        "Contacts": 9,
        "ConfigurationItems": 5,
        "Tickets": 30,
        "TicketNotes": 40,
    }
    assert data.api_user is not None
    [api_resource] = [r for r in data.records["Resources"] if r["id"] == data.api_user.resource_id]
    assert api_resource["userName"] == data.api_user.username
    assert api_resource["licenseType"] == 7
    assert len(data.api_user.integration_code) == 27
    assert data.records["Companies"][0]["id"] == 0


def test_records_are_consistent() -> None:
    data = _tenant(tickets=400, ticket_notes=600)
    tickets = data.records["Tickets"]
    numbers = [t["ticketNumber"] for t in tickets]
    assert len(set(numbers)) == len(numbers)
    assert all(re.fullmatch(r"T\d{8}\.\d{4}", str(n)) for n in numbers)
    creates = [str(t["createDate"])[:23] for t in tickets]
    assert creates == sorted(creates)  # ids grow with creation time
    company_ids = {c["id"] for c in data.records["Companies"]}
    assert all(t["companyID"] in company_ids for t in tickets)
    by_id = {t["id"]: t for t in tickets}
    for note in data.records["TicketNotes"]:
        ticket = by_id[note["ticketID"]]
        note_time = str(note["createDateTime"])[:23]
        assert note_time >= str(ticket["createDate"])[:23]
        assert str(ticket["lastActivityDate"])[:23] >= note_time
    for ticket in tickets:
        assert (
            str(ticket["lastActivityDate"])[:23]
            >= str(ticket["lastTrackedModificationDateTime"])[:23]
        )
        assert str(ticket["lastTrackedModificationDateTime"])[:23] <= "2025-06-01T12:00:00.000"


def test_field_types() -> None:
    data = _tenant()
    contact = data.records["Contacts"][0]
    assert contact["isActive"] in (0, 1)
    assert not isinstance(contact["isActive"], bool)
    assert isinstance(data.records["Companies"][1]["isActive"], bool)
    assert isinstance(data.records["ConfigurationItems"][0]["isActive"], bool)
    udfs = data.records["Tickets"][0]["userDefinedFields"]
    assert [u["name"] for u in udfs] == ["External Reference", "Customer Impact"]


def test_timestamp_z_policies() -> None:
    always = _tenant(api=ApiBehaviour(timestamp_z="always")).records["Tickets"][0]
    never = _tenant(api=ApiBehaviour(timestamp_z="never")).records["Tickets"][0]
    fields = ("createDate", "lastActivityDate", "lastTrackedModificationDateTime", "dueDateTime")
    assert all(str(always[f]).endswith("Z") for f in fields)
    assert not any(str(never[f]).endswith("Z") for f in fields)
    assert [str(always[f])[:23] for f in fields] == [str(never[f])[:23] for f in fields]
