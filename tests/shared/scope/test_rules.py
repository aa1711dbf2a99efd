"""The sync scope model: unknown keys refused, a stored scope round-trips, rules admit rows."""

from __future__ import annotations

import json

import pytest

from shared.entities import COMPANIES, TICKETS
from shared.errors import ConfigError
from shared.scope.rules import CompanyScope, SyncScope, TicketScope


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"ticket": {}}, "ticket"),
        ({"tickets": {"include_queue": [1]}}, "tickets.include_queue"),
        ({"companies": {"company_types": ["x"]}}, "companies.company_types.0"),
        ({"entities": ["Tickets", "Invoices"]}, "unknown entity 'Invoices'"),
    ],
)
def test_invalid_scopes_are_refused_naming_the_key(data, named):
    with pytest.raises(ConfigError, match="invalid sync scope") as info:
        SyncScope.parse(data)
    assert named in str(info.value)


def test_an_unknown_entity_is_refused_listing_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        SyncScope.parse({"entities": ["Tikets"]})
    valid = str(info.value).split("choose from ", 1)[1]
    assert "Tickets" in valid
    assert "Contracts" in valid  # a sweep-only entity a scope may add


def test_the_summary_shows_ids_never_a_count_of_them() -> None:
    scope = SyncScope.parse(
        {
            "entities": ["Tickets", "Companies"],
            "tickets": {"include_queues": [8, 29683481]},
            "companies": {"company_ids": list(range(100, 112))},
        }
    )
    assert scope.summary() == (
        "entities Tickets,Companies; tickets include_queues=[8, 29683481]; "
        "companies company_ids=[100, 101, 102, 103, 104, ...] (12)"
    )
    assert SyncScope.parse({"tickets": {"include_queues": [2]}}).summary() == (
        "tickets include_queues=[2]"
    )
    assert SyncScope().summary() == "everything"


def test_a_scope_round_trips_through_its_stored_form():
    scope = SyncScope.parse(
        {
            "entities": ["tickets", "Companies"],
            "tickets": {"include_queues": [8, 5, 5], "exclude_statuses": [5]},
            "companies": {"company_types": [1], "company_ids": [30]},
        }
    )
    stored = scope.to_json()
    assert stored["tickets"] == {"include_queues": [5, 8], "exclude_statuses": [5]}
    assert SyncScope.parse(stored) == scope
    assert SyncScope.parse(json.dumps(stored)) == scope  # JSON text too
    assert [e.rest_name for e in scope.synced()] == ["Tickets", "Companies"]
    assert SyncScope().to_json() == {}


def test_ticket_rules_include_then_exclude():
    scope = TicketScope(include_queues=[5, 6], exclude_statuses=[5])
    assert scope.admits({"queueID": 5, "status": 1})
    assert scope.admits({"queueID": "6", "status": "8"})  # numeric strings as numbers
    assert not scope.admits({"queueID": 7, "status": 1})
    assert not scope.admits({"queueID": 5, "status": 5})
    assert not scope.admits({"queueID": None, "status": 1})
    assert TicketScope().admits({})


def test_company_types_and_ids_combine_with_or():
    scope = CompanyScope(company_types=[1], company_ids=[42])
    assert scope.admits({"id": 1, "companyType": 1})
    assert scope.admits({"id": 42, "companyType": 3})
    assert not scope.admits({"id": 7, "companyType": 3})
    assert CompanyScope().admits({"id": 7})


def test_default_scope_syncs_the_registry_defaults():
    scope = SyncScope()
    assert scope.syncs(TICKETS)
    assert scope.syncs(COMPANIES)
    assert not SyncScope(entities=["Tickets"]).syncs(COMPANIES)


@pytest.mark.parametrize(
    "queue",
    [
        "\u0665",  # Arabic-Indic 5: int() reads it as 5, Autotask never sends it
        "\u2075",  # superscript 5: isdigit() passes it, int() raises
        "--5",
        "5_0",
        "+5",
        "5\u00a0",  # a Unicode no-break space is not ASCII whitespace
        "9" * 5000,  # past int()'s digit limit (ValueError) and past 64 bits
        2**63,
    ],
)
def test_only_ascii_integers_within_64_bits_match_a_picklist_value(queue: object) -> None:
    scope = TicketScope(include_queues=[5, 50])
    assert not scope.admits({"queueID": queue})  # matches nothing, and never raises


def test_numbers_in_any_json_form_match_include_and_exclude() -> None:
    scope = TicketScope(include_queues=[5, -3], exclude_statuses=[5])
    assert scope.admits({"queueID": " 5\t"})  # ASCII whitespace around is fine
    assert scope.admits({"queueID": "-3"})  # picklist values may be negative
    assert scope.admits({"queueID": 5.0, "status": 1})
    assert not scope.admits({"queueID": 5, "status": 5.0})  # an integral float is excluded too
    assert not scope.admits({"queueID": 5, "status": "5"})
    assert CompanyScope(company_ids=[0]).admits({"id": "0"})  # company 0 is real
