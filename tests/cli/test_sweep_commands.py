"""``autotask-sync sweep | backfill | resync | refresh-metadata`` as an operator runs them: real
processes against PostgreSQL, Kafka and the simulator; a backfill killed half-way resumes
without re-reading what it had done."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from shared.db import connect
from shared.entities import COMPANIES, TICKETS
from shared.messages.topics import Topics
from shared.secrets import SecretBox
from tests.helpers.clients import truth
from tests.helpers.pipeline import create_topics, mirror_diff
from tests.helpers.processes import run_cli, start_cli
from tests.helpers.tenants import store_connection
from tests.helpers.waiting import eventually
from tools.autotask_sim import Simulator, SimulatorConfig

pytestmark = pytest.mark.integration


@pytest.fixture
def sim_config() -> SimulatorConfig:
    return SimulatorConfig(seed=71, companies=20, contacts=10, configuration_items=5,
                           tickets=5000, ticket_notes=50)  # fmt: skip


@dataclass
class Operator:
    dsn: str
    topics: Topics
    env: dict[str, str]

    async def sql(self, query: str, *args: object) -> list[dict[str, object]]:
        db = await connect(self.dsn)
        try:
            return [dict(r) for r in await db.fetch(query, *args)]
        finally:
            await db.close()


@pytest.fixture
async def operator(
    sim: Simulator, migrated_database: str, kafka_bootstrap: str, unique: str
) -> AsyncIterator[Operator]:
    topics = await create_topics(kafka_bootstrap, f"c{unique}", partitions=1)
    key = SecretBox.generate_key()
    await store_connection(migrated_database, SecretBox([key]), "acme", sim)
    return Operator(
        migrated_database,
        topics,
        {
            "DATABASE_URL": migrated_database,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "AUTOTASK_SYNC_TOPIC_PREFIX": topics.prefix,
            "AUTOTASK_SYNC_SECRET_KEYS": key,
        },
    )


async def test_a_killed_backfill_resumes_without_re_reading(
    sim: Simulator, operator: Operator
) -> None:
    sim.set_faults(latency=timedelta(milliseconds=250), endpoints=["Tickets"])
    sim.reset_counters()
    command = await start_cli(
        "backfill", "--connection", "acme", "--entity", "Tickets", env=operator.env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip

    async def cursor_and_rows() -> bool:
        rows = await operator.sql(
            "SELECT id_cursor FROM sweep_watermarks WHERE entity = 'Tickets' AND kind = 'backfill'"
        )
        return (
            bool(rows)
            and rows[0]["id_cursor"] is not None
            and (len(await _mirrored(operator)) >= 1500)
        )

    try:
        await eventually(
            cursor_and_rows,
            within=timedelta(seconds=60),
            interval=timedelta(milliseconds=50),
            what="a backfill cursor and 1,500 mirrored tickets",
        )
    finally:
        await command.kill()
    done = len(await _mirrored(operator))
    assert 0 < done < 5000
    first_calls = sim.state.requests.by_endpoint["Tickets"]

    result = await run_cli("backfill", "--connection", "acme", "--entity", "Tickets",
                           env=operator.env)  # fmt: skip
    assert result.code == 0, result.output
    assert "backfill of Tickets for 'acme': succeeded" in result.out
    assert "rows after id" in result.err  # progress lines, not a terminal
    assert await mirror_diff(operator.dsn, "acme", sim, [TICKETS]) == {}
    pages = math.ceil(5000 / 500)
    calls = sim.state.requests.by_endpoint["Tickets"]
    # Two counts, every page once, at most the one page in flight when it was killed again.
    assert calls <= pages + 2 + 1, (first_calls, calls)
    runs = await operator.sql("SELECT status, error, fetched FROM sync_runs ORDER BY id")
    assert [r["status"] for r in runs] == ["failed", "succeeded"]  # the dead run is closed
    assert runs[1]["fetched"] <= 5000 - done + 500  # the resume did not re-read the rest
    sim.clear_faults()


async def _mirrored(operator: Operator) -> list[dict[str, object]]:
    return await operator.sql("SELECT id FROM autotask.tickets WHERE connection = 'acme'")


async def test_quick_sync_twice_runs_once_and_metadata_refreshes(
    sim: Simulator, operator: Operator
) -> None:
    # The services' INFO in the environment does not reach a command: its stdout is its answer,
    # and it logs at WARNING on stderr unless -v.
    first = await run_cli(
        "sweep", "--entity", "Companies", env={**operator.env, "AUTOTASK_SYNC_LOG_LEVEL": "INFO"}
    )
    assert first.code == 0, first.output
    [line] = first.out.splitlines()
    assert line.startswith("incremental of Companies for 'acme': succeeded")
    assert "0 out of scope" in line
    assert "run started" not in first.err
    second = await run_cli("sweep", "--entity", "Companies", env=operator.env)
    assert second.code == 0, second.output
    assert "skipped: the same incremental of Companies" in second.out
    metadata = await run_cli("refresh-metadata", "-v", env=operator.env)
    assert metadata.code == 0, metadata.output
    assert metadata.out.startswith("metadata for 'acme': succeeded")
    assert "run started" in metadata.err
    assert "run started" not in metadata.out
    labels = await operator.sql(
        "SELECT label FROM psa_picklists WHERE entity = 'Companies' AND field = 'companyType' "
        "AND value = '1'"
    )
    assert labels == [{"label": "Customer"}]


async def test_resync_and_a_refused_mass_delete_say_what_happened(
    sim: Simulator, operator: Operator
) -> None:
    assert (await run_cli("backfill", "--entity", "Companies", env=operator.env)).code == 0
    companies = [c["id"] for c in truth(sim, "Companies")]
    for company in companies[:10]:
        sim.delete_entity("Companies", company)
    refused = await run_cli("sweep", "--ids", "--entity", "Companies", env=operator.env)
    assert refused.code == 1
    assert "aborted" in refused.out
    assert "mass-delete guard" in refused.out
    resync = await run_cli("resync", "--entity", "Companies", "--max-delete-share", "0.6",
                           env=operator.env)  # fmt: skip
    assert resync.code == 0, resync.output
    assert "10 deleted, 10 repaired" in resync.out
    assert await mirror_diff(operator.dsn, "acme", sim, [COMPANIES]) == {}
    missing = await run_cli("resync", env=operator.env)
    assert missing.code == 2
    assert "--entity" in missing.err
    usage = await run_cli("resync", "--help")
    assert "(repeatable; required)" in " ".join(usage.out.split())  # as the command behaves
