"""The fault suites' rig: one deployment on servers the module owns, a tenant per scenario.

A module (tests/e2e/test_faults.py, tests/e2e/test_outages.py) starts its own PostgreSQL and
Kafka (so it may really stop them), runs the gateway, the worker and the provisioner as real
processes once, and gives each scenario a fresh simulated tenant under a connection of its own:
scenarios cannot see each other's rows, callouts or events, and only the processes a scenario
kills are restarted (all of them after a scenario failed: the next one starts clean). An
*unattended* scenario restarts nothing at all: every process must come through the fault by
itself, ready again and never in a state Kubernetes would restart it for.

While a scenario runs, a :class:`Watch` samples every service's probes and the backlog (the
table's notes); a :class:`GroupAudit` checks that no worker process left the consumer group
other than by its own stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import aiohttp

from shared.db import apply_migrations, connect
from shared.kafka.admin import consumer_lag
from shared.messages.callout import header_map
from shared.messages.topics import Topics
from shared.secrets import SecretBox
from tests.e2e.harness import ENTITIES, WEBHOOK_ENTITIES
from tests.helpers.clients import truth
from tests.helpers.pipeline import create_topics, mirror_diff, read_topic, replay_mismatch
from tests.helpers.processes import CliResult, LocalDeployment, ServiceProcess
from tests.helpers.servers import Broker, Postgres
from tests.helpers.tenants import store_connection
from tests.helpers.waiting import eventually
from tools.autotask_sim import CalloutConfig, Simulator, SimulatorConfig, run_simulator
from tools.demo import Metrics

EVICTIONS = "autotask_sync_consumer_evictions_total"
"""A worker's count of its removals from the consumer group (absent before it was exported)."""
ABANDONED = (
    "stopped waiting for in-flight messages; they will be redelivered",
    "commit refused during a rebalance",
)
"""Log events of a worker that gave up finished or unfinished work at a revoke or a stop."""
NOT_RECOGNISED = "member_id was not recognized"
"""aiokafka's warning when the coordinator no longer knows a member (noted, not asserted)."""

STEADY_LEAD = timedelta(seconds=5)
"""Changes before the fault of a scenario whose changes run the whole fault (``tail`` set)."""
LIVENESS_RESTART = timedelta(seconds=30)
"""How long /healthz may fail before Kubernetes restarts the pod (deploy/k8s: period 10 s,
failure threshold 3)."""


@dataclass
class Row:
    """One line of the suite's table, and the notes printed below it."""

    scenario: str
    outage_seconds: float = 0.0
    """How long the fault lasted: from its start until the last server was back."""
    sent: int = 0
    accepted: int = 0
    spooled: int = 0
    lost: int = 0
    repaired: int = 0
    api_calls: int = 0
    idle_seconds: float = 0.0
    """From the end of the fault until the pipeline was idle: the spool empty, the group's lag
    0, nothing in flight."""
    recovery_seconds: float = 0.0
    """From the end of the fault until the pipeline was idle and the mirror equalled the
    tenant (after the quick sync every scenario runs, which also finds what no callout
    announces: a note's change to its ticket, notes deleted with their ticket)."""
    failed: bool = False
    notes: str = ""


SOAK = float(os.environ.get("AUTOTASK_SYNC_SOAK", "1"))
"""Each scenario's changes are multiplied by this (``make soak`` sets 10: ten times longer)."""
SOAKING = "AUTOTASK_SYNC_SOAK" in os.environ
"""``make soak`` runs: the long outages run too (tests/e2e/test_outages.py)."""
RESULTS: list[Row] = []
"""Filled by the scenarios; printed at the end of the session (tests/e2e/conftest.py)."""
OBSERVATIONS: list[str] = []
"""Measurements that are not a scenario's, printed with the notes."""


@dataclass
class GroupAudit:
    """Whether every worker process stayed in the consumer group until it was asked to stop.

    An evicted worker (its session or poll interval ran out) counts it in :data:`EVICTIONS`; one
    that gave up on in-flight messages at a revoke or a stop, or whose commit a rebalance
    refused, logs one of :data:`ABANDONED` (its messages are processed twice). Both are counted
    per worker process from the start of a scenario; a worker is scraped before it stops (its
    counter goes with it)."""

    first: dict[Path, float] = field(default_factory=dict)
    last: dict[Path, float] = field(default_factory=dict)
    log_from: dict[Path, int] = field(default_factory=dict)
    workers: dict[Path, ServiceProcess] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    async def follow(self, worker: ServiceProcess, *, new: bool) -> None:
        """Count from now on (``new``: a process started in this scenario, counted from 0)."""
        path = _log_path(worker)
        self.workers[path] = worker
        self.log_from[path] = 0 if new or not path.exists() else path.stat().st_size
        self.first[path] = 0.0 if new else await self._evictions(worker)
        self.last[path] = self.first[path]

    async def scrape(self, worker: ServiceProcess) -> None:
        """Read its eviction count (before it stops, and at the end)."""
        path = _log_path(worker)
        if path in self.workers and worker.running:
            self.last[path] = await self._evictions(worker)

    def findings(self) -> list[str]:
        """What went wrong, one line per worker and kind (empty: nothing)."""
        found = list(self.failures)
        for path, worker in self.workers.items():
            evicted = self.last[path] - self.first[path]
            if evicted:
                found.append(f"{path.stem}: {EVICTIONS} rose by {evicted:g}")
            for event in ABANDONED:
                lines = [line for line in self._new_lines(worker) if event in line]
                if lines:
                    found.append(f"{path.stem}: {len(lines)} x {event!r}, first: {lines[0]}")
        return found

    def noted(self) -> str:
        """The aiokafka warnings worth a note, per worker."""
        counts = {
            path.stem: sum(NOT_RECOGNISED in line for line in self._new_lines(worker))
            for path, worker in self.workers.items()
        }
        shown = ", ".join(f"{name} {count}" for name, count in counts.items() if count)
        return f"{NOT_RECOGNISED!r}: {shown}" if shown else ""

    def _new_lines(self, worker: ServiceProcess) -> list[str]:
        path = _log_path(worker)
        if not path.exists():
            return []
        with path.open("rb") as log:
            log.seek(self.log_from[path])
            return log.read().decode(errors="replace").splitlines()

    async def _evictions(self, worker: ServiceProcess) -> float:
        try:
            return (await Metrics.scrape(worker)).total(EVICTIONS)
        except (aiohttp.ClientError, OSError) as exc:
            self.failures.append(f"{_log_path(worker).stem}: /metrics unreadable ({exc!r})")
            return 0.0


def _log_path(service: ServiceProcess) -> Path:
    assert service.log_path is not None, "rig services log to a file"
    return service.log_path


def label(service: ServiceProcess) -> str:
    """A service process's name in notes and messages: its log file's (``sync_worker-2``)."""
    return _log_path(service).stem


@dataclass
class Rig:
    """The servers, the deployment and its three services (plus workers a scenario adds)."""

    broker: Broker
    postgres: Postgres
    deployment: LocalDeployment
    topics: Topics
    group: str
    gateway: ServiceProcess | None = None
    worker: ServiceProcess | None = None
    provisioner: ServiceProcess | None = None
    extra_workers: list[ServiceProcess] = field(default_factory=list)
    audit: GroupAudit = field(default_factory=GroupAudit)
    scenarios: int = 0
    failed: bool = False
    """A scenario failed: its processes may be stuck, so the next one starts with new ones."""

    @property
    def dsn(self) -> str:
        return self.deployment.dsn

    @property
    def workers(self) -> list[ServiceProcess]:
        """Every running worker process, the rig's own first."""
        every = [self.worker, *self.extra_workers]
        return [w for w in every if w is not None and w.running]

    @property
    def services(self) -> list[ServiceProcess]:
        """Every service process the rig started that runs now."""
        base = [self.gateway, self.provisioner]
        return [s for s in base if s is not None and s.running] + self.workers

    async def start(self) -> None:
        self.gateway = await self.deployment.start("webhook_gateway")
        self.deployment.extra_env["AUTOTASK_SYNC_GATEWAY_PUBLIC_URL"] = self.gateway.url
        self.worker = await self.deployment.start("sync_worker")
        self.provisioner = await self.deployment.start("provisioner")

    async def restart(self, service: ServiceProcess) -> None:
        """Start a killed or stopped service again, on the same port."""
        await service.start(ready=timedelta(seconds=60))

    async def add_worker(self, *, ready: timedelta = timedelta(seconds=120)) -> ServiceProcess:
        """One more worker process in the same consumer group (a replica scaled up), audited."""
        worker = await self.deployment.start("sync_worker", ready=ready)
        self.extra_workers.append(worker)
        await self.audit.follow(worker, new=True)
        return worker

    async def remove_worker(self, worker: ServiceProcess) -> None:
        """Stop an added worker as Kubernetes scales down: SIGTERM, after reading its counts."""
        await self.audit.scrape(worker)
        code = await worker.stop()
        self.extra_workers.remove(worker)
        if code != 0:
            self.audit.failures.append(f"{label(worker)} exited with {code} on SIGTERM")

    async def remove_extra_workers(self) -> None:
        """Back to the rig's one worker (scaled down together, as Kubernetes does)."""
        await asyncio.gather(*(self.remove_worker(w) for w in list(self.extra_workers)))

    async def ensure_running(self) -> None:
        """Whatever a failed scenario left down (or stuck) comes back before the next one."""
        await asyncio.to_thread(self.broker.start)
        await asyncio.to_thread(self.postgres.start)
        for service in (self.gateway, self.worker, self.provisioner):
            if service is not None and self.failed:
                await service.stop()
            if service is not None and not service.running:
                await self.restart(service)
        self.failed = False

    def pids(self) -> dict[str, int | None]:
        """The process id of each of the rig's own services (None: not running)."""
        return {
            label(s): (s.child.pid if s.child is not None and s.running else None)
            for s in (self.gateway, self.worker, self.provisioner)
            if s is not None
        }

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


@contextlib.asynccontextmanager
async def owned_rig(root: Path) -> AsyncIterator[Rig]:
    """A rig (:func:`create_rig`) for one test module, its servers and services stopped after."""
    built = await create_rig(root, uuid.uuid4().hex[:8])
    try:
        yield built
    finally:
        await built.deployment.stop()
        await asyncio.to_thread(built.broker.close)
        await asyncio.to_thread(built.postgres.close)


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
    topics = await create_topics(broker.bootstrap, f"f{unique}", partitions=4)
    group = f"f{unique}-workers"
    deployment = LocalDeployment(
        dsn=postgres.dsn,
        bootstrap=broker.bootstrap,
        topic_prefix=topics.prefix,
        secret_key=SecretBox.generate_key(),
        log_dir=root,
        extra_env={
            "AUTOTASK_SYNC_PRODUCTION_MODE": "false",
            "AUTOTASK_SYNC_WEBHOOK_ENTITIES": WEBHOOK_ENTITIES,
            "AUTOTASK_SYNC_CONSUMER_GROUP": group,
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
    rig = Rig(broker=broker, postgres=postgres, deployment=deployment, topics=topics, group=group)
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
    tail: timedelta | None = None
    """None: the generator makes ``changes`` (times SOAK) changes, the fault starting after a
    third of them. A duration: the generator runs at ``rate`` from :data:`STEADY_LEAD` before
    the fault until ``tail`` after it, however long the fault lasts (changes keep coming the
    whole time)."""
    unattended: bool = False
    """Nothing restarts a service: each process must come through by itself (the same process,
    its /healthz never failing long enough for a liveness restart, ready at the end)."""
    membership: bool = False
    """No worker process leaves the consumer group but by its own stop (:class:`GroupAudit`)."""
    recovery_within: timedelta = timedelta(seconds=90)
    """How long the pipeline may take to be idle again after the fault."""


async def run(rig: Rig, scenario: Scenario) -> Row:
    """Drive changes through the pipeline with the fault, recover, sweep, and check."""
    await rig.ensure_running()
    rig.scenarios += 1
    name = f"s{rig.scenarios}"
    row = Row(scenario.name)
    async with run_simulator(scenario_tenant(100 + rig.scenarios)) as sim:
        await store_connection(rig.dsn, SecretBox([rig.deployment.secret_key]), name, sim)
        try:
            await _drive(rig, scenario, sim, name, row)
        except BaseException:
            row.failed = rig.failed = True
            raise
        finally:
            RESULTS.append(row)
            await rig.remove_extra_workers()
            # The tenant goes away with its simulator: retire it as an operator would, so later
            # scenarios do not spend the worker's and the provisioner's time on it.
            await rig.deployment.cli("connections", "disable", name)
    return row


async def _drive(rig: Rig, scenario: Scenario, sim: Simulator, name: str, row: Row) -> None:
    for args in (
        ("provision", "apply", "--connection", name),
        ("backfill", "--connection", name),
    ):
        result = await _cli_retrying(rig, *args)
        assert result.code == 0, (args, result.out, result.err, rig.logs())
    pids = rig.pids()
    rig.audit = GroupAudit()
    for worker in rig.workers:
        await rig.audit.follow(worker, new=False)
    sim.reset_counters()
    if scenario.tail is None:
        changes = round(scenario.changes * SOAK)
        sim.start_changes(scenario.rate, count=changes, seed=rig.scenarios)
        lead = changes / scenario.rate / 3
    else:
        sim.start_changes(scenario.rate, seed=rig.scenarios)
        lead = STEADY_LEAD.total_seconds()
    async with Watch(rig).running() as watch:
        try:
            await _fault_and_recovery(rig, scenario, sim, name, row, watch=watch, lead=lead)
            if scenario.unattended:
                await _came_through(rig, pids, watch)
        except BaseException:
            row.notes = watch.summary()
            with contextlib.suppress(Exception):  # the figures of the failed scenario, if any
                await _tally(rig, sim, name, row)
            raise
        row.notes = watch.summary()
    await _tally(rig, sim, name, row)
    assert row.lost == 0, (scenario.name, "lost callouts", rig.logs())

    # The change topics rebuild the mirror.
    for entity in ENTITIES:
        topic = rig.topics.changes(entity)
        mismatch = await replay_mismatch(
            rig.deployment.bootstrap, topic, name, truth(sim, entity.rest_name)
        )
        assert not mismatch, f"{scenario.name}: {mismatch}\n{rig.logs()}"

    # The tenant's limits were never exceeded.
    stats = sim.state.requests
    assert max(stats.max_concurrency.values(), default=0) <= 3, stats.max_concurrency
    assert sum(stats.thread_rejections.values()) == 0
    assert stats.hourly_rejections == 0

    # No worker left the group but by its own stop (the added ones stop here, scaled down).
    await rig.remove_extra_workers()
    for worker in rig.workers:
        await rig.audit.scrape(worker)
    noted = rig.audit.noted()
    row.notes = "; ".join(part for part in (row.notes, noted) if part)
    if scenario.membership:
        findings = rig.audit.findings()
        assert not findings, (scenario.name, findings, row.notes, rig.logs())


async def _tally(rig: Rig, sim: Simulator, name: str, row: Row) -> None:
    """The row's counts: callouts sent (every attempt), accepted (2xx'd, once each), spooled
    and lost (accepted and not on the callouts topic), rows repaired, API calls."""
    delivered = {
        entry["body"].encode()
        for entry in sim.state.callout_log
        if isinstance(entry.get("status"), int)
        and 200 <= entry["status"] < 300
        and entry["outcome"] != "deactivation_call"  # the unsigned notice goes to control
    }
    row.sent = sim.state.dispatcher.counters.get("sent", 0)
    row.accepted = len(delivered)
    row.api_calls = sum(sim.state.requests.by_endpoint.values())
    if rig.gateway is not None and rig.gateway.running:
        metrics = await Metrics.scrape(rig.gateway)
        row.spooled = int(
            metrics.total(
                "autotask_sync_gateway_requests_total", outcome="spooled", connection=name
            )
        )
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
    # Every callout Autotask got a 2xx for is on the callouts topic.
    on_topic = {
        m.value
        for m in await read_topic(rig.deployment.bootstrap, rig.topics.callouts)
        if header_map(m.headers).get("connection") == name
    }
    row.lost = len(delivered - on_topic)


async def _fault_and_recovery(
    rig: Rig, scenario: Scenario, sim: Simulator, name: str, row: Row, *, watch: Watch, lead: float
) -> None:
    """The fault after ``lead`` seconds of changes, then until the workers are idle and a quick
    sync (and the id sweep where Autotask dropped callouts) leaves the mirror equal to the
    tenant; the times go to ``row``."""
    await asyncio.sleep(lead)
    watch.fault_starts()
    started = time.monotonic()
    await scenario.inject(rig, sim)
    recovered = time.monotonic()
    watch.fault_ends()
    row.outage_seconds = round(recovered - started, 1)
    if scenario.tail is not None:
        await asyncio.sleep(scenario.tail.total_seconds())
        await sim.stop_changes()
    await sim.state.changes.wait_done()
    await sim.wait_for_callouts(max_wait=timedelta(seconds=90))
    try:
        await _idle(rig, within=scenario.recovery_within)
    except AssertionError as exc:
        raise AssertionError(f"{scenario.name}: {exc}\n{watch.summary()}\n{rig.logs()}") from exc
    row.idle_seconds = round(time.monotonic() - recovered, 1)
    sweeps = [("sweep", "--connection", name)]
    if scenario.lossy:
        sweeps.append(("sweep", "--ids", "--connection", name))
    for sweep in sweeps:
        swept = await _cli_retrying(rig, *sweep)
        assert swept.code == 0, (sweep, swept.out, swept.err, rig.logs())
    diff = await mirror_diff(rig.dsn, name, sim, ENTITIES)
    assert diff == {}, (scenario.name, diff, rig.logs())
    row.recovery_seconds = round(time.monotonic() - recovered, 1)


async def _came_through(rig: Rig, pids: dict[str, int | None], watch: Watch) -> None:
    """Every service is the process it was before the fault, and ready again by itself."""
    assert rig.pids() == pids, (
        "a service process did not survive the fault (nothing may restart it)",
        pids,
        rig.pids(),
        rig.logs(),
    )
    restarted = watch.liveness_restarts()
    assert not restarted, (
        f"/healthz failed for {LIVENESS_RESTART.total_seconds():g} s in a row "
        "(Kubernetes would have restarted the pod)",
        restarted,
        watch.summary(),
    )

    async def ready() -> bool:
        statuses = {label(s): await probe(s, "/readyz") for s in rig.services}
        assert set(statuses.values()) == {"200"}, statuses
        return True

    await eventually(
        ready,
        within=timedelta(seconds=30),
        interval=timedelta(seconds=1),
        what="every service to be ready again after the fault",
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


async def _idle(rig: Rig, *, within: timedelta) -> None:
    """Until the gateway's spool is empty, the group has committed every callout, no worker has
    one in flight and the lag the workers export is 0, twice in a row. The spool's rows and
    the committed offsets are the truth (a worker commits only what is durable); the exported
    lag must agree with them (a worker exports the lag of the partitions it owns, not stale
    figures of ones it lost)."""
    quiet = 0

    async def idle() -> bool:
        nonlocal quiet
        try:
            db = await connect(rig.dsn)
            try:
                spooled = int(await db.fetchval("SELECT count(*) FROM callout_spool"))
            finally:
                await db.close()
            group = await consumer_lag(rig.deployment.bootstrap, rig.group, rig.topics.callouts)
            exported = {}
            for worker in rig.workers:
                metrics = await Metrics.scrape(worker)
                exported[label(worker)] = (
                    metrics.total("autotask_sync_worker_in_flight_callouts"),
                    metrics.total("autotask_sync_worker_consumer_lag"),
                )
        except Exception:
            quiet = 0
            raise
        busy = spooled + sum(group.values()) + sum(a + b for a, b in exported.values())
        quiet = quiet + 1 if busy == 0 else 0
        assert quiet >= 2 or busy == 0, {
            "rows in the spool": spooled,
            "group lag by partition": group,
            "(in flight, lag) by worker": exported,
        }
        return quiet >= 2

    await eventually(
        idle,
        within=within,
        interval=timedelta(seconds=1.5),
        what="an empty spool and idle workers",
    )


async def probe(service: ServiceProcess, path: str) -> str:
    """The status ``path`` answers on the ops port, or why there was none."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(f"{service.ops_url}{path}") as response,
        ):
            return str(response.status)
    except TimeoutError:
        return "timeout"
    except (aiohttp.ClientError, OSError):
        return "down"


@dataclass(frozen=True)
class Sample:
    """The services' probes and the backlog at one moment of a scenario."""

    at: float
    phase: str
    ready: dict[str, str]
    live: dict[str, str]
    lag: float | None
    in_flight: float | None
    spool_rows: float | None


@dataclass
class Watch:
    """Samples every service's /readyz and /healthz, the workers' lag and in-flight callouts
    and the gateway's spool every ``period`` while a scenario runs; ``phase`` says where the
    scenario is (before, fault, after)."""

    rig: Rig
    period: timedelta = timedelta(seconds=2)
    phase: str = "before"
    samples: list[Sample] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    """Per service process that ran through the fault: the share of a core it used meanwhile
    (a client retrying without pause burns a whole one)."""
    _cpu_before: dict[tuple[str, int], float] = field(default_factory=dict, repr=False)

    def fault_starts(self) -> None:
        self.phase = "fault"
        self.started = time.monotonic()
        self._cpu_before = _cpu_seconds(self.rig.services)

    def fault_ends(self) -> None:
        self.phase = "after"
        self.ended = time.monotonic()
        assert self.started is not None, "the fault has not started"
        length = self.ended - self.started
        after = _cpu_seconds(self.rig.services)
        self.cpu = {
            name: (after[name, pid] - used) / length
            for (name, pid), used in self._cpu_before.items()
            if (name, pid) in after and length > 0
        }

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Watch]:
        """Sampling for the block."""
        task = asyncio.create_task(self._sample_until_cancelled(), name="watch")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sample_until_cancelled(self) -> None:
        while True:
            await asyncio.gather(self._sample(), asyncio.sleep(self.period.total_seconds()))

    async def _sample(self) -> None:
        services = self.rig.services
        ready = await asyncio.gather(*(probe(s, "/readyz") for s in services))
        live = await asyncio.gather(*(probe(s, "/healthz") for s in services))
        lag = in_flight = spool_rows = None
        with contextlib.suppress(Exception):
            scraped = [await Metrics.scrape(w) for w in self.rig.workers]
            lag = sum(m.total("autotask_sync_worker_consumer_lag") for m in scraped)
            in_flight = sum(m.total("autotask_sync_worker_in_flight_callouts") for m in scraped)
        if self.rig.gateway is not None and self.rig.gateway.running:
            with contextlib.suppress(Exception):
                gateway = await Metrics.scrape(self.rig.gateway)
                spool_rows = gateway.total("autotask_sync_gateway_spool_rows")
        # A worker stopped on purpose meanwhile is left out, not counted as down.
        kept = [i for i, service in enumerate(services) if service.running]
        self.samples.append(
            Sample(
                at=time.monotonic(),
                phase=self.phase,
                ready={label(services[i]): ready[i] for i in kept},
                live={label(services[i]): live[i] for i in kept},
                lag=lag,
                in_flight=in_flight,
                spool_rows=spool_rows,
            )
        )

    def liveness_restarts(self) -> dict[str, float]:
        """Services whose /healthz failed for :data:`LIVENESS_RESTART` in a row: how long."""
        failing_since: dict[str, float] = {}
        longest: dict[str, float] = {}
        for sample in self.samples:
            for name, status in sample.live.items():
                if status == "200":
                    failing_since.pop(name, None)
                    continue
                since = failing_since.setdefault(name, sample.at)
                longest[name] = max(longest.get(name, 0.0), sample.at - since)
        limit = LIVENESS_RESTART.total_seconds()
        return {name: round(span, 1) for name, span in longest.items() if span >= limit}

    def summary(self) -> str:
        """What the probes said during the fault, the backlog's peaks, and when every service
        was ready again."""
        fault = [s for s in self.samples if s.phase == "fault"]
        parts = []
        if self.cpu:
            shares = ", ".join(f"{name} {share:.0%}" for name, share in sorted(self.cpu.items()))
            parts.append(f"CPU during the fault: {shares}")
        for kind in ("ready", "live") if fault else ():
            seen: dict[str, set[str]] = {}
            for sample in fault:
                for name, status in getattr(sample, kind).items():
                    seen.setdefault(name, set()).add(status)
            shown = ", ".join(f"{n} {'/'.join(sorted(v))}" for n, v in sorted(seen.items()))
            path = "/readyz" if kind == "ready" else "/healthz"
            parts.append(f"{path} during the fault: {shown}")
        for name, unit in (("lag", "lag"), ("in_flight", "in flight"), ("spool_rows", "spool")):
            values = [getattr(s, name) for s in self.samples if getattr(s, name) is not None]
            if values:
                parts.append(f"max {unit} {max(values):g}")
        after = [s for s in self.samples if s.phase == "after"]
        if fault and after and self.ended is not None:
            back = next((s for s in after if set(s.ready.values()) == {"200"}), None)
            parts.append(
                f"all ready {back.at - self.ended:.0f} s after the fault"
                if back is not None
                else "not all ready again while watched"
            )
        return "; ".join(parts)


def _cpu_seconds(services: list[ServiceProcess]) -> dict[tuple[str, int], float]:
    """CPU time (user and system) each running service process has used, by label and pid."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for service in services:
        if service.child is None:
            continue
        try:
            stat = Path(f"/proc/{service.child.pid}/stat").read_text()
        except OSError:
            continue  # it exited meanwhile
        # The fields after the command name (which may hold spaces), from the 3rd on.
        fields = stat.rpartition(")")[2].split()
        used[label(service), service.child.pid] = (int(fields[11]) + int(fields[12])) / tick
    return used


def table(rows: list[Row]) -> str:
    header = (
        "scenario",
        "outage s",
        "sent",
        "accepted",
        "spooled",
        "lost",
        "repaired",
        "API calls",
        "idle s",
        "recovery s",
    )
    cells = [header] + [
        (
            r.scenario + (" (failed)" if r.failed else ""),
            f"{r.outage_seconds:.1f}",
            str(r.sent),
            str(r.accepted),
            str(r.spooled),
            str(r.lost),
            str(r.repaired),
            str(r.api_calls),
            f"{r.idle_seconds:.1f}",
            f"{r.recovery_seconds:.1f}",
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


def notes(rows: list[Row]) -> str:
    """The rows' notes, one scenario a line, then :data:`OBSERVATIONS` (empty: none)."""
    return "\n".join([f"{r.scenario}: {r.notes}" for r in rows if r.notes] + OBSERVATIONS)
