"""The fault suite's rig: one deployment on servers the module owns, a tenant per scenario.

The module starts its own PostgreSQL and Kafka (so it may really stop them), runs the gateway,
the worker and the provisioner as real processes once, and gives each scenario a fresh simulated
tenant under a connection of its own: scenarios cannot see each other's rows, callouts or
events, and only the processes a scenario kills are restarted.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from shared.db import apply_migrations, connect
from shared.entities import COMPANIES, CONFIGURATION_ITEMS, CONTACTS, TICKET_NOTES, TICKETS
from shared.messages.callout import header_map
from shared.messages.topics import Topics
from shared.secrets import SecretBox
from tests.helpers.clients import truth
from tests.helpers.pipeline import mirror_diff, read_topic, replay_changes
from tests.helpers.processes import CliResult, LocalDeployment, ServiceProcess
from tests.helpers.servers import Broker, Postgres
from tests.helpers.tenants import store_connection
from tests.helpers.waiting import eventually
from tools.autotask_sim import CalloutConfig, Simulator, SimulatorConfig
from tools.demo import Metrics

ENTITIES = [TICKETS, COMPANIES, CONTACTS, CONFIGURATION_ITEMS, TICKET_NOTES]
WEBHOOK_ENTITIES = ",".join(e.rest_name for e in ENTITIES)


@dataclass
class Row:
    """One line of the suite's table."""

    scenario: str
    sent: int = 0
    accepted: int = 0
    spooled: int = 0
    lost: int = 0
    repaired: int = 0
    api_calls: int = 0
    converge_seconds: float = 0.0


SOAK = float(os.environ.get("AUTOTASK_SYNC_SOAK", "1"))
"""Each scenario's changes are multiplied by this (``make soak`` sets 10: ten times longer)."""
RESULTS: list[Row] = []
"""Filled by the scenarios; printed at the end of the session (tests/e2e/conftest.py)."""


@dataclass
class Rig:
    """The servers, the deployment and its three services."""

    broker: Broker
    postgres: Postgres
    deployment: LocalDeployment
    topics: Topics
    gateway: ServiceProcess | None = None
    worker: ServiceProcess | None = None
    provisioner: ServiceProcess | None = None
    scenarios: int = 0

    @property
    def dsn(self) -> str:
        return self.deployment.dsn

    async def start(self) -> None:
        self.gateway = await self.deployment.start("webhook_gateway")
        self.deployment.extra_env["AUTOTASK_SYNC_GATEWAY_PUBLIC_URL"] = self.gateway.url
        self.worker = await self.deployment.start("sync_worker")
        self.provisioner = await self.deployment.start("provisioner")

    async def restart(self, service: ServiceProcess) -> None:
        """Start a killed or stopped service again, on the same port."""
        await service.start(ready=timedelta(seconds=60))

    async def ensure_running(self) -> None:
        """Whatever a failed scenario left down comes back before the next one."""
        await asyncio.to_thread(self.broker.start)
        await asyncio.to_thread(self.postgres.start)
        for service in (self.gateway, self.worker, self.provisioner):
            if service is not None and not service.running:
                await self.restart(service)

    def logs(self, lines: int = 30) -> str:
        return self.deployment.logs(lines)


def scenario_tenant(seed: int) -> SimulatorConfig:
    """A small tenant whose callouts retry fast (Autotask's 30 s become 0.3 s)."""
    return SimulatorConfig(
        seed=seed,
        companies=10,
        contacts=12,
        configuration_items=10,
        tickets=40,
        ticket_notes=40,
        callouts=CalloutConfig(
            timeout=timedelta(seconds=5),
            retry_delay=timedelta(milliseconds=300),
            max_attempts=8,
        ),
    )


async def create_rig(root: Path, unique: str) -> Rig:
    broker = Broker(root / "kafka")
    # Not under pytest's root-only temporary folder: the server runs as an unprivileged user.
    pg_root = Path(tempfile.mkdtemp(prefix="autotask-sync-faults-pg-"))
    pg_root.chmod(0o755)
    postgres = Postgres(pg_root / "cluster")
    await asyncio.to_thread(broker.start)
    await asyncio.to_thread(postgres.start)
    db = await connect(postgres.dsn)
    try:
        await apply_migrations(db)
    finally:
        await db.close()
    from tests.helpers.pipeline import create_topics

    topics = await create_topics(broker.bootstrap, f"f{unique}", partitions=4)
    deployment = LocalDeployment(
        dsn=postgres.dsn,
        bootstrap=broker.bootstrap,
        topic_prefix=topics.prefix,
        secret_key=SecretBox.generate_key(),
        log_dir=root,
        extra_env={
            "AUTOTASK_SYNC_PRODUCTION_MODE": "false",
            "AUTOTASK_SYNC_WEBHOOK_ENTITIES": WEBHOOK_ENTITIES,
            "AUTOTASK_SYNC_SWEEPS_ENABLED": "false",  # the scenario sweeps once, after recovery
            "AUTOTASK_SYNC_WINDOW_LOW": "100ms",
            "AUTOTASK_SYNC_PROVISIONER_INTERVAL": "5s",
            "AUTOTASK_SYNC_PROVISIONER_EVENT_COALESCE": "1s",
            "AUTOTASK_SYNC_PROVISIONER_DEACTIVATION_WINDOW": "1s",
            "AUTOTASK_SYNC_KAFKA_RETRY_INTERVAL": "500ms",
            "AUTOTASK_SYNC_SPOOL_DRAIN_INTERVAL": "200ms",
            "AUTOTASK_SYNC_SPOOL_CHECK_INTERVAL": "200ms",
            "AUTOTASK_SYNC_RETRY_DELAY_MAX": "2s",
            # 60 s in production; the storms here would otherwise spend minutes paused.
            "AUTOTASK_SYNC_API_RATE_LIMIT_PAUSE": "5s",
            "AUTOTASK_SYNC_LOG_LEVEL": "INFO",
        },
    )
    rig = Rig(broker=broker, postgres=postgres, deployment=deployment, topics=topics)
    await rig.start()
    return rig


Inject = Callable[[Rig, Simulator], Awaitable[None]]


@dataclass
class Scenario:
    """A fault injected while the change generator runs, and the recovery after it."""

    name: str
    inject: Inject
    changes: int = 150
    rate: float = 30.0
    lossy: bool = False
    """Autotask never sends some callouts: deletes of entities without a delete log (companies,
    contacts) are then only found by the id sweep, which runs after the quick one."""
    extra: dict[str, Any] = field(default_factory=dict)


async def run(rig: Rig, scenario: Scenario) -> Row:
    """Drive changes through the pipeline with the fault, recover, sweep, and check."""
    await rig.ensure_running()
    rig.scenarios += 1
    name = f"s{rig.scenarios}"
    row = Row(scenario.name)
    from tools.autotask_sim import run_simulator

    async with run_simulator(scenario_tenant(100 + rig.scenarios)) as sim:
        await store_connection(rig.dsn, SecretBox([rig.deployment.secret_key]), name, sim)
        try:
            await _drive(rig, scenario, sim, name, row)
        finally:
            # The tenant goes away with its simulator: retire it as an operator would, so later
            # scenarios do not spend the worker's and the provisioner's time on it.
            await rig.deployment.cli("connections", "disable", name)
    RESULTS.append(row)
    return row


async def _drive(rig: Rig, scenario: Scenario, sim: Simulator, name: str, row: Row) -> None:
    for args in (
        ("provision", "apply", "--connection", name),
        ("backfill", "--connection", name),
    ):
        result = await _cli_retrying(rig, *args)
        assert result.code == 0, (args, result.out, result.err, rig.logs())
    sim.reset_counters()
    changes = round(scenario.changes * SOAK)
    sim.start_changes(scenario.rate, count=changes, seed=rig.scenarios)
    await asyncio.sleep(changes / scenario.rate / 3)
    await scenario.inject(rig, sim)
    recovered = time.monotonic()
    await sim.state.changes.wait_done()
    await sim.wait_for_callouts(max_wait=timedelta(seconds=90))
    await _worker_idle(rig)
    sweeps = [("sweep", "--connection", name)]
    if scenario.lossy:
        sweeps.append(("sweep", "--ids", "--connection", name))
    for sweep in sweeps:
        swept = await _cli_retrying(rig, *sweep)
        assert swept.code == 0, (sweep, swept.out, swept.err, rig.logs())
    diff = await mirror_diff(rig.dsn, name, sim, ENTITIES)
    assert diff == {}, (scenario.name, diff, rig.logs())
    row.converge_seconds = round(time.monotonic() - recovered, 1)

    # Every callout Autotask got a 2xx for is on the callouts topic.
    delivered = {
        entry["body"].encode()
        for entry in sim.state.callout_log
        if isinstance(entry.get("status"), int)
        and 200 <= entry["status"] < 300
        and entry["outcome"] != "deactivation_call"  # the unsigned notice goes to control
    }
    on_topic = {
        m.value
        for m in await read_topic(rig.deployment.bootstrap, rig.topics.callouts)
        if header_map(m.headers).get("connection") == name
    }
    row.accepted = len(delivered)
    row.lost = len(delivered - on_topic)
    assert row.lost == 0, (scenario.name, "lost callouts", rig.logs())

    # The change topics rebuild the mirror.
    for entity in ENTITIES:
        replayed = await replay_changes(rig.deployment.bootstrap, rig.topics.changes(entity))
        mine = {i: r for (c, i), r in replayed.items() if c == name}
        assert mine == {r["id"]: r for r in truth(sim, entity.rest_name)}, (
            scenario.name,
            entity,
        )

    # The tenant's limits were never exceeded.
    stats = sim.state.requests
    assert max(stats.max_concurrency.values(), default=0) <= 3, stats.max_concurrency
    assert sum(stats.thread_rejections.values()) == 0
    assert stats.hourly_rejections == 0

    row.sent = sim.state.dispatcher.counters.get("sent", 0)
    row.api_calls = sum(stats.by_endpoint.values())
    db = await connect(rig.dsn)
    try:
        row.repaired = int(
            await db.fetchval(
                "SELECT coalesce(sum(repaired), 0) FROM sync_runs WHERE connection = $1 "
                "AND mode = 'incremental'",
                name,
            )
        )
    finally:
        await db.close()
    if rig.gateway is not None:
        metrics = await Metrics.scrape(rig.gateway)
        row.spooled = int(
            metrics.total(
                "autotask_sync_gateway_requests_total", outcome="spooled", connection=name
            )
        )


async def _cli_retrying(rig: Rig, *args: str) -> CliResult:
    """A command, tried again for a while if it fails (a server may still be coming back)."""

    async def succeeded() -> CliResult:
        result = await rig.deployment.cli(*args)
        assert result.code == 0, result.output
        return result

    try:
        return await eventually(
            succeeded,
            within=timedelta(seconds=60),
            interval=timedelta(seconds=2),
            what=f"`autotask-sync {' '.join(args)}` to succeed",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{rig.logs()}") from exc


async def _worker_idle(rig: Rig) -> None:
    """Until the worker reports no callout in flight and no lag twice in a row."""
    worker = rig.worker
    assert worker is not None
    quiet = 0

    async def idle() -> bool:
        nonlocal quiet
        try:
            metrics = await Metrics.scrape(worker)
        except Exception:
            quiet = 0
            raise
        busy = metrics.total("autotask_sync_worker_in_flight_callouts") + metrics.total(
            "autotask_sync_worker_consumer_lag"
        )
        quiet = quiet + 1 if busy == 0 else 0
        return quiet >= 2

    await eventually(
        idle, within=timedelta(seconds=90), interval=timedelta(seconds=1.5), what="an idle worker"
    )


def table(rows: list[Row]) -> str:
    header = (
        "scenario",
        "sent",
        "accepted",
        "spooled",
        "lost",
        "repaired",
        "API calls",
        "converge s",
    )
    cells = [header] + [
        (
            r.scenario,
            str(r.sent),
            str(r.accepted),
            str(r.spooled),
            str(r.lost),
            str(r.repaired),
            str(r.api_calls),
            f"{r.converge_seconds:.1f}",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    )
