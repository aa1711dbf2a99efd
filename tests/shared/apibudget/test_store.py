"""The shared API budget over real PostgreSQL: several coordinators stand for several processes.

Each :class:`SharedCoordinator` has its own holder identity and pool, exactly as two replicas
would; the limits they keep are checked in the database and by counting what they hold.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import timedelta

import asyncpg
import pytest
from pydantic import SecretStr

from cli.checks import check, render_text
from shared.apibudget import CoordinatorConfig, SharedCoordinator
from shared.apibudget import store as rows
from shared.apibudget.lockout import SharedLockout
from shared.autotask import (
    Coordination,
    LocalCoordinator,
    LockoutPolicy,
    Priority,
    SystemClock,
    ThresholdInfo,
)
from shared.connections.catalogue import ConnectionCatalogue
from shared.errors import DeadlineExceededError
from shared.metrics import AUTOTASK_SLOT_FALLBACK
from shared.settings import AutotaskSettings
from tests.helpers.clients import connection_for
from tests.helpers.waiting import eventually
from tools.autotask_sim import SimulatorConfig, run_simulator
from tools.dev_infra.databases import scratch_database

pytestmark = pytest.mark.integration

CLOCK = SystemClock()
FAST = CoordinatorConfig(
    slot_ttl=timedelta(seconds=1),
    sync_interval=timedelta(milliseconds=100),
    reconnect_interval=timedelta(milliseconds=200),
    min_refresh_interval=timedelta(seconds=5),
    lockout=LockoutPolicy(first=timedelta(seconds=1), longest=timedelta(seconds=3)),
)
PATIENT = replace(FAST, lockout=LockoutPolicy())
"""Pauses of minutes: what lifts one in a test is a clear, never the cool-down running out."""
MakeCoordinator = Callable[..., Awaitable[SharedCoordinator]]


@pytest.fixture(scope="module")
async def budget_database(database_url: str) -> AsyncIterator[str]:
    """One migrated database for the module (each test starts from empty budget tables)."""
    async with scratch_database(database_url, "t") as dsn:
        yield dsn


@pytest.fixture
async def migrated_database(budget_database: str) -> str:
    db = await asyncpg.connect(budget_database)
    try:
        await db.execute(
            "TRUNCATE api_slots, api_budget, api_calls, connection_health, connections"
        )
    finally:
        await db.close()
    return budget_database


@pytest.fixture
async def coordinators(migrated_database: str) -> AsyncIterator[MakeCoordinator]:
    """``await make(config=..., dsn=...)``: a started coordinator, stopped after the test."""
    async with AsyncExitStack() as stack:

        async def make(
            config: CoordinatorConfig = FAST, dsn: str = migrated_database
        ) -> SharedCoordinator:
            return await stack.enter_async_context(SharedCoordinator(dsn, config))

        yield make


def far() -> float:
    return CLOCK.monotonic() + 30


async def _in_use(dsn: str, connection: str = "acme", endpoint: str = "Tickets") -> int:
    db = await asyncpg.connect(dsn)
    try:
        return await rows.slots_in_use(db, connection=connection, endpoint=endpoint)
    finally:
        await db.close()


async def _no_slots_in_use(dsn: str) -> bool:
    return await _in_use(dsn) == 0


async def _listeners(dsn: str, count: int) -> bool:
    """Whether ``count`` sessions of this database are listening (their last statement)."""
    db = await asyncpg.connect(dsn)
    try:
        listening = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN %'"
        )
    finally:
        await db.close()
    return bool(listening == count)


# --- slots -----------------------------------------------------------------------------------
async def test_processes_together_never_hold_more_than_the_capacity(
    coordinators: MakeCoordinator, migrated_database: str
):
    parts = [(await coordinators()).bind("acme", clock=CLOCK) for _ in range(3)]
    holding = peak = done = 0

    async def call(part: Coordination) -> None:
        nonlocal holding, peak, done
        lease = await part.slots.acquire(
            "Tickets", capacity=3, priority=Priority.WEBHOOK, deadline=far()
        )
        holding += 1
        peak = max(peak, holding)
        await asyncio.sleep(0.01)
        holding -= 1
        part.slots.release(lease)
        done += 1

    await asyncio.gather(*(call(parts[n % 3]) for n in range(30)))
    assert done == 30
    assert peak == 3  # used fully, never exceeded
    # Releases are sent in the background: they all land.
    await eventually(lambda: _no_slots_in_use(migrated_database), within=timedelta(seconds=3))


async def test_a_release_wakes_a_waiter_in_another_process_at_once(
    coordinators: MakeCoordinator, migrated_database: str
):
    slow_polls = CoordinatorConfig(poll_min=timedelta(seconds=60), poll_max=timedelta(seconds=60))
    holder = (await coordinators(slow_polls)).bind("acme", clock=CLOCK)
    waiter = (await coordinators(slow_polls)).bind("acme", clock=CLOCK)
    lease = await holder.slots.acquire(
        "Tickets", capacity=1, priority=Priority.WEBHOOK, deadline=far()
    )
    # Both LISTEN by now.
    await eventually(lambda: _listeners(migrated_database, 2), within=timedelta(seconds=10))
    waiting = asyncio.create_task(
        waiter.slots.acquire("Tickets", capacity=1, priority=Priority.WEBHOOK, deadline=far())
    )
    await asyncio.sleep(0.2)
    assert not waiting.done()
    released = time.monotonic()
    holder.slots.release(lease)
    second = await asyncio.wait_for(waiting, 20)
    assert time.monotonic() - released < 15  # NOTIFY, not the 60 s poll (margin for load)
    assert second.shared
    waiter.slots.release(second)


async def test_a_waiter_gives_up_at_its_deadline(coordinators: MakeCoordinator):
    first = (await coordinators()).bind("acme", clock=CLOCK)
    other = (await coordinators()).bind("acme", clock=CLOCK)
    lease = await first.slots.acquire(
        "Tickets", capacity=1, priority=Priority.SWEEP, deadline=far()
    )
    with pytest.raises(DeadlineExceededError, match="other processes of this deployment hold"):
        await other.slots.acquire(
            "Tickets", capacity=1, priority=Priority.SWEEP, deadline=CLOCK.monotonic() + 0.3
        )
    first.slots.release(lease)


async def test_a_dead_holders_slot_is_free_again_within_the_ttl(
    coordinators: MakeCoordinator, migrated_database: str
):
    config = CoordinatorConfig(slot_ttl=timedelta(seconds=1), sync_interval=timedelta(hours=1))
    dead = SharedCoordinator(migrated_database, config)  # never stopped: it "dies"
    lease = await dead.bind("acme", clock=CLOCK).slots.acquire(
        "Tickets", capacity=1, priority=Priority.WEBHOOK, deadline=far()
    )
    assert lease.shared
    await dead._pool.close()  # type: ignore[union-attr]  # its connections go with it
    alive = (await coordinators()).bind("acme", clock=CLOCK)
    started = time.monotonic()
    taken = await alive.slots.acquire(
        "Tickets", capacity=1, priority=Priority.WEBHOOK, deadline=far()
    )
    assert taken.shared
    assert time.monotonic() - started < 10  # the 1 s lease and a poll, not the 30 s deadline


async def test_a_long_call_keeps_its_slot_past_the_ttl(coordinators: MakeCoordinator):
    config = CoordinatorConfig(
        slot_ttl=timedelta(milliseconds=600), sync_interval=timedelta(milliseconds=50)
    )
    holder = (await coordinators(config)).bind("acme", clock=CLOCK)
    other = (await coordinators(config)).bind("acme", clock=CLOCK)
    lease = await holder.slots.acquire(
        "Tickets", capacity=1, priority=Priority.WEBHOOK, deadline=far()
    )
    with pytest.raises(DeadlineExceededError):  # 1.5 s: well past the 0.6 s lease
        await other.slots.acquire(
            "Tickets", capacity=1, priority=Priority.WEBHOOK, deadline=CLOCK.monotonic() + 1.5
        )
    holder.slots.release(lease)


async def test_without_postgresql_each_process_falls_back_to_one_slot(
    coordinators: MakeCoordinator,
):
    offline = (await coordinators(FAST, "postgresql://nobody@127.0.0.1:1/none")).bind(
        "acme", clock=CLOCK
    )
    first = await offline.slots.acquire(
        "Tickets", capacity=3, priority=Priority.WEBHOOK, deadline=far()
    )
    assert not first.shared
    assert AUTOTASK_SLOT_FALLBACK._value.get() == 1
    with pytest.raises(DeadlineExceededError, match="1 slot per endpoint"):
        await offline.slots.acquire(
            "Tickets", capacity=3, priority=Priority.WEBHOOK, deadline=CLOCK.monotonic() + 0.2
        )
    other_endpoint = await offline.slots.acquire(
        "Companies", capacity=3, priority=Priority.WEBHOOK, deadline=far()
    )
    offline.slots.release(first)
    offline.slots.release(other_endpoint)
    assert await offline.budget.spend(allowance=10)  # counting goes on, locally
    assert await offline.lockout.admit() is None


async def test_disabled_shared_slots_leave_each_process_its_own(
    coordinators: MakeCoordinator, migrated_database: str
):
    part = (await coordinators(CoordinatorConfig(shared_slots=False))).bind("acme", clock=CLOCK)
    leases = [
        await part.slots.acquire("Tickets", capacity=1, priority=Priority.WEBHOOK, deadline=far())
        for _ in range(3)
    ]
    assert not any(lease.shared for lease in leases)  # nothing in the database caps them
    assert await _in_use(migrated_database) == 0


# --- hourly budget ---------------------------------------------------------------------------
async def test_spending_across_processes_never_passes_the_allowance(
    coordinators: MakeCoordinator, migrated_database: str
):
    parts = [(await coordinators()).bind("acme", clock=CLOCK) for _ in range(3)]
    granted = 0

    async def spend(part: Coordination) -> None:
        nonlocal granted
        for _ in range(40):
            if await part.budget.spend(allowance=50):
                granted += 1
            await asyncio.sleep(0)

    await asyncio.gather(*(spend(part) for part in parts))
    assert granted <= 50  # never one more than the allowance
    # A part that ran out of attempts may still hold part of its last block: reserved, so the
    # others were refused it, and unspent. Given back, the shared count is exactly what was spent.
    for part in parts:
        await part.budget.give_back(force=True)
        await part.budget.flush()  # and what a part counted alone if PostgreSQL was slow
    db = await asyncpg.connect(migrated_database)
    try:
        usage = await rows.read_usage(db, ["acme"])
    finally:
        await db.close()
    assert usage["acme"].project_calls == granted
    assert granted >= 25, granted  # and most of it was used (only a last block goes unspent)


async def test_a_quiet_process_gives_its_unused_reservation_back(
    coordinators: MakeCoordinator, migrated_database: str
):
    busy = (await coordinators()).bind("acme", clock=CLOCK)
    for _ in range(20):  # blocks grow while it is busy
        assert await busy.budget.spend(allowance=None)
    db = await asyncpg.connect(migrated_database)
    try:
        reserved = (await rows.read_usage(db, ["acme"]))["acme"].project_calls
    finally:
        await db.close()
    assert reserved >= 20

    async def given_back() -> bool:  # after two quiet sync intervals and a round
        db = await asyncpg.connect(migrated_database)
        try:
            return bool((await rows.read_usage(db, ["acme"]))["acme"].project_calls == 20)
        finally:
            await db.close()

    await eventually(given_back, within=timedelta(seconds=10))


async def test_one_process_reads_thresholdinformation_and_every_process_sees_it(
    coordinators: MakeCoordinator,
):
    reader, *others = [(await coordinators()).bind("acme", clock=CLOCK) for _ in range(3)]
    assert await reader.budget.claim_refresh()

    async def read_soon() -> None:
        await asyncio.sleep(0.2)
        reader.budget.observe(ThresholdInfo(current_timeframe_request_count=4_200))

    started = time.monotonic()
    claims = await asyncio.gather(*(p.budget.claim_refresh() for p in others), read_soon())
    assert claims[:2] == [False, False]  # one reader at a time...
    assert time.monotonic() - started < 4  # ...not the 5 s give-up: they saw its reading
    for part in others:
        reading = part.budget.view().reading
        assert reading is not None
        assert reading.current_timeframe_request_count == 4_200
    assert not any([await p.budget.claim_refresh() for p in (reader, *others)])  # read < 5 s ago


# --- lockout -----------------------------------------------------------------------------------
async def test_a_pause_recorded_by_one_process_holds_every_process(
    coordinators: MakeCoordinator,
):
    first = (await coordinators(PATIENT)).bind("acme", clock=CLOCK)
    second = (await coordinators(PATIENT)).bind("acme", clock=CLOCK)
    assert await second.lockout.admit() is None
    lockout = await first.lockout.record_failure(reason="HTTP 401 from zone14")
    assert lockout.failures == 1
    await eventually(lambda: _admitted(second, expect=False), within=timedelta(seconds=3))
    held = await second.lockout.admit()
    assert held is not None
    assert held.reason == "HTTP 401 from zone14"
    assert 0 < held.until - CLOCK.monotonic() <= 300  # the first cool-down: 5 minutes


async def test_after_the_cool_down_one_process_tries_again_and_failures_double(
    coordinators: MakeCoordinator,
):
    parts = [(await coordinators()).bind("acme", clock=CLOCK) for _ in range(3)]
    await parts[0].lockout.record_failure(reason="401")
    await asyncio.sleep(1.1)
    admitted = [await p.lockout.admit() is None for p in parts]
    assert admitted.count(True) == 1  # one probe for every process
    prober = parts[admitted.index(True)]
    again = await prober.lockout.record_failure(reason="401 again")
    assert again.failures == 2
    assert 1.5 < again.until - CLOCK.monotonic() <= 2.0  # doubled
    await asyncio.sleep(2.1)
    admitted = [await p.lockout.admit() is None for p in parts]
    assert admitted.count(True) == 1
    third = await parts[admitted.index(True)].lockout.record_failure(reason="and again")
    assert third.failures == 3
    assert 2.5 < third.until - CLOCK.monotonic() <= 3.0  # capped at the longest (3 s here)


async def test_clearing_lifts_the_pause_everywhere(coordinators: MakeCoordinator):
    first = (await coordinators(PATIENT)).bind("acme", clock=CLOCK)
    second = (await coordinators(PATIENT)).bind("acme", clock=CLOCK)
    await first.lockout.record_failure(reason="401")
    await eventually(lambda: _admitted(second, expect=False), within=timedelta(seconds=3))
    await first.lockout.clear()
    await eventually(lambda: _admitted(second, expect=True), within=timedelta(seconds=3))


async def _admitted(part: Coordination, *, expect: bool) -> bool:
    return (await part.lockout.admit() is None) == expect


# --- one contract, both implementations -------------------------------------------------------
@pytest.fixture(params=["local", "shared"])
async def one_process(request, coordinators: MakeCoordinator) -> Coordination:
    if request.param == "local":
        return LocalCoordinator(lockout=FAST.lockout).bind("acme", clock=CLOCK)
    return (await coordinators()).bind("acme", clock=CLOCK)


async def test_contract_spend_stops_at_the_allowance(one_process: Coordination):
    results = [await one_process.budget.spend(allowance=5) for _ in range(8)]
    assert results == [True] * 5 + [False] * 3
    assert one_process.budget.view().project_calls == 5


async def test_contract_readings_become_the_view(one_process: Coordination):
    assert await one_process.budget.claim_refresh()
    one_process.budget.observe(ThresholdInfo(current_timeframe_request_count=77))
    view = one_process.budget.view()
    assert view.reading is not None
    assert view.reading.current_timeframe_request_count == 77
    assert view.calls_since_reading == 0


async def test_contract_lockout_pauses_then_doubles_then_clears(one_process: Coordination):
    lockout = one_process.lockout
    first = await lockout.record_failure(reason="401")
    assert await lockout.admit() == first
    assert (await lockout.record_failure(reason="in flight")).failures == 1  # same failure
    await asyncio.sleep(1.05)
    assert await lockout.admit() is None  # the cool-down is over: try once
    second = await lockout.record_failure(reason="401")
    assert second.failures == 2
    await lockout.clear()
    assert await lockout.admit() is None
    assert (await lockout.record_failure(reason="401")).failures == 1  # counted afresh


async def test_a_reading_from_before_a_clear_does_not_bring_the_pause_back(
    coordinators: MakeCoordinator, migrated_database: str
):
    lockout = (await coordinators()).bind("acme", clock=CLOCK).lockout
    assert isinstance(lockout, SharedLockout)
    await lockout.record_failure(reason="401")
    generation = lockout.generation  # the periodic sync takes it, then reads...
    db = await asyncpg.connect(migrated_database)
    try:
        stale = (await rows.read_health(db, ["acme"])).get("acme")
    finally:
        await db.close()
    assert stale is not None
    await lockout.clear()  # ...while someone clears the pause...
    lockout.apply(stale, generation=generation)  # ...and its answer lands afterwards
    assert await lockout.admit() is None


# --- wiring and the connection check -----------------------------------------------------------
async def test_the_catalogue_gives_every_client_the_shared_coordinator_and_the_share(
    migrated_database: str,
):
    settings = AutotaskSettings(
        database_url=SecretStr(migrated_database),
        autotask_username="api@example.com",
        autotask_secret=SecretStr("s"),
        autotask_integration_code=SecretStr("c"),
        api_share=0.3,
        api_slot_ttl=timedelta(seconds=7),
    )
    catalogue = ConnectionCatalogue.from_settings(settings)
    client = catalogue.client("default")
    assert isinstance(client.coordinator, SharedCoordinator)
    assert client.coordinator is catalogue.coordinator
    assert client.coordinator.config.slot_ttl == timedelta(seconds=7)
    assert client.budget.share == 0.3
    await catalogue.stop()


async def test_a_passing_connection_check_lifts_the_pause_for_everyone(
    coordinators: MakeCoordinator, migrated_database: str
):
    await _store(migrated_database, "acme")
    async with run_simulator(SimulatorConfig(seed=3, companies=5, tickets=5)) as sim:
        process = (await coordinators(PATIENT)).bind("acme", clock=CLOCK)
        await process.lockout.record_failure(reason="HTTP 401 from ws14")
        await eventually(lambda: _admitted(process, expect=False), within=timedelta(seconds=3))

        wrong = connection_for(sim, name="acme", secret=SecretStr("still-wrong"))
        failed = await check(wrong, database_url=migrated_database, share=0.5)
        assert not failed.ok
        assert failed.pause["cleared"] is False
        assert "calls are paused for another" in render_text(failed)
        assert not await _admitted(process, expect=True)  # a failed check lifts nothing

        report = await check(
            connection_for(sim, name="acme"), database_url=migrated_database, share=0.5
        )
        assert report.ok, report.error
        assert report.pause["reason"] == "HTTP 401 from ws14"
        assert report.pause["cleared"] is True
        assert report.usage["project_limit"] == 5_000
        assert report.usage["project_requests"] >= 5  # the check's own calls are counted
        text = render_text(report)
        assert "API share:   this deployment may use 50% of it (5000 requests per hour)" in text
        assert "lifted now that the test passed" in text
        await eventually(lambda: _admitted(process, expect=True), within=timedelta(seconds=3))


async def test_the_check_of_a_connection_never_stored_leaves_no_budget_behind(
    migrated_database: str,
) -> None:
    async def budget_rows() -> list[str]:
        db = await asyncpg.connect(migrated_database)
        try:
            return [
                f"{row['connection']}:{row['tables']}"
                for row in await db.fetch(
                    "SELECT connection, string_agg(t, ',' ORDER BY t) AS tables FROM ("
                    "  SELECT connection, 'api_budget' AS t FROM api_budget"
                    "  UNION ALL SELECT DISTINCT connection, 'api_calls' FROM api_calls) u "
                    "GROUP BY connection ORDER BY connection"
                )
            ]
        finally:
            await db.close()

    async with run_simulator(SimulatorConfig(seed=3, companies=5, tickets=5)) as sim:
        # `connections add candidate` whose test failed, or passed before it was stored.
        tried = await check(connection_for(sim, name="candidate"), database_url=migrated_database)
        assert tried.ok, tried.error
        assert await budget_rows() == []
        await _store(migrated_database, "acme")
        stored = await check(connection_for(sim, name="acme"), database_url=migrated_database)
    assert stored.usage["project_requests"] == stored.usage["calls_by_this_check"] > 0
    assert await budget_rows() == ["acme:api_budget,api_calls"]


async def _store(dsn: str, name: str) -> None:
    """A stored connection ``name`` (its secrets are not read here)."""
    db = await asyncpg.connect(dsn)
    try:
        await db.execute(
            "INSERT INTO connections (name, username, secret_encrypted, "
            "integration_code_encrypted) VALUES ($1, 'u', '\\x00', '\\x00')",
            name,
        )
    finally:
        await db.close()


async def test_the_check_without_a_database_says_the_share_use_is_unknown():
    async with run_simulator(SimulatorConfig(seed=3, companies=5, tickets=5)) as sim:
        report = await check(
            connection_for(sim), database_url="postgresql://nobody@127.0.0.1:1/none", share=0.25
        )
    assert report.ok, report.error
    assert report.usage["project_requests"] is None
    assert "its use is not known here" in render_text(report)
    assert "may use 25% of it (2500 requests per hour)" in render_text(report)
