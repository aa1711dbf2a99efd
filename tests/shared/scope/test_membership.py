"""The scope judge: each registry entry judged by the rule it names (its own fields, its parent's
row in the mirror, or none), and an entry it cannot classify refused instead of let through."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import pytest

from shared.db import Pool
from shared.entities import (
    COMPANIES,
    CONTACTS,
    CONTRACTS,
    REGISTRY,
    RESOURCES,
    TICKET_NOTES,
    TICKETS,
    EntitySpec,
    FollowsParent,
    OwnFields,
)
from shared.errors import ConfigError
from shared.scope import membership
from shared.scope.membership import deciding_filter, judge
from shared.scope.rules import SyncScope

RESTRICTED = SyncScope.parse(
    {"tickets": {"include_queues": [8]}, "companies": {"company_types": [1]}}
)
NO_POOL = cast(Pool, None)  # the judge refuses before it reads anything


def test_each_entry_is_decided_by_its_section_or_its_parents():
    scope = RESTRICTED
    assert deciding_filter(TICKETS, scope) is scope.tickets
    assert deciding_filter(TICKET_NOTES, scope) is scope.tickets
    assert deciding_filter(COMPANIES, scope) is scope.companies
    for child in (CONTACTS, CONTRACTS):
        assert deciding_filter(child, scope) is scope.companies
    assert deciding_filter(RESOURCES, scope) is None


@pytest.mark.parametrize("spec", REGISTRY, ids=[s.rest_name for s in REGISTRY])
def test_every_registry_entry_can_be_classified(spec: EntitySpec):
    deciding_filter(spec, SyncScope())


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        (replace(TICKET_NOTES, scope=FollowsParent("NoSuchEntities", "noSuchEntityID")),
         "TicketNotes.*'NoSuchEntities' is not a registry entity"),
        (replace(TICKETS, rest_name="Invoices", scope=OwnFields("invoices")),
         "Invoices.*no filter section 'invoices'"),
        (replace(CONTACTS, scope=cast(Any, None)),
         "Contacts.*not OwnFields, FollowsParent or Unscoped"),
    ],
)  # fmt: skip
async def test_an_entry_it_cannot_classify_is_refused_naming_it(spec: EntitySpec, named: str):
    with pytest.raises(ConfigError, match=named):
        deciding_filter(spec, RESTRICTED)
    with pytest.raises(ConfigError, match=named):
        await judge(NO_POOL, "acme", spec, {1: {"id": 1}}, RESTRICTED)


def test_a_cycle_of_scope_parents_is_refused(monkeypatch: pytest.MonkeyPatch):
    first = replace(CONTACTS, rest_name="First", scope=FollowsParent("Second", "secondID"))
    second = replace(CONTACTS, rest_name="Second", scope=FollowsParent("First", "firstID"))
    specs = {"first": first, "second": second}
    monkeypatch.setattr(membership, "find_rest_name", lambda name: specs.get(name.lower()))
    with pytest.raises(ConfigError, match=r"First.*cycle \(First -> Second -> First\)"):
        deciding_filter(first, SyncScope())


# --- against the mirror ---------------------------------------------------------------------
async def _mirror(pool: Pool, spec: EntitySpec, rows: dict[int, str]) -> None:
    """Rows of ``spec`` in the mirror for connection acme: ``live``, ``deleted`` or ``out``."""
    async with pool.acquire() as db:
        for entity_id, state in rows.items():
            await db.execute(
                f"INSERT INTO {spec.mirror_table} (connection, id, entity, fetched_at, "  # noqa: S608 - registry name
                "content_hash, origin, deleted_at, out_of_scope_at) "
                "VALUES ('acme', $1, $2, now(), '\\x00', 'sweep', "
                "CASE WHEN $3 THEN now() END, CASE WHEN $4 THEN now() END)",
                entity_id,
                {"id": entity_id},
                state == "deleted",
                state == "out",
            )


@pytest.mark.integration
async def test_children_follow_their_parents_row_when_the_parent_is_restricted(pool: Pool):
    await _mirror(pool, COMPANIES, {1: "live", 2: "deleted", 3: "out"})
    contacts = {10 + c: {"id": 10 + c, "companyID": c} for c in (1, 2, 3, 4)}
    contacts[20] = {"id": 20, "companyID": "1"}  # numeric strings count
    contacts[21] = {"id": 21}  # no company at all
    verdict = await judge(pool, "acme", CONTACTS, contacts, RESTRICTED)
    assert verdict == {11: True, 12: False, 13: False, 14: False, 20: True, 21: False}
    assert await judge(pool, "other", CONTACTS, contacts, RESTRICTED) == dict.fromkeys(
        contacts, False
    )
    # Unrestricted companies: every contact is in, mirrored company or not.
    unrestricted = SyncScope.parse({"tickets": {"include_queues": [8]}})
    assert await judge(pool, "acme", CONTACTS, contacts, unrestricted) == dict.fromkeys(
        contacts, True
    )


@pytest.mark.integration
async def test_company_zero_is_a_real_parent(pool: Pool):
    # Companies/0 is the tenant's own company: its contacts are not "without a company".
    await _mirror(pool, COMPANIES, {0: "live", 5: "live"})
    contacts = {
        30: {"id": 30, "companyID": 0},
        31: {"id": 31, "companyID": "0"},
        32: {"id": 32, "companyID": " 5 "},
        33: {"id": 33, "companyID": "\u0665"},  # an Arabic-Indic 5: not an id
        34: {"id": 34, "companyID": "\u00b2"},  # a superscript 2: not an id (and no crash)
        35: {"id": 35, "companyID": 2**63},  # beyond 64 bits: not an id
    }
    verdict = await judge(pool, "acme", CONTACTS, contacts, RESTRICTED)
    assert verdict == {30: True, 31: True, 32: True, 33: False, 34: False, 35: False}


@pytest.mark.integration
async def test_own_fields_and_unscoped_entities_need_no_parent(pool: Pool):
    tickets = {1: {"id": 1, "queueID": 8}, 2: {"id": 2, "queueID": 9}}
    assert await judge(pool, "acme", TICKETS, tickets, RESTRICTED) == {1: True, 2: False}
    companies = {1: {"id": 1, "companyType": 1}, 2: {"id": 2, "companyType": 3}}
    assert await judge(pool, "acme", COMPANIES, companies, RESTRICTED) == {1: True, 2: False}
    resources = {5: {"id": 5}}
    assert await judge(pool, "acme", RESOURCES, resources, RESTRICTED) == {5: True}
