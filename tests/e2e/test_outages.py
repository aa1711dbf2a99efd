"""Long outages, rebalances and scaling: the pipeline resumes by itself and keeps its promises.

The fault suite (test_faults.py) stops its servers for seconds; operators see Kafka or
PostgreSQL away for minutes, brokers restarting while the workers' group rebalances, and worker
replicas scaled out and in under load. Each scenario here keeps changes (and so callouts)
arriving for the whole fault, and restarts no service process: every one must come through by
itself, never failing /healthz long enough for Kubernetes to restart it, ready again at the end.
Then the usual check (tests/e2e/faults.py): the pipeline idle (the spool empty, the group's
lag 0), the mirror equal to the tenant after a quick sync, every callout answered 2xx on the
callouts topic, the change topics rebuilding the mirror. The group scenarios also check that no
worker was evicted from the consumer group or gave up on in-flight messages.

``make test`` runs Kafka and PostgreSQL away for 100 s, a broker restart during a rebalance and
scaling from one worker to three and back; ``make soak`` adds five-minute outages and both
servers away together. One more test measures how often each service tries to reach Kafka while
its port accepts and drops connections (tests/helpers/tarpit.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient

from tests.e2e.faults import (
    OBSERVATIONS,
    SOAKING,
    Inject,
    Rig,
    Scenario,
    label,
    owned_rig,
    run,
)
from tests.helpers.tarpit import Knocks, Tarpit
from tests.helpers.waiting import eventually
from tools.autotask_sim import Simulator

pytestmark = [pytest.mark.e2e]

RATE = 6.0
"""Changes a second while a fault lasts (about nine callouts a second)."""
TAIL = timedelta(seconds=5)
"""Changes keep coming this long after the fault."""
RECOVERY = timedelta(seconds=180)
"""How long the pipeline may take to be idle after a fault (a long one leaves a backlog)."""
SOAK_ONLY = "a long outage: runs under `make soak` (AUTOTASK_SYNC_SOAK set)"

MAX_ATTEMPTS_PER_SECOND = 20.0
"""Connection attempts a second one service process may make while Kafka is away. A client
with a reconnect backoff makes a few; one without makes thousands."""
TARPIT_SETTLE = timedelta(seconds=3)
"""Attempts in the first moments after Kafka went away are not counted (a backoff starts low)."""
TARPIT_WINDOW = timedelta(seconds=15)
SCALED_OUT = timedelta(seconds=15)
"""How long three workers share the load before two are stopped."""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    async with owned_rig(Path(tmp_path_factory.mktemp("outages"))) as built:
        yield built


# --- the faults ------------------------------------------------------------------------------
def kafka_away(length: timedelta) -> Inject:
    async def inject(rig: Rig, _sim: Simulator) -> None:
        await asyncio.to_thread(rig.broker.stop)
        await asyncio.sleep(length.total_seconds())  # the gateway spools meanwhile
        await asyncio.to_thread(rig.broker.start)

    inject.__name__ = f"kafka_away_{length.total_seconds():.0f}s"
    return inject


def postgres_away(length: timedelta) -> Inject:
    async def inject(rig: Rig, _sim: Simulator) -> None:
        await asyncio.to_thread(rig.postgres.stop)
        await asyncio.sleep(length.total_seconds())  # callouts wait on Kafka meanwhile
        await asyncio.to_thread(rig.postgres.start)

    inject.__name__ = f"postgres_away_{length.total_seconds():.0f}s"
    return inject


async def both_away(rig: Rig, _sim: Simulator) -> None:
    """Kafka away two minutes, PostgreSQL away two minutes from half a minute in: for a minute
    and a half the gateway can store nothing and answers 503 (Autotask gives up on some
    callouts: the sweeps find those changes)."""
    await asyncio.to_thread(rig.broker.stop)
    await asyncio.sleep(30)
    await asyncio.to_thread(rig.postgres.stop)
    await asyncio.sleep(90)
    await asyncio.to_thread(rig.broker.start)
    await asyncio.sleep(30)
    await asyncio.to_thread(rig.postgres.start)


async def broker_restart_during_rebalance(rig: Rig, _sim: Simulator) -> None:
    """A second worker joins; while the group rebalances the broker stops, and comes back.

    A rebalance can be over within a few milliseconds (nothing in flight to hand over), too
    quick to catch: then the second worker stops and joins again, up to three times."""
    for _ in range(3):
        joining = asyncio.create_task(rig.add_worker(), name="second worker")
        try:
            caught = await _rebalancing(rig)
            if caught:
                await asyncio.to_thread(rig.broker.stop)
                await asyncio.sleep(10)
                await asyncio.to_thread(rig.broker.start)
        finally:
            second = await joining
        if caught:
            await _group_settles(rig, members=2)
            return
        await rig.remove_worker(second)
        await _group_settles(rig, members=1)
    raise AssertionError(f"the group {rig.group} was never seen rebalancing (three joins)")


async def scale_out_and_in(rig: Rig, _sim: Simulator) -> None:
    """One worker becomes three, works as three for a while, and two stop together (SIGTERM,
    as Kubernetes scales a Deployment down)."""
    added = await asyncio.gather(rig.add_worker(), rig.add_worker())
    await _group_settles(rig, members=3)
    await asyncio.sleep(SCALED_OUT.total_seconds())
    await asyncio.gather(*(rig.remove_worker(worker) for worker in added))
    await _group_settles(rig, members=1)


# --- the consumer group, as the broker sees it ----------------------------------------------
REBALANCING = frozenset({"PreparingRebalance", "CompletingRebalance"})


class GroupWatch:
    """The consumer group as its coordinator describes it, asked over one admin connection
    (a few milliseconds a question)."""

    def __init__(self, rig: Rig) -> None:
        self._group = rig.group
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=rig.deployment.bootstrap, client_id="test-group-watch"
        )
        self._coordinator: int | None = None

    async def __aenter__(self) -> GroupWatch:
        await self._admin.start()
        self._coordinator = await self._admin.find_coordinator(self._group)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._admin.close()

    async def state(self) -> tuple[str, int]:
        """The group's state and member count."""
        [response] = await self._admin.describe_consumer_groups(
            [self._group], group_coordinator_id=self._coordinator
        )
        _error, _group_id, state, _protocol_type, _protocol, members, *_ = response.groups[0]
        return str(state), len(members)


async def _rebalancing(rig: Rig) -> bool:
    """Until the group rebalances (True) or is stable with two members (False: the rebalance
    came and went between two questions)."""
    async with GroupWatch(rig) as group:
        deadline = asyncio.get_running_loop().time() + 90
        while asyncio.get_running_loop().time() < deadline:
            state, members = await group.state()
            if state in REBALANCING:
                return True
            if (state, members) == ("Stable", 2):
                return False
    raise AssertionError(f"the group {rig.group} neither rebalanced nor took a second member")


async def _group_settles(rig: Rig, *, members: int) -> None:
    async def settled() -> bool:
        async with GroupWatch(rig) as group:
            found = await group.state()
        assert found == ("Stable", members), found
        return True

    await eventually(
        settled,
        within=timedelta(seconds=90),
        interval=timedelta(milliseconds=500),
        what=f"the group {rig.group} to be stable with {members} member(s)",
    )


# --- the scenarios ---------------------------------------------------------------------------
def outage(
    name: str,
    inject: Inject,
    length: timedelta,
    *,
    soak: bool = False,
    lossy: bool = False,
    membership: bool = False,
) -> Any:
    """A scenario with changes arriving the whole time and nothing restarted, its timeout
    (the fault, the recovery and three minutes) and, for a long one, the soak-only skip."""
    scenario = Scenario(
        name,
        inject,
        rate=RATE,
        tail=TAIL,
        lossy=lossy,
        unattended=True,
        membership=membership,
        recovery_within=RECOVERY,
    )
    budget = length + RECOVERY + timedelta(minutes=3)
    marks = [pytest.mark.timeout(round(budget.total_seconds()))]
    if soak:
        marks.append(pytest.mark.skipif(not SOAKING, reason=SOAK_ONLY))
    return pytest.param(scenario, marks=marks, id=inject.__name__)


HUNDRED_SECONDS = timedelta(seconds=100)
FIVE_MINUTES = timedelta(minutes=5)

SCENARIOS = [
    outage("Kafka away 100 s", kafka_away(HUNDRED_SECONDS), HUNDRED_SECONDS),
    outage("PostgreSQL away 100 s", postgres_away(HUNDRED_SECONDS), HUNDRED_SECONDS),
    outage(
        "broker restart during a rebalance",
        broker_restart_during_rebalance,
        timedelta(minutes=1),
        membership=True,
    ),
    outage("workers scaled 1 -> 3 -> 1", scale_out_and_in, timedelta(minutes=2), membership=True),
    outage("Kafka away 5 min", kafka_away(FIVE_MINUTES), FIVE_MINUTES, soak=True),
    outage("PostgreSQL away 5 min", postgres_away(FIVE_MINUTES), FIVE_MINUTES, soak=True),
    outage(
        "Kafka and PostgreSQL away 2 min, overlapping",
        both_away,
        timedelta(minutes=3),
        soak=True,
        lossy=True,
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_the_pipeline_resumes_by_itself(rig: Rig, scenario: Scenario) -> None:
    row = await run(rig, scenario)
    assert row.lost == 0


def kafka_port_drops_connections(measured: list[Knocks]) -> Inject:
    """Kafka stops and its port is taken by a :class:`Tarpit` (every connection accepted and
    dropped) for :data:`TARPIT_WINDOW` after :data:`TARPIT_SETTLE`; what it counted goes to
    ``measured``."""

    async def inject(rig: Rig, _sim: Simulator) -> None:
        owners = {label(s): s.child.pid for s in rig.services if s.child is not None}
        await asyncio.to_thread(rig.broker.stop)
        try:
            with Tarpit(rig.broker.port, owners=owners) as tarpit:
                await asyncio.sleep(TARPIT_SETTLE.total_seconds())
                tarpit.reset()
                await asyncio.sleep(TARPIT_WINDOW.total_seconds())
                measured.append(tarpit.knocks())
        finally:
            await asyncio.to_thread(rig.broker.start)
        seen = measured[-1].summary(sorted(owners))
        OBSERVATIONS.append(
            f"Kafka's port dropping connections, {TARPIT_WINDOW.total_seconds():g} s: {seen}"
        )

    inject.__name__ = "kafka_port_drops_connections"
    return inject


@pytest.mark.timeout(420)
async def test_services_back_off_while_the_kafka_port_drops_connections(rig: Rig) -> None:
    """While Kafka's port accepts and drops every connection under load, no service process
    tries more than :data:`MAX_ATTEMPTS_PER_SECOND` times a second; and the pipeline comes
    through as from any outage."""
    measured: list[Knocks] = []
    scenario = Scenario(
        "Kafka's port dropping connections",
        kafka_port_drops_connections(measured),
        rate=RATE,
        tail=TAIL,
        unattended=True,
        recovery_within=RECOVERY,
    )
    failure: AssertionError | None = None
    try:
        await run(rig, scenario)
    except AssertionError as exc:
        failure = exc  # reported with the measurement, which is this test's subject
    assert measured, failure
    [knocks] = measured
    rates = {name: round(rate, 1) for name, rate in knocks.rates().items()}
    assert max(rates.values(), default=0.0) <= MAX_ATTEMPTS_PER_SECOND, (
        f"connection attempts a second while Kafka is away: {rates} "
        f"(at most {MAX_ATTEMPTS_PER_SECOND:g} a process)",
        knocks.summary(sorted(rates)),
        f"the end-to-end check: {failure or 'passed'}",
    )
    if failure is not None:
        raise failure
