"""``autotask-sync provision`` as an operator runs it: real processes, real PostgreSQL and Kafka,
one simulated tenant per connection."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio

from shared.db import connect
from shared.registrations import RegistrationState
from shared.secrets import SecretBox
from tests.helpers.processes import CliResult, run_cli, start_cli
from tests.helpers.receiver import Receiver, serve_receiver
from tests.helpers.tenants import store_connection, tenants
from tests.helpers.waiting import eventually
from tests.services.provisioner.harness import KEY, ensure_control_topic, ours, tenant, writes
from tools.autotask_sim import Simulator
from tools.autotask_sim.catalog.system_entities import WEBHOOK_FIELD_IDS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest_asyncio.fixture
async def sims() -> AsyncIterator[list[Simulator]]:
    async with tenants(tenant(21), tenant(22)) as simulators:
        yield simulators


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve_receiver() as server:
        yield server


class Operator:
    """Runs ``autotask-sync`` against one database, as an operator would."""

    def __init__(self, dsn: str, kafka: str, gateway: str, prefix: str) -> None:
        self.env = {
            "DATABASE_URL": dsn,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "AUTOTASK_SYNC_SECRET_KEYS": KEY,
            "AUTOTASK_SYNC_GATEWAY_PUBLIC_URL": gateway,
            "AUTOTASK_SYNC_PRODUCTION_MODE": "false",
            "AUTOTASK_SYNC_TOPIC_PREFIX": prefix,
        }

    async def __call__(self, *args: str) -> CliResult:
        return await run_cli(*args, env=self.env)


@pytest_asyncio.fixture
async def op(migrated_database, kafka_bootstrap, receiver, unique) -> Operator:
    await ensure_control_topic(kafka_bootstrap, f"cli{unique}")
    return Operator(migrated_database, kafka_bootstrap, receiver.base_url, f"cli{unique}")


async def live_states(dsn: str) -> dict[tuple[str, str], str]:
    db = await connect(dsn)
    try:
        rows = await db.fetch("SELECT connection, entity, state FROM webhook_registrations")
    finally:
        await db.close()
    return {(r["connection"], r["entity"]): r["state"] for r in rows if r["state"] != "retired"}


async def test_two_connections_side_by_side_and_tearing_one_down_leaves_the_other(
    op: Operator, sims: list[Simulator], migrated_database: str
):
    a, b = sims
    box = SecretBox([KEY])
    await store_connection(migrated_database, box, "alpha", a)
    await store_connection(migrated_database, box, "beta", b)

    a.reset_counters()
    b.reset_counters()
    planned = await op("provision", "plan", "--all")
    assert planned.code == 0, planned.output
    assert "connection 'alpha': 41 step(s)" in planned.out
    assert "create webhook 'autotask-sync:beta:Tickets'" in planned.out
    assert writes(a) == {}
    assert writes(b) == {}  # plan never writes

    applied = await op("provision", "apply", "--all")
    assert applied.code == 0, applied.output
    assert sorted(w["root"] for w in ours(a, "alpha")) == ["CompanyWebhooks", "TicketWebhooks"]
    assert sorted(w["root"] for w in ours(b, "beta")) == ["CompanyWebhooks", "TicketWebhooks"]

    status = await op("provision", "status", "--all")
    assert status.code == 0, status.output
    for word in ("ENTITY", "LAST CALLOUT", "connection 'beta'", str(a.api_user_resource_id)):
        assert word in status.out
    [alpha_tickets] = [
        line for line in status.out.splitlines() if line.strip().startswith("Tickets")
    ][:1]
    assert "yes" in alpha_tickets
    # Times as every command writes them: ISO 8601 with the T and the offset.
    assert re.search(r"last pass \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 ", status.out)

    torn = await op("provision", "teardown", "--connection", "alpha")
    assert torn.code == 0, torn.output
    assert ours(a, "alpha") == []
    assert len(ours(b, "beta")) == 2
    assert set(await live_states(migrated_database)) == {("beta", "Tickets"), ("beta", "Companies")}

    b.reset_counters()
    held = await op("provision", "apply", "--all")
    assert held.code == 0, held.output
    assert "connection 'alpha': skipped" in held.out
    assert ours(a, "alpha") == []  # a teardown is not undone behind the operator's back
    assert "connection 'beta': in sync, nothing to do" in held.out
    assert writes(b) == {}

    removed = await op("connections", "remove", "alpha")
    assert removed.code == 0, removed.output
    refused = await op("connections", "remove", "beta")
    assert refused.code == 2
    assert "provision teardown --connection beta" in refused.err
    gone = await op("connections", "remove", "beta", "--teardown")
    assert gone.code == 0, gone.output
    assert ours(b, "beta") == []
    assert await live_states(migrated_database) == {}


async def test_an_apply_killed_half_way_is_finished_by_the_next_one_without_duplicates(
    op: Operator, sims: list[Simulator], migrated_database: str
):
    a = sims[0]
    await store_connection(migrated_database, SecretBox([KEY]), "alpha", a)
    a.set_faults(latency=timedelta(milliseconds=40))
    command = await start_cli(
        "provision", "apply", "--connection", "alpha", env=op.env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await eventually(  # a busy machine takes seconds just to start the command
            lambda: any(len(w["fields"]) >= 3 for w in ours(a, "alpha")),
            within=timedelta(seconds=30),
            what="the apply to get half-way",
        )
    except AssertionError as exc:
        await command.kill()
        printed = await command.process.stderr.read()  # type: ignore[union-attr]
        raise AssertionError(f"{exc}; the command printed: {printed[-2000:]!r}") from exc
    finally:
        await command.kill()
    half = ours(a, "alpha")
    assert any(len(w["fields"]) < len(WEBHOOK_FIELD_IDS[_entity(w)].fields) for w in half)

    a.clear_faults()
    resumed = await op("provision", "apply", "--connection", "alpha")
    assert resumed.code == 0, resumed.output
    webhooks = ours(a, "alpha")
    assert sorted(w["root"] for w in webhooks) == ["CompanyWebhooks", "TicketWebhooks"]
    for webhook in webhooks:
        entity = _entity(webhook)
        assert sorted(f["fieldID"] for f in webhook["fields"]) == sorted(
            WEBHOOK_FIELD_IDS[entity].fields
        )
        assert webhook["isActive"] is True
    assert set((await live_states(migrated_database)).values()) == {RegistrationState.ACTIVE}
    again = await op("provision", "plan", "--connection", "alpha")
    assert "in sync, nothing to do" in again.out


async def test_rotate_secret_gives_autotask_a_new_secret(
    op: Operator, sims: list[Simulator], migrated_database: str
):
    a = sims[0]
    box = SecretBox([KEY])
    await store_connection(migrated_database, box, "alpha", a)
    assert (await op("provision", "apply", "--connection", "alpha")).code == 0
    before = {w["root"]: w["secretKey"] for w in ours(a, "alpha")}
    rotated = await op("provision", "rotate-secret", "--connection", "alpha", "--entity", "tickets")
    assert rotated.code == 0, rotated.output
    after = {w["root"]: w["secretKey"] for w in ours(a, "alpha")}
    assert after["TicketWebhooks"] != before["TicketWebhooks"]
    assert after["CompanyWebhooks"] == before["CompanyWebhooks"]
    for secret in (*before.values(), *after.values()):
        assert secret not in rotated.output


def _entity(webhook: dict) -> str:
    return {"TicketWebhooks": "Tickets", "CompanyWebhooks": "Companies"}[webhook["root"]]
