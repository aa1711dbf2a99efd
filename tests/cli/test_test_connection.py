"""``autotask-sync test-connection`` and ``connections test`` run as real processes against the
simulator: what they read, the permissions they find missing, and what they print."""

from __future__ import annotations

import json

import pytest

from shared.db import connect
from shared.entities import synced_entities
from shared.scope.rules import SyncScope
from shared.secrets import SecretBox
from tests.helpers.clients import truth
from tests.helpers.processes import CliResult, run_cli
from tests.helpers.tenants import store_connection
from tools.autotask_sim import EntityPermission, SecurityLevel
from tools.autotask_sim.server import Simulator

SYNCED = [spec.rest_name for spec in synced_entities()]
NO_READ = EntityPermission(read=False)
ONLY_TICKETS = SyncScope(entities=["Tickets"])


async def connection_test(sim: Simulator, *args: str, **env: str) -> tuple[int, str]:
    """``autotask-sync test-connection ARGS`` with ``sim``'s credentials (and ``env``: an empty
    value unsets a variable); its exit code and everything it printed."""
    credentials = {
        "AUTOTASK_SYNC_AUTOTASK_USERNAME": sim.username,
        "AUTOTASK_SYNC_AUTOTASK_SECRET": sim.secret,
        "AUTOTASK_SYNC_AUTOTASK_INTEGRATION_CODE": sim.integration_code,
        "AUTOTASK_SYNC_AUTOTASK_ZONE_LOOKUP_URL": sim.zone_lookup_url,
    }
    result = await run_cli("test-connection", "--timeout", "20", *args, env=credentials | env)
    return result.code, result.output


async def stored_acme(dsn: str, sim: Simulator, scope: SyncScope | None = None) -> dict[str, str]:
    """Store connection ``acme`` to ``sim`` with ``scope``; returns the environment a command
    needs to read it (the database and the key)."""
    key = SecretBox.generate_key()
    await store_connection(dsn, SecretBox([key]), "acme", sim, scope=scope)
    return {"DATABASE_URL": dsn, "AUTOTASK_SYNC_SECRET_KEYS": key}


async def both_commands(env: dict[str, str], *args: str) -> list[CliResult]:
    """``autotask-sync connections test acme ARGS`` and ``test-connection --connection acme
    ARGS``, which test the stored connection the same way."""
    return [
        await run_cli(*command, "--timeout", "20", *args, env=env)
        for command in (
            ("connections", "test", "acme"),
            ("test-connection", "--connection", "acme"),
        )
    ]


def rows_line(sim: Simulator, entities: list[str]) -> str:
    """The report's line of row counts, as the simulator's own numbers give it."""
    return "rows:        " + ", ".join(f"{e} {len(truth(sim, e)):,}" for e in entities)


def missing_read_line(entity: str, section: str) -> str:
    return (
        f"    {entity}: query (view) permission; grant it in Admin > Account Settings & Users > "
        f"Security Levels > the API user's level, {section}"
    )


async def test_prints_the_report(sim: Simulator):
    sim.reset_counters()
    code, out = await connection_test(sim)
    assert code == 0, out
    assert "zone:        127.0.0.1 (" + sim.rest_url in out
    assert f"API user:    API Integration <{sim.username}>" in out
    assert f"(resource {sim.api_user_resource_id})" in out
    assert rows_line(sim, SYNCED) + "\n" in out
    assert "/ 10000 requests this hour" in out
    assert "webhooks:    can be created (TicketWebhooks, CompanyWebhooks)" in out
    assert out.rstrip().endswith("OK: the connection works")
    assert sim.state.webhook_list() == []  # the permission probes left nothing behind
    assert sim.secret not in out
    # Every authenticated call is in the number the report gives (the zone lookup is not).
    requests = sim.state.requests.by_endpoint
    made = sum(n for endpoint, n in requests.items() if endpoint != "zoneInformation")
    assert f"API calls:   {made} made by this check" in out
    assert made == 1 + len(SYNCED) + 1 + 2 * 2  # API user, counts, usage, two webhook roots


async def test_json_report_matches_the_simulator(sim: Simulator):
    code, out = await connection_test(sim, "--json", "--connection", "acme")
    assert code == 0, out
    report = json.loads(out)
    assert report["ok"] is True
    assert report["connection"] == "acme"
    assert report["zone"]["url"] == sim.rest_url
    assert report["zone"]["name"] == "America East 2"
    assert report["counts"] == {entity: len(truth(sim, entity)) for entity in SYNCED}
    assert report["counts"]["Companies"] == 50
    assert report["api_user"]["resource_id"] == sim.api_user_resource_id
    assert report["usage"]["limit"] == 10_000
    assert 0 < report["usage"]["requests"] <= sim.state.limits.usage()
    assert report["usage"]["calls_by_this_check"] == sim.state.limits.usage()  # all counted
    assert report["webhooks"]["can_create"] is True
    assert set(report["webhooks"]["entities"]) == {"Tickets", "Companies"}
    assert report["missing_permissions"] == []
    assert report["error"] is None


async def test_secret_from_a_named_variable(sim: Simulator):
    code, out = await connection_test(
        sim,
        "--secret-env",
        "MY_AT_SECRET",
        AUTOTASK_SYNC_AUTOTASK_SECRET="",
        MY_AT_SECRET=sim.secret,
    )
    assert code == 0, out


async def test_rejected_credentials_print_cause_and_fix(sim: Simulator):
    wrong = "definitely-not-the-secret"
    code, out = await connection_test(sim, AUTOTASK_SYNC_AUTOTASK_SECRET=wrong)
    assert code == 1
    assert "FAILED at authentication" in out
    assert "cause: Autotask rejected the credentials" in out
    assert "check the username, secret and integration code" in out
    assert "fix:   set AUTOTASK_SYNC_AUTOTASK_USERNAME, AUTOTASK_SYNC_AUTOTASK_SECRET" in out
    assert wrong not in out
    assert sim.secret not in out


async def test_a_user_who_cannot_read_contacts_fails_naming_contacts_and_the_permission(
    sim: Simulator,
):
    sim.set_security(SecurityLevel(permissions={"Contacts": NO_READ}))
    code, out = await connection_test(sim)
    assert code == 1, out
    assert "Contacts NOT READABLE" in out
    assert "FAILED at permissions" in out
    assert "cause: the API user's security level lacks a permission the sync needs:" in out
    assert missing_read_line("Contacts", "section CRM, object Contacts") in out
    assert "fix:   grant each permission above on the API user's security level" in out
    assert "OK: the connection works" not in out

    code, out = await connection_test(sim, "--json")
    assert code == 1, out
    report = json.loads(out)
    assert report["ok"] is False
    assert report["counts"]["Contacts"] is None
    assert report["counts"]["Tickets"] == len(truth(sim, "Tickets"))  # the others were read
    [missing] = report["missing_permissions"]
    assert missing["entity"] == "Contacts"
    assert missing["permission"] == "query (view) permission"
    assert report["error"]["type"] == "PermissionDeniedError"


async def test_a_user_who_cannot_read_ticket_notes_fails_naming_them(sim: Simulator):
    sim.set_security(SecurityLevel(permissions={"TicketNotes": NO_READ}))
    code, out = await connection_test(sim)
    assert code == 1, out
    assert "TicketNotes NOT READABLE" in out
    assert missing_read_line("TicketNotes", "section Service Desk, object Tickets") in out


async def test_every_missing_permission_is_listed_not_only_the_first(sim: Simulator):
    sim.set_security(
        SecurityLevel(
            permissions={
                "Contacts": NO_READ,
                "TicketNotes": NO_READ,
                "CompanyWebhooks": EntityPermission(create=False),
            }
        )
    )
    code, out = await connection_test(sim)
    assert code == 1, out
    assert "lacks 3 permissions the sync needs:" in out
    assert missing_read_line("Contacts", "section CRM") in out
    assert missing_read_line("TicketNotes", "section Service Desk") in out
    assert "    CompanyWebhooks: 'Can create WebHooks' with a maximum webhook count" in out
    assert (
        "webhooks:    CANNOT be created (CompanyWebhooks); can be created (TicketWebhooks)" in out
    )


async def test_webhook_permission_denied_names_every_webhook_root(sim: Simulator):
    sim.set_security(SecurityLevel(can_create_webhooks=False))
    code, out = await connection_test(sim)
    assert code == 1
    assert rows_line(sim, SYNCED) in out  # everything else was checked and shown
    assert "webhooks:    CANNOT be created (TicketWebhooks, CompanyWebhooks)" in out
    assert "lacks 2 permissions the sync needs:" in out
    for root in ("TicketWebhooks", "CompanyWebhooks"):
        assert (
            f"    {root}: 'Can create WebHooks' with a maximum webhook count that covers them; "
            "grant it in Admin > Account Settings & Users > Security Levels > the API user's "
            "level, section Other" in out
        )


async def test_webhooks_are_checked_for_the_entities_the_scope_names(sim: Simulator):
    scope = SyncScope.parse({"webhooks": {"entities": ["Contacts", "TicketNotes"]}})
    sim.set_security(SecurityLevel(permissions={"ContactWebhooks": NO_READ}))
    code, out = await connection_test(sim, AUTOTASK_SYNC_AUTOTASK_SCOPE=scope.model_dump_json())
    assert code == 1, out
    webhooks = "CANNOT be created (ContactWebhooks); can be created (TicketNoteWebhooks)"
    assert f"webhooks:    {webhooks}" in out
    assert "    ContactWebhooks: query (view) permission; grant it in" in out
    assert "TicketWebhooks" not in out


async def test_a_scope_syncing_only_tickets_needs_no_contacts_permission(sim: Simulator):
    sim.set_security(SecurityLevel(permissions={"Contacts": NO_READ, "CompanyWebhooks": NO_READ}))
    code, out = await connection_test(
        sim, AUTOTASK_SYNC_AUTOTASK_SCOPE=ONLY_TICKETS.model_dump_json()
    )
    assert code == 0, out
    assert rows_line(sim, ["Tickets"]) + "\n" in out
    assert "Contacts" not in out
    assert "webhooks:    can be created (TicketWebhooks)" in out
    assert "OK: the connection works" in out


async def test_resources_hidden_by_the_security_level_fail_only_where_resources_are_synced(
    sim: Simulator,
):
    sim.set_security(SecurityLevel(permissions={"Resources": NO_READ}))
    code, out = await connection_test(sim)
    assert code == 1, out
    assert f"API user:    {sim.username} (authenticated; not visible)" in out
    assert missing_read_line("Resources", "section Admin") in out

    without_resources = SyncScope(entities=[e for e in SYNCED if e != "Resources"])
    code, out = await connection_test(
        sim, AUTOTASK_SYNC_AUTOTASK_SCOPE=without_resources.model_dump_json()
    )
    assert code == 0, out  # still a working login
    assert f"API user:    {sim.username} (authenticated; not visible)" in out


async def test_unknown_user_and_missing_config(sim: Simulator):
    code, out = await connection_test(sim, "--username", "ghost@example.com")
    assert code == 1
    assert "FAILED at zone discovery" in out
    assert "does not know API user 'ghost@example.com'" in out

    code, out = await connection_test(sim, AUTOTASK_SYNC_AUTOTASK_INTEGRATION_CODE="")
    assert code == 1
    assert "FAILED at configuration" in out
    assert "AUTOTASK_SYNC_AUTOTASK_INTEGRATION_CODE" in out


UNREACHABLE = "http://127.0.0.1:1/atservicesrest"
"""A URL nothing answers at (the connection is refused)."""


async def test_unreachable_zone_lookup_names_its_host_and_how_to_skip_it(sim: Simulator):
    code, out = await connection_test(
        sim, "--timeout", "1", AUTOTASK_SYNC_AUTOTASK_ZONE_LOOKUP_URL=UNREACHABLE
    )
    assert code == 1, out
    assert "FAILED at reaching the zone lookup host 127.0.0.1" in out
    assert "could not reach" in out
    assert (
        "fix:   check that this machine reaches 127.0.0.1 (DNS, proxy, firewall, TLS "
        f"certificates) and that {UNREACHABLE} is Autotask's zone lookup "
        "(AUTOTASK_SYNC_AUTOTASK_ZONE_LOOKUP_URL), or give the tenant's REST URL to skip "
        "discovery (AUTOTASK_SYNC_AUTOTASK_ZONE_URL)"
    ) in out


async def test_an_unreachable_zone_url_is_not_an_authentication_failure(sim: Simulator):
    code, out = await connection_test(sim, "--timeout", "1", "--zone-url", UNREACHABLE)
    assert code == 1, out
    assert "FAILED at reaching the zone host 127.0.0.1" in out
    assert "authentication" not in out
    assert (
        f"fix:   check that this machine reaches 127.0.0.1 (DNS, proxy, firewall, TLS "
        f"certificates) and that {UNREACHABLE} is the tenant's REST URL "
        "(AUTOTASK_SYNC_AUTOTASK_ZONE_URL)"
    ) in out


# --- stored connections: `connections test NAME` and `test-connection --connection NAME` --------
@pytest.mark.integration
async def test_a_stored_connection_prints_a_count_for_every_synced_entity(
    migrated_database: str, sim: Simulator
):
    env = await stored_acme(migrated_database, sim)
    for result in await both_commands(env):
        assert result.code == 0, result.output
        assert rows_line(sim, SYNCED) + "\n" in result.out
        assert "OK: the connection works" in result.out


@pytest.mark.integration
async def test_a_stored_connection_whose_user_cannot_read_contacts_or_notes_fails(
    migrated_database: str, sim: Simulator
):
    sim.set_security(SecurityLevel(permissions={"Contacts": NO_READ, "TicketNotes": NO_READ}))
    env = await stored_acme(migrated_database, sim)
    for result in await both_commands(env):
        assert result.code == 1, result.output
        assert "FAILED at permissions" in result.out
        assert missing_read_line("Contacts", "section CRM, object Contacts") in result.out
        assert missing_read_line("TicketNotes", "section Service Desk") in result.out


@pytest.mark.integration
async def test_a_stored_connection_s_fix_lines_name_the_edit_command_s_options(
    migrated_database: str, sim: Simulator
):
    env = await stored_acme(migrated_database, sim)
    db = await connect(migrated_database)
    try:
        await db.execute("UPDATE connections SET zone_url = $1", UNREACHABLE)
        unreachable = await run_cli("connections", "test", "acme", "--timeout", "1", env=env)
        await db.execute("UPDATE connections SET zone_url = NULL, username = 'ghost@example.com'")
        unknown = await run_cli("connections", "test", "acme", env=env)
    finally:
        await db.close()
    assert unreachable.code == 1, unreachable.output
    assert "FAILED at reaching the zone host 127.0.0.1" in unreachable.out
    assert (
        f"and that {UNREACHABLE} is the tenant's REST URL (`autotask-sync connections edit acme "
        "--zone-url URL`)"
    ) in unreachable.out
    assert unknown.code == 1, unknown.output
    assert (
        "fix:   correct the username (`autotask-sync connections edit acme --username USER`) "
        "or the zone lookup URL (`autotask-sync connections edit acme --zone-lookup-url URL`)"
    ) in unknown.out
    assert "AUTOTASK_SYNC_" not in unreachable.out + unknown.out


@pytest.mark.integration
async def test_test_connection_without_an_environment_connection_names_the_stored_ones(
    migrated_database: str, sim: Simulator
):
    env = await stored_acme(migrated_database, sim)
    result = await run_cli("test-connection", env=env)
    assert result.code == 1, result.output
    assert "FAILED at configuration" in result.out
    assert (
        "cause: no connection is configured in the environment (AUTOTASK_SYNC_AUTOTASK_USERNAME "
        "is not set); this deployment's 1 connection(s) are stored: acme"
    ) in result.out
    assert (
        "fix:   test a stored connection by its name: `autotask-sync connections test acme`"
    ) in result.out


@pytest.mark.integration
async def test_a_stored_tickets_only_scope_needs_no_contacts_permission(
    migrated_database: str, sim: Simulator
):
    sim.set_security(SecurityLevel(permissions={"Contacts": NO_READ}))
    env = await stored_acme(migrated_database, sim, scope=ONLY_TICKETS)
    for result in await both_commands(env, "--json"):
        assert result.code == 0, result.output
        report = json.loads(result.out)
        assert report["counts"] == {"Tickets": len(truth(sim, "Tickets"))}
        assert list(report["webhooks"]["entities"]) == ["Tickets"]


@pytest.mark.integration
async def test_connections_add_refuses_a_user_who_cannot_read_contacts_unless_forced(
    migrated_database: str, sim: Simulator
):
    sim.set_security(SecurityLevel(permissions={"Contacts": NO_READ}))
    env = {"DATABASE_URL": migrated_database, "AUTOTASK_SYNC_SECRET_KEYS": SecretBox.generate_key()}
    add = [
        "connections", "add", "acme", "--username", sim.username,
        "--zone-lookup-url", sim.zone_lookup_url, "--stdin",
    ]  # fmt: skip
    secrets = f"{sim.secret}\n{sim.integration_code}\n"
    refused = await run_cli(*add, env=env, stdin=secrets)
    assert refused.code == 1, refused.output
    assert missing_read_line("Contacts", "section CRM, object Contacts") in refused.err
    assert "not stored: the connection test failed" in refused.err

    forced = await run_cli(*add, "--force", env=env, stdin=secrets)
    assert forced.code == 0, forced.output
    assert "--force: stored although the connection test failed" in forced.err
