"""``autotask-sync connections`` as an operator runs it: real processes, real PostgreSQL, the
simulator over real HTTP. No secret (or its ciphertext) ever reaches the output."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from shared.autotask import AutotaskClient
from shared.db import DbSession, connect
from shared.entities import REGISTRY
from shared.messages.topics import Topics
from shared.secrets import SecretBox
from tests.helpers.clients import connection_for, truth
from tests.helpers.connection_data import rows_by_table, seed_state_rows
from tests.helpers.pipeline import create_topics, read_topic
from tests.helpers.processes import CliResult, run_cli
from tests.helpers.tenants import small_tenant, store_connection, tenants
from tools.autotask_sim import Simulator

pytestmark = pytest.mark.integration

KEY = SecretBox.generate_key()


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with tenants(small_tenant(11, companies=9)) as (simulator,):
        yield simulator


class Operator:
    """Runs commands against one database with the given keys, and remembers every output."""

    def __init__(self, dsn: str, sim: Simulator, keys: str = KEY) -> None:
        self.dsn = dsn
        self.sim = sim
        self.keys = keys
        self.outputs: list[str] = []

    async def __call__(self, *args: str, stdin: str | None = None, **env: str) -> CliResult:
        result = await run_cli(
            *args,
            env={"DATABASE_URL": self.dsn, "AUTOTASK_SYNC_SECRET_KEYS": self.keys, **env},
            stdin=stdin,
        )
        self.outputs.append(result.output)
        return result

    async def add(self, name: str, *extra: str, secret: str | None = None) -> CliResult:
        secrets = f"{secret or self.sim.secret}\n{self.sim.integration_code}\n"
        return await self(
            "connections", "add", name, "--username", self.sim.username,
            "--zone-lookup-url", self.sim.zone_lookup_url, "--stdin", *extra, stdin=secrets,
        )  # fmt: skip

    async def stored_names(self) -> list[str]:
        db = await connect(self.dsn)
        try:
            return [r["name"] for r in await db.fetch("SELECT name FROM connections ORDER BY 1")]
        finally:
            await db.close()

    async def ciphertexts(self) -> list[bytes]:
        db = await connect(self.dsn)
        try:
            rows = await db.fetch(
                "SELECT secret_encrypted, integration_code_encrypted FROM connections"
            )
        finally:
            await db.close()
        return [bytes(value) for row in rows for value in row.values()]

    async def assert_nothing_leaked(self) -> None:
        everything = "\n".join(self.outputs)
        assert self.sim.secret not in everything
        assert self.sim.integration_code not in everything
        for token in await self.ciphertexts():
            assert token.decode() not in everything


async def test_add_list_show_test_and_no_secret_in_any_output(migrated_database, sim):
    op = Operator(migrated_database, sim)
    added = await op.add("acme")
    assert added.code == 0, added.output
    assert "added connection 'acme' (enabled" in added.out

    listed = await op("connections", "list")
    assert listed.code == 0, listed.output
    [header, line] = listed.out.strip().splitlines()
    assert header.split()[:3] == ["NAME", "SOURCE", "ENABLED"]
    assert line.split()[:4] == ["acme", "database", "yes", sim.username]
    assert " set " in line

    shown = json.loads((await op("connections", "show", "acme", "--json")).out)
    assert shown["secret_set"] is True
    assert shown["integration_code_set"] is True
    assert shown["live_webhook_registrations"] == 0

    tested = await op("connections", "test", "acme", "--json")
    assert tested.code == 0, tested.output
    report = json.loads(tested.out)
    assert report["counts"]["Companies"] == 9
    assert report["scope"] == {"valid": True, "problems": []}

    via_test_connection = await op("test-connection", "--connection", "acme")
    assert via_test_connection.code == 0, via_test_connection.output
    assert "OK: the connection works" in via_test_connection.out
    await op.assert_nothing_leaked()


@pytest.mark.parametrize(
    ("name", "problem"),
    [("Acme", "is not a lower-case slug"), ("acme!", "is not a lower-case slug")],
)
async def test_a_malformed_name_is_one_line_and_stores_nothing(
    migrated_database, sim, name, problem
):
    op = Operator(migrated_database, sim)
    result = await op.add(name)
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert problem in result.err
    assert await op.stored_names() == []


async def test_duplicates_bad_credentials_and_unreachable_zones_are_refused(migrated_database, sim):
    op = Operator(migrated_database, sim)
    assert (await op.add("acme")).code == 0

    duplicate = await op.add("acme")
    assert duplicate.code == 2
    assert "connection 'acme' already exists" in duplicate.err

    bad = await op.add("wrong", secret="not-the-secret-0000")
    assert bad.code == 1
    assert "FAILED at authentication" in bad.err
    assert "fix:   give them again to `autotask-sync connections add` (--username;" in bad.err
    assert "not stored: the connection test failed; pass --force to store it anyway" in bad.err

    unreachable = await op(
        "connections", "add", "far", "--username", sim.username,
        "--zone-lookup-url", "http://127.0.0.1:1/atservicesrest", "--stdin",
        stdin=f"{sim.secret}\n{sim.integration_code}\n",
    )  # fmt: skip
    assert unreachable.code == 1
    assert "FAILED at reaching the zone lookup host 127.0.0.1" in unreachable.err
    assert "fix:   check that this machine reaches 127.0.0.1" in unreachable.err
    assert "(--zone-lookup-url URL), or give the tenant's REST URL" in unreachable.err
    assert await op.stored_names() == ["acme"]

    forced = await op.add("wrong", "--force", secret="not-the-secret-0000")
    assert forced.code == 0
    assert "--force: stored although the connection test failed" in forced.err
    assert await op.stored_names() == ["acme", "wrong"]
    await op.assert_nothing_leaked()


async def test_a_secret_on_the_command_line_is_refused_with_the_reason(migrated_database, sim):
    op = Operator(migrated_database, sim)
    result = await op(
        "connections", "add", "acme", "--username", sim.username, "--secret", sim.secret
    )
    assert result.code == 2
    assert "secrets are never accepted as arguments" in result.err
    assert await op.stored_names() == []


async def test_a_scope_with_an_unknown_queue_is_refused_naming_the_valid_queues(
    migrated_database, sim
):
    op = Operator(migrated_database, sim)
    scope = json.dumps({"tickets": {"include_queues": [8, 999]}})
    result = await op.add("acme", "--scope", scope)
    assert result.code == 1
    assert "tickets.include_queues: 999 is not one of the queues" in result.err
    assert "8 (Level I Support)" in result.err
    assert await op.stored_names() == []

    valid = await op.add("acme", "--scope", json.dumps({"tickets": {"include_queues": [8]}}))
    assert valid.code == 0, valid.output
    shown = json.loads((await op("connections", "show", "acme", "--json")).out)
    assert shown["scope"] == {"tickets": {"include_queues": [8]}}


async def test_keys_rotate_with_rekey_and_the_old_key_can_then_go(migrated_database, sim):
    old, new = KEY, SecretBox.generate_key()
    op = Operator(migrated_database, sim, keys=old)
    assert (await op.add("acme")).code == 0
    before = await op.ciphertexts()

    op.keys = f"{new},{old}"
    assert (await op("connections", "test", "acme")).code == 0  # both keys read it
    rekeyed = await op("connections", "rekey")
    assert rekeyed.code == 0, rekeyed.output
    assert "1 connection(s)" in rekeyed.out
    assert await op.ciphertexts() != before

    op.keys = new
    assert (await op("connections", "test", "acme")).code == 0

    op.keys = SecretBox.generate_key()  # a key that never encrypted anything
    wrong = await op("connections", "test", "acme")
    assert wrong.code == 2
    assert "cannot decrypt connection 'acme''s API secret" in wrong.err
    assert "AUTOTASK_SYNC_SECRET_KEYS" in wrong.err

    op.keys = ""
    missing = await op("connections", "test", "acme")
    assert missing.code == 2
    assert "AUTOTASK_SYNC_SECRET_KEYS is not set" in missing.err
    await op.assert_nothing_leaked()


async def test_disable_enable_and_remove_refused_while_webhooks_are_live(migrated_database, sim):
    op = Operator(migrated_database, sim)
    assert (await op.add("acme")).code == 0
    disabled = await op("connections", "disable", "acme")
    assert "disabled connection 'acme'" in disabled.out
    assert json.loads((await op("connections", "show", "acme", "--json")).out)["enabled"] is False
    assert (await op("connections", "enable", "acme")).code == 0

    db = await connect(migrated_database)
    try:
        await db.execute(
            "INSERT INTO webhook_registrations (registration_id, connection, entity, "
            "secret_current) VALUES ('r-0123456789abcdef', 'acme', 'Tickets', '\\x00')"
        )
        for refused in (
            await op("connections", "remove", "acme"),
            await op("connections", "remove", "acme", "--purge"),
        ):
            assert refused.code == 2
            assert "still has 1 live webhook registration(s)" in refused.err
            assert "provision teardown --connection acme`, or pass --teardown" in refused.err
        assert await op.stored_names() == ["acme"]
        assert json.loads((await op("connections", "show", "acme", "--json")).out)["enabled"]
        await db.execute("UPDATE webhook_registrations SET state = 'retired'")
    finally:
        await db.close()
    removed = await op("connections", "remove", "acme")
    assert removed.code == 0, removed.output
    assert await op.stored_names() == []

    unknown = await op("connections", "remove", "nobody")
    assert unknown.code == 2
    assert "no stored connection 'nobody'" in unknown.err


async def copy_mirror(db: DbSession, source: str, target: str) -> None:
    """Mirror rows of ``target``: copies of ``source``'s (another tenant, as far as rows go)."""
    for spec in REGISTRY:
        await db.execute(
            f"INSERT INTO {spec.mirror_table} (connection, id, entity, version, fetched_at, "  # noqa: S608 - registry names
            "content_hash, origin, change_seq) SELECT $2, id, entity, version, fetched_at, "
            f"content_hash, origin, change_seq FROM {spec.mirror_table} WHERE connection = $1",
            source,
            target,
        )


async def mirrored_ids(db: DbSession, connection: str) -> dict[str, set[int]]:
    """The ids of ``connection``'s mirror rows, per table."""
    return {
        spec.table: {r["id"] for r in await db.fetch(
            f"SELECT id FROM {spec.mirror_table} WHERE connection = $1", connection  # noqa: S608
        )}
        for spec in REGISTRY
    }  # fmt: skip


async def purged_ids(bootstrap: str, topics: Topics, connection: str) -> dict[str, set[int]]:
    """The ids of ``connection`` with a purge's tombstone on the change topics, per table."""
    found: dict[str, set[int]] = {}
    for spec in REGISTRY:
        keys = [
            json.loads(m.key)
            for m in await read_topic(bootstrap, topics.changes(spec))
            if m.value is None and ("ce_reason", b"purged") in list(m.headers)
        ]
        found[spec.table] = {k["id"] for k in keys if k["connection"] == connection}
    return found


async def test_purge_deletes_every_row_of_a_connection_and_tombstones_its_records(
    migrated_database, sim, kafka_bootstrap, unique
):
    topics = await create_topics(kafka_bootstrap, f"p{unique}", partitions=1)
    kafka = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AUTOTASK_SYNC_TOPIC_PREFIX": topics.prefix,
    }
    op = Operator(migrated_database, sim)
    for name in ("acme", "other"):
        await store_connection(migrated_database, SecretBox([op.keys]), name, sim)
    backfilled = await op("backfill", "--connection", "acme", **kafka)
    assert backfilled.code == 0, backfilled.output
    db = await connect(migrated_database)
    try:
        await copy_mirror(db, "acme", "other")
        for name in ("acme", "other"):
            await seed_state_rows(db, name)
        before, other = await rows_by_table(db, "acme"), await rows_by_table(db, "other")
        mirrored = await mirrored_ids(db, "acme")
    finally:
        await db.close()
    # A state table keyed by connection that a later migration adds needs a row in
    # seed_state_rows, so that this test sees it purged.
    state = {table: n for table, n in before.items() if not table.startswith("autotask.")}
    assert [table for table, count in state.items() if not count] == []
    tickets = len(mirrored["tickets"])
    assert tickets == len(truth(sim, "Tickets"))
    mirror_rows = sum(len(ids) for ids in mirrored.values())
    state_rows = sum(state.values())  # the connection row included

    purged = await op("connections", "remove", "acme", "--purge", **kafka)
    assert purged.code == 0, purged.output
    assert "purging connection 'acme': disabled now" in purged.out
    assert (
        f"  autotask.tickets: {tickets} row(s) deleted, {tickets} tombstone(s) on "
        f"{topics.prefix}.tickets.v1\n"
    ) in purged.out
    assert "  sync_runs: " in purged.out
    assert (
        f"purged connection 'acme': {mirror_rows:,} mirror and {state_rows:,} state rows "
        f"deleted, {mirror_rows:,} tombstones published"
    ) in purged.out
    db = await connect(migrated_database)
    try:
        assert {table: n for table, n in (await rows_by_table(db, "acme")).items() if n} == {}
        assert await rows_by_table(db, "other") == other
    finally:
        await db.close()
    assert await purged_ids(kafka_bootstrap, topics, "acme") == mirrored
    rerun = await op("connections", "remove", "acme", "--purge", **kafka)
    assert rerun.code == 0, rerun.output
    assert "nothing left of connection 'acme' to purge: 0 rows deleted, 0 tombstones" in rerun.out

    # A plain remove says what it leaves; the purge of that data works without the row.
    removed = await op("connections", "remove", "other")
    assert removed.code == 0, removed.output
    assert "removed connection 'other'" in removed.out
    assert f"its data stays: {mirror_rows:,} mirror rows (autotask.tickets {tickets}" in removed.out
    other_state = sum(n for table, n in other.items() if not table.startswith("autotask."))
    assert f"and {other_state - 1:,} state rows (api_budget 1," in removed.out  # its row went
    assert "`autotask-sync connections remove other --purge`" in removed.out
    again = await op("connections", "remove", "other")
    assert again.code == 2
    assert "no stored connection 'other', but its data is still here" in again.err
    leftovers = await op("connections", "remove", "other", "--purge", **kafka)
    assert leftovers.code == 0, leftovers.output
    assert "connection 'other' was removed already; purging the data it left" in leftovers.out
    db = await connect(migrated_database)
    try:
        assert {table: n for table, n in (await rows_by_table(db, "other")).items() if n} == {}
    finally:
        await db.close()
    assert await purged_ids(kafka_bootstrap, topics, "other") == mirrored
    await op.assert_nothing_leaked()


async def test_edit_tests_new_credentials_before_saving(migrated_database, sim):
    op = Operator(migrated_database, sim)
    assert (await op.add("acme")).code == 0
    bad = await op(
        "connections", "edit", "acme", "--new-secret", "--stdin", stdin="wrong-secret-999\n"
    )
    assert bad.code == 1
    assert (
        "fix:   store them with `autotask-sync connections edit acme --username USER "
        "--new-secret --new-integration-code`"
    ) in bad.err
    assert "not saved: the connection test failed; pass --force to save it anyway" in bad.err
    assert (await op("connections", "test", "acme")).code == 0  # still the good secret

    nothing = await op("connections", "edit", "acme")
    assert nothing.code == 2
    assert "nothing to change" in nothing.err
    await op.assert_nothing_leaked()


def unique_company(sim: Simulator) -> dict:
    """A company (not the tenant's own) no other company shares a name with."""
    companies = truth(sim, "Companies")
    counts = Counter(c["companyName"].casefold() for c in companies)
    return next(c for c in companies if c["id"] != 0 and counts[c["companyName"].casefold()] == 1)


async def test_a_scope_may_name_companies_and_labels_and_stores_their_ids(migrated_database, sim):
    op = Operator(migrated_database, sim)
    company = unique_company(sim)
    scope = {
        "tickets": {"include_queues": ["level i support"], "exclude_statuses": ["Complete"]},
        "companies": {"company_types": ["Vendor"], "company_ids": [company["companyName"].upper()]},
    }
    added = await op.add("acme", "--scope", json.dumps(scope))
    assert added.code == 0, added.output
    assert f"companies.company_ids: {company['id']} ({company['companyName']})" in added.out
    assert "tickets.include_queues: 8 (Level I Support)" in added.out
    assert "tickets.exclude_statuses: 5 (Complete)" in added.out
    assert "companies.company_types: 7 (Vendor)" in added.out
    shown = json.loads((await op("connections", "show", "acme", "--json")).out)
    assert shown["scope"] == {
        "tickets": {"include_queues": [8], "exclude_statuses": [5]},
        "companies": {"company_types": [7], "company_ids": [company["id"]]},
    }

    edited = await op(
        "connections", "edit", "acme", "--scope",
        json.dumps({"companies": {"company_ids": [f"  {company['companyName']} ", 0]}}),
    )  # fmt: skip
    assert edited.code == 0, edited.output
    assert (
        f"companies.company_ids: 0 (Simulated MSP (own company)), {company['id']} "
        f"({company['companyName']})"
    ) in edited.out
    shown = json.loads((await op("connections", "show", "acme", "--json")).out)
    assert shown["scope"] == {"companies": {"company_ids": [0, company["id"]]}}
    await op.assert_nothing_leaked()


async def test_an_unknown_or_ambiguous_name_is_refused_naming_it_and_nothing_is_stored(
    migrated_database, sim
):
    op = Operator(migrated_database, sim)
    company = unique_company(sim)
    assert (await op.add("acme", "--scope", '{"companies": {"company_ids": [0]}}')).code == 0
    async with AutotaskClient(connection_for(sim)) as client:
        twin = await client.create(
            "Companies",
            {"companyName": company["companyName"].lower(), "companyType": 1,
             "phone": "+1 555 0100", "ownerResourceID": truth(sim, "Resources")[1]["id"]},
        )  # fmt: skip

    async def edit(scope: dict) -> CliResult:
        return await op("connections", "edit", "acme", "--scope", json.dumps(scope))

    ambiguous = await edit({"companies": {"company_ids": [company["companyName"]]}})
    assert ambiguous.code == 2
    assert f"2 companies are called {company['companyName']!r}" in ambiguous.err
    assert f"{company['id']} ({company['companyName']})" in ambiguous.err
    assert f"{twin} ({company['companyName'].lower()})" in ambiguous.err

    first_word = company["companyName"].split()[0]
    unknown = await edit({"companies": {"company_ids": [first_word, "No Such Company Ltd"]}})
    assert unknown.code == 2
    assert f"no company is called {first_word!r}; companies with similar names: " in unknown.err
    assert f"{company['id']} ({company['companyName']})" in unknown.err
    assert "no company is called 'No Such Company Ltd'" in unknown.err

    label = await edit({"tickets": {"include_queues": ["Level IX Support"]}})
    assert label.code == 2
    assert "tickets.include_queues: 'Level IX Support' is not one of the queues" in label.err
    assert "8 (Level I Support)" in label.err

    new = await op.add("other", "--scope", '{"companies": {"company_ids": ["No Such Co"]}}')
    assert new.code == 2
    assert "no company is called 'No Such Co'" in new.err
    shown = json.loads((await op("connections", "show", "acme", "--json")).out)
    assert shown["scope"] == {"companies": {"company_ids": [0]}}
    assert await op.stored_names() == ["acme"]
