"""``make demo``: the whole pipeline against simulated Autotask tenants, on local infrastructure.

What runs, for real, as a production deployment would:

1. PostgreSQL and Kafka (local, or the ones the environment names), the migrations, the topics;
2. simulated tenants (real HTTP servers), each added with ``autotask-sync connections add``;
3. the webhook gateway, the provisioner (which registers every tenant's webhooks) and the sync
   worker (with its sweep scheduler) as separate processes;
4. a backfill of every entity with a progress bar (``autotask-sync backfill``);
5. the change generator for ``--duration`` seconds, with some callouts dropped by the simulator
   and one webhook deactivated by Autotask half-way (the provisioner heals it and asks for a
   catch-up sweep);
6. one quick sync and one id sweep, then a report per connection and the check "mirror equals
   simulator", every entity compared in full, deletes included. The exit status is non-zero
   when it fails.

Ctrl-C stops everything it started. ``--report FILE`` also writes the report as JSON.

Against a real tenant instead (nothing is generated: the run watches real changes for
``--duration`` seconds and compares the mirror with a fresh read of the tenant), set
``AUTOTASK_SYNC_DEMO_REAL=1`` with the environment connection's ``AUTOTASK_SYNC_AUTOTASK_*``
variables, ``AUTOTASK_SYNC_GATEWAY_PUBLIC_URL`` (an https URL Autotask can reach, forwarded to
this machine's gateway port ``AUTOTASK_SYNC_DEMO_GATEWAY_PORT``, default 8080),
``AUTOTASK_SYNC_SECRET_KEYS``, ``DATABASE_URL`` and ``KAFKA_BOOTSTRAP_SERVERS``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg

from shared.autotask import AutotaskClient, Priority
from shared.db import connect, database_dsn
from shared.entities import REGISTRY, EntitySpec, webhook_entities
from shared.logging import configure_logging
from shared.mirror.store import live_rows
from shared.records import normalize_record
from shared.secrets import SecretBox
from shared.settings import AutotaskSettings, configured_value, load_settings
from tools.autotask_sim import CalloutConfig, FaultConfig, Simulator, SimulatorConfig, run_simulator
from tools.deployment import LocalDeployment, ServiceProcess
from tools.dev_infra.databases import scratch_database
from tools.dev_infra.processes import pid_alive
from tools.dev_infra.stack import DevStack

SEED = 42
WEBHOOK_ENTITIES = tuple(spec.rest_name for spec in webhook_entities())
HEALS = ("reactivated", "recreated")
ACCEPTED = ("accepted", "spooled", "duplicate")
SCALES: dict[str, dict[str, int]] = {
    "small": {"companies": 40, "contacts": 200, "configuration_items": 80, "tickets": 1_000},
    "default": {
        "companies": 200,
        "contacts": 1_000,
        "configuration_items": 400,
        "tickets": 5_000,
    },
    "large": {
        "companies": 1_000,
        "contacts": 5_000,
        "configuration_items": 2_000,
        "tickets": 25_000,
    },
}
REAL_REQUIRED = (
    "AUTOTASK_SYNC_AUTOTASK_USERNAME",
    "AUTOTASK_SYNC_AUTOTASK_SECRET",
    "AUTOTASK_SYNC_AUTOTASK_INTEGRATION_CODE",
    "AUTOTASK_SYNC_GATEWAY_PUBLIC_URL",
    "AUTOTASK_SYNC_SECRET_KEYS",
)
_SAMPLE = re.compile(
    r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>[-+0-9.eE]+|NaN|\+Inf)$"
)
_LABEL = re.compile(r'([a-z_]+)="([^"]*)"')


def say(step: str, text: str = "") -> None:
    print(f"\n== {step}" + (f"\n{text}" if text else ""), flush=True)


# --- reading the services' metrics ---------------------------------------------------------
@dataclass
class Metrics:
    """Samples scraped from one service's ``/metrics``."""

    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    @classmethod
    async def scrape(cls, service: ServiceProcess) -> Metrics:
        return cls.parse(await service.metrics())

    @classmethod
    def parse(cls, text: str) -> Metrics:
        found = []
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if match:
                labels = dict(_LABEL.findall(match["labels"] or ""))
                found.append((match["name"], labels, float(match["value"])))
        return cls(found)

    def total(self, name: str, **labels: str) -> float:
        return sum(
            value
            for metric, found, value in self.samples
            if metric == name and labels.items() <= found.items()
        )

    def quantile(self, name: str, q: float, **labels: str) -> float | None:
        """``histogram_quantile`` over the ``_bucket`` samples of ``name`` (seconds)."""
        buckets: dict[float, float] = {}
        for metric, found, value in self.samples:
            if metric != f"{name}_bucket" or not labels.items() <= found.items():
                continue
            le = math.inf if found["le"] == "+Inf" else float(found["le"])
            buckets[le] = buckets.get(le, 0.0) + value
        total = buckets.get(math.inf, 0.0)
        if total == 0:
            return None
        rank = q * total
        previous_bound, previous_count = 0.0, 0.0
        for bound in sorted(buckets):
            count = buckets[bound]
            if count >= rank:
                if math.isinf(bound):
                    return previous_bound
                span = count - previous_count
                share = (rank - previous_count) / span if span else 0.0
                return previous_bound + (bound - previous_bound) * share
            previous_bound, previous_count = bound, count
        return previous_bound


# --- the run ---------------------------------------------------------------------------------
@dataclass
class Tenant:
    """A connection of the run: a simulated tenant, or (real mode) the environment's tenant."""

    name: str
    sim: Simulator | None = None
    client: AutotaskClient | None = None

    async def truth(self, entity: EntitySpec) -> dict[int, Any]:
        """Every record of ``entity`` as the tenant holds it now, its timestamps in the one form
        the mirror keeps (docs/consumers.md, "Timestamps")."""
        if self.sim is not None:
            rows = json.loads(json.dumps(self.sim.state.entities(entity.rest_name)))
        else:
            assert self.client is not None
            rows = await self.client.query_all(entity.rest_name, priority=Priority.INTERACTIVE)
        return {row["id"]: normalize_record(entity, row) for row in rows}


class Demo:
    """One demo run: a deployment, its tenants, and what the report needs."""

    def __init__(self, args: argparse.Namespace, deployment: LocalDeployment) -> None:
        self.args = args
        self.deployment = deployment
        self.tenants: list[Tenant] = []
        self.gateway: ServiceProcess | None = None
        self.worker: ServiceProcess | None = None
        self.provisioner: ServiceProcess | None = None
        self.started = time.monotonic()

    def note(self, text: str) -> None:
        print(f"   {time.monotonic() - self.started:6.1f} s  {text}", flush=True)

    async def cli(self, *args: str, stdin: str | None = None) -> str:
        """Run ``autotask-sync ARGS`` as an operator would, showing what it prints."""
        result = await self.deployment.cli(*args, stdin=stdin)
        text = (result.out + result.err).rstrip()
        if text:
            print("   " + text.replace("\n", "\n   "), flush=True)
        if result.code != 0:
            raise SystemExit(f"`autotask-sync {' '.join(args)}` failed (exit {result.code})")
        return result.out

    async def prepare(self) -> None:
        say("database migrations and Kafka topics")
        await self.cli("migrate")
        await self.cli("topics", "ensure", "--partitions", "6")

    async def add_simulated_tenants(self, stack: contextlib.AsyncExitStack) -> None:
        scale = SCALES[self.args.scale]
        for n in range(1, self.args.connections + 1):
            config = SimulatorConfig(
                seed=SEED + n,
                ticket_notes=scale["tickets"],
                callouts=CalloutConfig(retry_delay=timedelta(seconds=2)),
                faults=FaultConfig(callout_drop_rate=self.args.drop_rate),
                **scale,
            )
            sim = await stack.enter_async_context(run_simulator(config))
            tenant = Tenant(f"tenant{n}", sim=sim)
            self.tenants.append(tenant)
            say(
                f"simulated tenant {tenant.name}",
                f"   {sim.base_url}: {scale['companies']:,} companies, {scale['contacts']:,} "
                f"contacts, {scale['configuration_items']:,} configuration items, "
                f"{scale['tickets']:,} tickets and about as many notes\n"
                f"   $ autotask-sync connections add {tenant.name} --username {sim.username} "
                "--stdin",
            )
            await self.cli(
                "connections", "add", tenant.name, "--username", sim.username,
                "--zone-lookup-url", sim.zone_lookup_url, "--stdin",
                stdin=f"{sim.secret}\n{sim.integration_code}\n",
            )  # fmt: skip

    async def start_services(self, *, gateway_port: int | None = None) -> None:
        say("services (real processes)")
        self.gateway = await self.deployment.start("webhook_gateway", port=gateway_port)
        self.deployment.extra_env.setdefault("AUTOTASK_SYNC_GATEWAY_PUBLIC_URL", self.gateway.url)
        self.provisioner = await self.deployment.start("provisioner")
        self.worker = await self.deployment.start("sync_worker")
        print(f"   {'callouts':<16} {self.gateway.url}/v1/callouts/...")
        for service in (self.gateway, self.provisioner, self.worker):
            print(f"   {service.name:<16} {service.ops_url}/metrics  (log: {service.log_path})")

    async def wait_for_webhooks(self) -> None:
        say("webhooks registered by the provisioner")
        sims = [t.sim for t in self.tenants if t.sim is not None]
        wanted = len(WEBHOOK_ENTITIES) * len(sims)
        deadline = time.monotonic() + 120
        while sims and time.monotonic() < deadline:
            ready = sum(
                1
                for sim in sims
                for hook in sim.state.webhook_list()
                if hook.get("isActive") and hook.get("isReady")
            )
            if ready >= wanted:
                break
            await asyncio.sleep(0.5)
        if not sims:  # real tenant: the provisioner's first pass is its start-up
            await asyncio.sleep(10)
        await self.cli("provision", "status", "--all")

    async def backfill(self) -> None:
        say("backfill (the first load of every connection)")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AUTOTASK_SYNC_")},
            **self.deployment.env(),
            "AUTOTASK_SYNC_LOG_LEVEL": "WARNING",
        }
        for tenant in self.tenants:
            # The terminal stays attached so the progress bars show.
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cli", "backfill", "--connection", tenant.name, env=env
            )
            if await process.wait() != 0:
                raise SystemExit(f"the backfill of {tenant.name} failed")

    async def churn(self) -> None:
        duration, rate = self.args.duration, self.args.rate
        say(
            f"change generator: {rate:g} changes/s per tenant for {duration:g} s",
            f"   {self.args.drop_rate:.0%} of callouts are dropped by Autotask (the simulator); "
            f"the Tickets webhook of {self.tenants[0].name} is deactivated half-way",
        )
        sims = [t.sim for t in self.tenants if t.sim is not None]
        for sim in sims:
            sim.start_changes(rate, duration=timedelta(seconds=duration), seed=SEED)
        ends = time.monotonic() + duration
        await asyncio.sleep(duration / 2)
        first = sims[0]
        hook = first.state.webhook_list("TicketWebhooks")[0]
        first.state.webhooks.deactivate("TicketWebhooks", hook["id"], "auto")
        self.note(f"Autotask deactivated the Tickets webhook of {self.tenants[0].name}")
        healed_by = time.monotonic() + 60
        while time.monotonic() < healed_by:
            current = {h["id"]: h for h in first.state.webhook_list("TicketWebhooks")}
            if current.get(hook["id"], {}).get("isActive"):
                self.note("the provisioner reactivated it and asked for a catch-up sweep")
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(max(0.0, ends - time.monotonic()))
        for sim in sims:
            await sim.stop_changes()
        for sim in sims:
            await sim.wait_for_callouts(max_wait=timedelta(seconds=60))
        self.note("changes stopped; waiting for the worker to finish")
        await self.wait_idle()

    async def watch(self) -> None:
        """Real mode: let real changes flow for ``--duration`` seconds."""
        assert self.gateway is not None
        say(f"watching real changes for {self.args.duration:g} s (make some in Autotask now)")
        ends = time.monotonic() + self.args.duration
        while time.monotonic() < ends:
            await asyncio.sleep(min(10.0, max(0.0, ends - time.monotonic())))
            metrics = await Metrics.scrape(self.gateway)
            accepted = metrics.total("autotask_sync_gateway_requests_total", outcome="accepted")
            self.note(f"{accepted:,.0f} callouts accepted so far")
        await self.wait_idle()

    async def wait_idle(self) -> None:
        """Until the worker has nothing in flight and no lag for a few seconds (at most 60 s)."""
        assert self.worker is not None
        deadline = time.monotonic() + 60
        quiet = 0
        while time.monotonic() < deadline and quiet < 3:
            metrics = await Metrics.scrape(self.worker)
            busy = metrics.total("autotask_sync_worker_in_flight_callouts") + metrics.total(
                "autotask_sync_worker_consumer_lag"
            )
            quiet = quiet + 1 if busy == 0 else 0
            await asyncio.sleep(2)

    async def quick_sync(self) -> None:
        say(
            "one quick sync per connection (it repairs what the webhooks missed), then the id "
            "sweep (deletes of companies and contacts have no delete log: a dropped Delete "
            "callout is only found by it)"
        )
        for tenant in self.tenants:
            await self.cli("sweep", "--connection", tenant.name)
            await self.cli("sweep", "--ids", "--connection", tenant.name)

    # --- the report ---------------------------------------------------------------------------
    async def report(self) -> dict[str, Any]:
        assert self.gateway is not None
        assert self.worker is not None
        assert self.provisioner is not None
        scraped = {
            "gateway": await Metrics.scrape(self.gateway),
            "worker": await Metrics.scrape(self.worker),
            "provisioner": await Metrics.scrape(self.provisioner),
        }
        source = "simulator" if all(t.sim is not None for t in self.tenants) else "tenant"
        report: dict[str, Any] = {"source": source, "connections": {}, "all_equal": True}
        db = await connect(self.deployment.dsn)
        try:
            for tenant in self.tenants:
                entry = await connection_report(db, tenant, scraped)
                report["connections"][tenant.name] = entry
                report["all_equal"] = report["all_equal"] and entry["mirror_equals_source"]
        finally:
            await db.close()
        report["wall_seconds"] = round(time.monotonic() - self.started, 1)
        return report


async def connection_report(
    db: asyncpg.Connection, tenant: Tenant, scraped: dict[str, Metrics]
) -> dict[str, Any]:
    """What one connection received, spent, repaired, and whether its mirror is exact."""
    name, sim = tenant.name, tenant.sim
    gateway, worker, provisioner = scraped["gateway"], scraped["worker"], scraped["provisioner"]
    outcomes = {
        labels["outcome"]: value
        for metric, labels, value in gateway.samples
        if metric == "autotask_sync_gateway_requests_total"
        and labels.get("route") == "callout"
        and labels.get("connection") == name
    }
    callouts = worker.total("autotask_sync_worker_callouts_total", connection=name)
    fetch_calls = worker.total("autotask_sync_worker_api_calls_total", connection=name)
    comparison: dict[str, dict[str, int]] = {}
    equal = True
    for entity in REGISTRY:
        mirrored = await live_rows(db, entity, name)
        truth = await tenant.truth(entity)
        missing = len(truth.keys() - mirrored.keys())
        phantom = len(mirrored.keys() - truth.keys())
        stale = sum(1 for i in truth.keys() & mirrored.keys() if truth[i] != mirrored[i])
        deleted = await db.fetchval(
            f"SELECT count(*) FROM {entity.mirror_table} WHERE connection = $1 "  # noqa: S608 - registry names
            "AND deleted_at IS NOT NULL",
            name,
        )
        comparison[entity.rest_name] = {
            "source": len(truth),
            "mirror": len(mirrored),
            "missing": missing,
            "phantom": phantom,
            "stale": stale,
            "deleted_marked": int(deleted),
        }
        equal = equal and missing == phantom == stale == 0
    repaired = await db.fetchval(
        "SELECT coalesce(sum(repaired), 0) FROM sync_runs WHERE connection = $1", name
    )
    if sim is not None:
        api_calls = sum(sim.state.requests.by_endpoint.values())
        dispatched: dict[str, int] = dict(sim.state.dispatcher.counters)
    else:  # what this deployment's services spent (commands not included)
        api_calls = int(
            sum(
                m.total("autotask_sync_autotask_requests_total", connection=name)
                for m in (worker, provisioner)
            )
        )
        dispatched = {}
    p50 = worker.quantile("autotask_sync_worker_end_to_end_seconds", 0.5, connection=name)
    p99 = worker.quantile("autotask_sync_worker_end_to_end_seconds", 0.99, connection=name)
    healed = sum(
        provisioner.total("autotask_sync_provisioner_heal_actions_total", connection=name, action=a)
        for a in HEALS
    )
    return {
        "callouts_sent_by_autotask": dispatched.get("sent"),
        "callouts_dropped_by_autotask": dispatched.get("dropped"),
        "callouts_received": int(sum(outcomes.values())),
        "callouts_accepted": int(sum(outcomes.get(k, 0) for k in ACCEPTED)),
        "callouts_by_outcome": {k: int(v) for k, v in sorted(outcomes.items())},
        "callouts_processed_by_worker": int(callouts),
        "entities": comparison,
        "api_calls_total": api_calls,
        "worker_fetch_calls": int(fetch_calls),
        "worker_fetch_calls_per_1000_callouts": (
            round(1000 * fetch_calls / callouts, 1) if callouts else None
        ),
        "repaired_by_sweeps": int(repaired),
        "webhooks_healed": int(healed),
        "end_to_end_latency_ms": {
            "p50": round(p50 * 1000) if p50 is not None else None,
            "p99": round(p99 * 1000) if p99 is not None else None,
        },
        "mirror_equals_source": equal,
    }


def render(report: dict[str, Any]) -> str:
    """The report as people read it."""
    source = report["source"]
    lines = []
    for name, c in report["connections"].items():
        latency = c["end_to_end_latency_ms"]
        sent = c["callouts_sent_by_autotask"]
        by_autotask = (
            f"{sent:,} sent by Autotask ({c['callouts_dropped_by_autotask']:,} more dropped), "
            if sent is not None
            else ""
        )
        others = ", ".join(
            f"{n:,} {outcome}"
            for outcome, n in sorted(c["callouts_by_outcome"].items())
            if outcome != "accepted"
        )
        lines += [
            f"connection {name}",
            f"   callouts: {by_autotask}{c['callouts_received']:,} received by the gateway, "
            f"{c['callouts_accepted']:,} accepted" + (f" ({others})" if others else ""),
            f"   API calls: {c['api_calls_total']:,} in all; the worker's fetches: "
            f"{c['worker_fetch_calls']:,} for {c['callouts_processed_by_worker']:,} callouts "
            f"({c['worker_fetch_calls_per_1000_callouts']} per 1,000 callouts)",
            f"   repaired by sweeps: {c['repaired_by_sweeps']:,} rows (changes no callout "
            f"reported); webhooks healed: {c['webhooks_healed']}",
            "   end-to-end latency (callout accepted -> row committed, event acked; the "
            f"worker's histogram): p50 {latency['p50']} ms, p99 {latency['p99']} ms",
            f"   {'entity':<20}{source:>10} {'mirror':>8} {'missing':>8} {'phantom':>8} "
            f"{'stale':>6} {'deleted':>8}",
        ]
        for entity, e in c["entities"].items():
            lines.append(
                f"   {entity:<20}{e['source']:>10,} {e['mirror']:>8,} {e['missing']:>8} "
                f"{e['phantom']:>8} {e['stale']:>6} {e['deleted_marked']:>8,}"
            )
        lines.append(f"   mirror equals {source}: {'yes' if c['mirror_equals_source'] else 'NO'}")
    lines.append(
        f"\nmirror equals {source}: {'yes' if report['all_equal'] else 'NO'} "
        f"(every entity compared in full, deletes included; {report['wall_seconds']} s)"
    )
    return "\n".join(lines)


def _demo_env() -> dict[str, str]:
    return {
        "AUTOTASK_SYNC_PRODUCTION_MODE": "false",  # the gateway listens on loopback http
        "AUTOTASK_SYNC_WEBHOOK_ENTITIES": ",".join(WEBHOOK_ENTITIES),
        "AUTOTASK_SYNC_LOG_LEVEL": "INFO",
        "AUTOTASK_SYNC_BACKFILL_ON_FIRST_LOAD": "false",  # the demo backfills itself, visibly
        "AUTOTASK_SYNC_SWEEP_INTERVAL": "30s",
        "AUTOTASK_SYNC_PROVISIONER_INTERVAL": "30s",
        "AUTOTASK_SYNC_PROVISIONER_EVENT_COALESCE": "2s",
        "AUTOTASK_SYNC_PROVISIONER_DEACTIVATION_WINDOW": "2s",
    }


async def run_simulated(
    args: argparse.Namespace, env: Any, log_dir: Path, started: list[int]
) -> dict[str, Any]:
    """The demo against simulated tenants, in a fresh database of the stack's server; the pids
    of the services it starts are added to ``started``."""
    async with scratch_database(env.database_url, "demo", migrated=False) as dsn:
        return await _run_simulated(args, dsn, env, log_dir, started)


async def _run_simulated(
    args: argparse.Namespace, dsn: str, env: Any, log_dir: Path, started: list[int]
) -> dict[str, Any]:
    deployment = LocalDeployment(
        dsn=dsn,
        bootstrap=env.kafka_bootstrap_servers,
        topic_prefix=f"demo{uuid.uuid4().hex[:6]}",
        secret_key=SecretBox.generate_key(),
        log_dir=log_dir,
        extra_env=_demo_env(),
    )
    demo = Demo(args, deployment)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(deployment.stop)
        await demo.prepare()
        await demo.add_simulated_tenants(stack)
        await demo.start_services()
        started += [s.process.pid for s in deployment.services if s.process is not None]
        await demo.wait_for_webhooks()
        await demo.backfill()
        await demo.churn()
        await demo.quick_sync()
        say("report")
        report = await demo.report()
        print(render(report), flush=True)
        return report


async def run_real(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    """The demo against the real tenant the environment configures (module docstring)."""
    missing = [name for name in REAL_REQUIRED if not os.environ.get(name)]
    missing += [
        name
        for name, setting in (
            ("DATABASE_URL", "database_url"),
            ("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
        )
        if not configured_value(setting)
    ]
    if missing:
        raise SystemExit("AUTOTASK_SYNC_DEMO_REAL=1 also needs: " + ", ".join(missing))
    settings = load_settings(AutotaskSettings)
    deployment = LocalDeployment(
        dsn=database_dsn(settings),
        bootstrap=settings.kafka_bootstrap_servers,
        topic_prefix=settings.topic_prefix,
        secret_key=settings.secret_keys.get_secret_value(),
        log_dir=log_dir,
        extra_env={
            **_demo_env(),
            "AUTOTASK_SYNC_PRODUCTION_MODE": "true",
            **{k: v for k, v in os.environ.items() if k.startswith("AUTOTASK_SYNC_")},
        },
    )
    demo = Demo(args, deployment)
    port_text = os.environ.get("AUTOTASK_SYNC_DEMO_GATEWAY_PORT", "8080")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SystemExit(f"AUTOTASK_SYNC_DEMO_GATEWAY_PORT must be a TCP port, not {port_text!r}")
    port = int(port_text)
    async with AutotaskClient.from_settings(settings) as client:
        demo.tenants.append(Tenant(settings.connection, client=client))
        try:
            await demo.prepare()
            await demo.start_services(gateway_port=port)
            await demo.wait_for_webhooks()
            await demo.backfill()
            await demo.watch()
            await demo.quick_sync()
            say("report")
            report = await demo.report()
            print(render(report), flush=True)
            return report
        finally:
            await deployment.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options (also read by the check that the docs' commands parse)."""
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of changes (60)")
    parser.add_argument("--rate", type=float, default=5.0, help="changes per second per tenant (5)")
    parser.add_argument("--connections", type=int, default=2, help="simulated tenants (2)")
    parser.add_argument(
        "--scale",
        choices=sorted(SCALES),
        default="default",
        help="tenant size: small, default (200 companies, 1,000 contacts, 5,000 tickets), large",
    )
    parser.add_argument(
        "--drop-rate", type=float, default=0.05, help="share of callouts Autotask drops (0.05)"
    )
    parser.add_argument("--report", type=Path, metavar="FILE", help="also write the report as JSON")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.demo", description=__doc__.split("\n")[0]
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.connections < 1 or args.duration <= 0 or args.rate <= 0 or not 0 <= args.drop_rate < 1:
        parser.error("--connections >= 1, --duration > 0, --rate > 0 and 0 <= --drop-rate < 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("WARNING", "console")
    log_dir = Path(tempfile.mkdtemp(prefix="autotask-sync-demo-"))
    report: dict[str, Any] | None = None
    if os.environ.get("AUTOTASK_SYNC_DEMO_REAL"):
        try:
            report = asyncio.run(run_real(args, log_dir))
        except KeyboardInterrupt:
            print("\ninterrupted: stopping everything the demo started", file=sys.stderr)
            return 130
        return _finish(args, report)
    say("local infrastructure")
    stack = DevStack(owned=True)
    started: list[int] = []
    try:
        env = stack.up()
        print(f"   PostgreSQL: {stack.sources['postgres']}; Kafka: {stack.sources['kafka']}")
        started += [p for p in (stack.processes.postgres_pid, stack.processes.kafka_pid) if p]
        report = asyncio.run(run_simulated(args, env, log_dir, started))
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything the demo started", file=sys.stderr)
        return 130
    finally:
        stack.down()
        left = [pid for pid in started if pid_alive(pid)]
        if left:
            say("done", f"   still running after the demo: pids {left} (service logs: {log_dir})")
            report = None
        else:
            say(
                "done",
                f"   everything the demo started has stopped ({len(started)} processes "
                f"checked; service logs: {log_dir})",
            )
    return _finish(args, report)


def _finish(args: argparse.Namespace, report: dict[str, Any] | None) -> int:
    if args.report and report is not None:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
        print(f"   report written to {args.report}")
    return 0 if report is not None and report["all_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
