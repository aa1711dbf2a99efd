"""The boundary a scope draws per entity, and when an edit only narrows it (no row can enter, so
the mirror itself says what left and no API call is needed)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.entities import COMPANIES, CONTACTS, RESOURCES, TICKET_NOTES, TICKETS
from shared.scope.boundary import Boundary, boundary
from shared.scope.rules import CompanyScope, SyncScope, TicketScope

VALUES = st.lists(st.integers(min_value=0, max_value=4), max_size=3)
TICKET_SCOPES = st.builds(
    TicketScope,
    include_queues=VALUES,
    exclude_queues=VALUES,
    include_categories=VALUES,
    exclude_categories=VALUES,
    include_statuses=VALUES,
    exclude_statuses=VALUES,
)
COMPANY_SCOPES = st.builds(CompanyScope, company_types=VALUES, company_ids=VALUES)
VALUE = st.one_of(st.none(), st.integers(min_value=0, max_value=5))
TICKETS_ROWS = st.fixed_dictionaries({"queueID": VALUE, "ticketCategory": VALUE, "status": VALUE})
COMPANY_ROWS = st.fixed_dictionaries(
    {"id": st.integers(min_value=0, max_value=5), "companyType": VALUE}
)


@given(TICKET_SCOPES, TICKET_SCOPES, st.lists(TICKETS_ROWS, max_size=30))
def test_a_ticket_filter_within_another_admits_no_row_the_other_keeps_out(
    narrower: TicketScope, wider: TicketScope, tickets: list[dict[str, int | None]]
) -> None:
    if narrower.within(wider):
        for ticket in tickets:
            assert not narrower.admits(ticket) or wider.admits(ticket), ticket


@given(COMPANY_SCOPES, COMPANY_SCOPES, st.lists(COMPANY_ROWS, max_size=30))
def test_a_company_filter_within_another_admits_no_row_the_other_keeps_out(
    narrower: CompanyScope, wider: CompanyScope, companies: list[dict[str, int | None]]
) -> None:
    if narrower.within(wider):
        for company in companies:
            assert not narrower.admits(company) or wider.admits(company), company


def test_removing_what_was_included_or_excluding_more_only_narrows() -> None:
    before = TicketScope(include_queues=[1, 2], exclude_statuses=[5])
    assert TicketScope(include_queues=[1], exclude_statuses=[5]).within(before)
    assert TicketScope(include_queues=[1, 2], exclude_statuses=[5, 6]).within(before)
    assert not TicketScope(include_queues=[1, 2, 3], exclude_statuses=[5]).within(before)
    assert not TicketScope(include_queues=[1, 2]).within(before)  # status 5 may enter
    assert not TicketScope().within(before)
    assert TicketScope(include_queues=[7]).within(TicketScope())
    assert CompanyScope(company_ids=[0]).within(CompanyScope(company_ids=[0, 3]))
    assert not CompanyScope(company_ids=[0, 3]).within(CompanyScope(company_ids=[3]))
    assert not CompanyScope().within(CompanyScope(company_ids=[3]))


def test_children_take_their_parents_boundary_and_an_unsynced_entity_admits_nothing() -> None:
    scope = SyncScope.parse(
        {"entities": ["Tickets", "TicketNotes", "Companies", "Contacts", "Resources"],
         "companies": {"company_ids": [0, 4]}}
    )  # fmt: skip
    assert boundary(CONTACTS, scope) == boundary(COMPANIES, scope)
    assert boundary(CONTACTS, scope).restricted
    assert not boundary(TICKET_NOTES, scope).restricted
    assert boundary(RESOURCES, scope) == Boundary(synced=True, filter=None)
    narrowed = SyncScope.parse({"entities": ["Tickets"], "companies": {"company_ids": [0, 4]}})
    assert boundary(CONTACTS, narrowed) == Boundary(synced=False)
    assert boundary(CONTACTS, narrowed).narrows(boundary(CONTACTS, scope))
    assert not boundary(CONTACTS, scope).narrows(boundary(CONTACTS, narrowed))


def test_same_rows_ignores_what_does_not_decide_the_entity() -> None:
    queues = SyncScope.parse({"tickets": {"include_queues": [1]}})
    other_queues = SyncScope.parse({"tickets": {"include_queues": [2]}})
    assert boundary(COMPANIES, queues).same_rows(boundary(COMPANIES, other_queues))
    assert not boundary(TICKETS, queues).same_rows(boundary(TICKETS, other_queues))
    assert not boundary(TICKET_NOTES, queues).same_rows(boundary(TICKET_NOTES, other_queues))
    # An unrestricted filter and none mirror the same rows.
    assert boundary(TICKETS, SyncScope()).same_rows(Boundary(synced=True, filter=None))
