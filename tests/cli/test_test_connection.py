"""``autotask-sync test-connection`` run as a real process against the simulator."""

from __future__ import annotations

import json

from tests.helpers.clients import truth
from tests.helpers.processes import run_cli
from tools.autotask_sim import EntityPermission, SecurityLevel
from tools.autotask_sim.server import Simulator


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


async def test_prints_the_report(sim: Simulator):
    code, out = await connection_test(sim)
    assert code == 0, out
    assert "zone:        127.0.0.1 (" + sim.rest_url in out
    assert f"API user:    API Integration <{sim.username}>" in out
    assert f"(resource {sim.api_user_resource_id})" in out
    assert "companies:   50" in out
    assert f"tickets:     {len(truth(sim, 'Tickets'))}" in out
    assert "/ 10000 requests this hour" in out
    assert "webhooks:    can be created (TicketWebhooks)" in out
    assert out.rstrip().endswith("OK: the connection works")
    assert sim.state.webhook_list() == []  # the permission probe left nothing behind
    assert sim.secret not in out


async def test_json_report_matches_the_simulator(sim: Simulator):
    code, out = await connection_test(sim, "--json", "--connection", "acme")
    assert code == 0, out
    report = json.loads(out)
    assert report["ok"] is True
    assert report["connection"] == "acme"
    assert report["zone"]["url"] == sim.rest_url
    assert report["zone"]["name"] == "America East 2"
    assert report["counts"] == {"Companies": 50, "Tickets": len(truth(sim, "Tickets"))}
    assert report["api_user"]["resource_id"] == sim.api_user_resource_id
    assert report["usage"]["limit"] == 10_000
    assert 0 < report["usage"]["requests"] <= sim.state.limits.usage()
    assert report["webhooks"]["can_create"] is True
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


async def test_webhook_permission_denied_prints_cause_and_fix(sim: Simulator):
    sim.set_security(SecurityLevel(can_create_webhooks=False))
    code, out = await connection_test(sim)
    assert code == 1
    assert "companies:   50" in out  # everything else was checked and shown
    assert "webhooks:    CANNOT be created (TicketWebhooks)" in out
    assert "cause: the API user cannot create webhooks" in out
    assert "fix:   edit the API user's security level: enable 'Can create WebHooks'" in out


async def test_unknown_user_and_missing_config(sim: Simulator):
    code, out = await connection_test(sim, "--username", "ghost@example.com")
    assert code == 1
    assert "FAILED at zone discovery" in out
    assert "does not know API user 'ghost@example.com'" in out

    code, out = await connection_test(sim, AUTOTASK_SYNC_AUTOTASK_INTEGRATION_CODE="")
    assert code == 1
    assert "FAILED at configuration" in out
    assert "AUTOTASK_SYNC_AUTOTASK_INTEGRATION_CODE" in out


async def test_resources_hidden_by_the_security_level_is_still_a_working_login(sim: Simulator):
    sim.set_security(SecurityLevel(permissions={"Resources": EntityPermission(read=False)}))
    code, out = await connection_test(sim)
    assert code == 0, out
    assert f"API user:    {sim.username} (authenticated; not visible)" in out


async def test_unreachable_zone_lookup_points_at_the_network(sim: Simulator):
    code, out = await connection_test(
        sim, AUTOTASK_SYNC_AUTOTASK_ZONE_LOOKUP_URL="http://127.0.0.1:1/atservicesrest"
    )
    assert code == 1, out
    assert "FAILED at zone discovery" in out
    assert "could not reach" in out
    assert "fix:   check network access" in out
