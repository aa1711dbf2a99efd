"""``autotask-sync companies list`` as an operator runs it: a real process, connections stored in
real PostgreSQL (or configured by the environment), the simulator over real HTTP. What it prints
is compared with the simulator's own companies and picklist."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr

from shared.connections import store as rows
from shared.db import connect
from shared.secrets import SecretBox
from tests.helpers.clients import truth
from tests.helpers.processes import CliResult, run_cli
from tests.helpers.tenants import new_connection, small_tenant, store_connection, tenants
from tools.autotask_sim import Simulator
from tools.autotask_sim.catalog.picklists import COMPANY_TYPE

pytestmark = pytest.mark.integration

KEY = SecretBox.generate_key()
TYPE_LABELS = {p.value: p.label for p in COMPANY_TYPE}


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with tenants(small_tenant(23, companies=40)) as (simulator,):
        yield simulator


@pytest_asyncio.fixture
async def acme(migrated_database: str, sim: Simulator) -> str:
    """A database holding connection ``acme`` for ``sim``."""
    await store_connection(migrated_database, SecretBox.from_setting(KEY), "acme", sim)
    return migrated_database


async def companies(dsn: str, *args: str, **env: str) -> CliResult:
    return await run_cli(
        "companies", "list", *args,
        env={"DATABASE_URL": dsn, "AUTOTASK_SYNC_SECRET_KEYS": KEY, **env},
    )  # fmt: skip


def expected(sim: Simulator, keep: Any = lambda company: True) -> list[dict[str, Any]]:
    """The simulator's companies (those ``keep`` keeps) as the command's JSON, sorted by name."""
    rows = [
        {
            "id": c["id"],
            "name": c["companyName"],
            "type": c["companyType"],
            "active": c["isActive"],
            "type_label": TYPE_LABELS[c["companyType"]],
        }
        for c in truth(sim, "Companies")
        if keep(c)
    ]
    return sorted(rows, key=lambda row: (row["name"].casefold(), row["id"]))


def table(out: str) -> list[tuple[str, ...]]:
    """The rows of the printed table, cut at the header's column starts (names have spaces)."""
    header, *lines = out.rstrip("\n").splitlines()
    starts = [header.index(title) for title in ("ID", "NAME", "TYPE", "ACTIVE")]
    ends = [*starts[1:], None]
    return [
        tuple(line[start:end].strip() for start, end in zip(starts, ends, strict=True))
        for line in lines
    ]


async def test_lists_every_company_with_its_type_and_whether_it_is_active(acme, sim):
    result = await companies(acme, "--connection", "acme")
    assert result.code == 0, result.output
    assert result.out.splitlines()[0].split() == ["ID", "NAME", "TYPE", "ACTIVE"]
    assert table(result.out) == [
        (
            str(c["id"]),
            c["name"],
            f"{c['type_label']} ({c['type']})",
            "yes" if c["active"] else "no",
        )
        for c in expected(sim)
    ]
    assert len(table(result.out)) == 40
    assert sim.secret not in result.output


async def test_json_is_an_array_of_the_same_companies(acme, sim):
    result = await companies(acme, "--connection", "acme", "--json")
    assert result.code == 0, result.output
    listed = json.loads(result.out)
    assert listed == expected(sim)
    assert {c["active"] for c in listed} == {True, False}  # both states are really shown


async def test_search_and_type_narrow_the_list_in_the_tenant(acme, sim):
    word = truth(sim, "Companies")[5]["companyName"].split()[0].upper()  # any case matches

    def named(c: dict[str, Any]) -> bool:
        return word.casefold() in c["companyName"].casefold()

    searched = json.loads((await companies(acme, "--search", word, "--json")).out)
    assert searched == expected(sim, named)
    assert 0 < len(searched) < 40

    customers = expected(sim, lambda c: c["companyType"] == 1)
    assert 0 < len(customers) < 40
    for given in ("Customer", "customer", "1"):
        by_type = await companies(acme, "--connection", "acme", "--type", given, "--json")
        assert by_type.code == 0, by_type.output
        assert json.loads(by_type.out) == customers

    both = await companies(acme, "--search", word, "--type", "Customer", "--json")
    assert json.loads(both.out) == expected(sim, lambda c: named(c) and c["companyType"] == 1)

    nothing = await companies(acme, "--search", "no company is called this")
    assert nothing.code == 0, nothing.output
    assert nothing.out.strip() == (
        "no companies whose name contains 'no company is called this' in the tenant of 'acme'"
    )


async def test_a_wrong_type_is_refused_naming_the_choices(acme, sim):
    result = await companies(acme, "--type", "Partnr")
    assert result.code == 2
    assert "--type: 'Partnr' is not one of the company types" in result.err
    assert "1 (Customer), 2 (Lead)" in result.err
    assert result.out == ""


async def test_an_unknown_connection_names_the_known_ones_and_a_disabled_one_lists(acme, sim):
    await store_connection(acme, SecretBox.from_setting(KEY), "old", sim, enabled=False)
    unknown = await companies(acme, "--connection", "nobody")
    assert unknown.code == 2
    assert "no connection 'nobody' (known: acme, old (disabled))" in unknown.err

    unnamed = await companies(acme)
    assert unnamed.code == 2
    assert "name the connection with --connection (known: acme, old (disabled))" in unnamed.err

    disabled = await companies(acme, "--connection", "old", "--json")
    assert disabled.code == 0, disabled.output
    assert json.loads(disabled.out) == expected(sim)


async def test_the_environment_connection_is_the_default(migrated_database, sim):
    result = await companies(
        migrated_database,
        "--json",
        AUTOTASK_SYNC_AUTOTASK_USERNAME=sim.username,
        AUTOTASK_SYNC_AUTOTASK_SECRET=sim.secret,
        AUTOTASK_SYNC_AUTOTASK_INTEGRATION_CODE=sim.integration_code,
        AUTOTASK_SYNC_AUTOTASK_ZONE_LOOKUP_URL=sim.zone_lookup_url,
    )
    assert result.code == 0, result.output
    assert json.loads(result.out) == expected(sim)


async def test_an_autotask_error_is_printed_as_its_cause_and_fix(migrated_database, sim):
    wrong = dataclasses.replace(new_connection("acme", sim), secret=SecretStr("not-the-secret-0"))
    db = await connect(migrated_database)
    try:
        await rows.insert(db, wrong, SecretBox.from_setting(KEY))
    finally:
        await db.close()
    result = await companies(migrated_database, "--connection", "acme")
    assert result.code == 1
    assert result.out == ""
    assert "FAILED at reading the company types of 'acme'" in result.err
    assert "cause: " in result.err
    assert "fix:   " in result.err
    assert "not-the-secret-0" not in result.output
