"""The lockout guard against the simulator: after a 401 and its one zone re-discovery, nothing
is sent for a cool-down that doubles, and a good login ends it. The simulator's login counters
are the proof. Waits are virtual (ManualClock)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from shared.autotask import (
    AutotaskClient,
    Coordination,
    LocalCoordinator,
    ManualClock,
)
from shared.autotask._clock import Clock
from shared.errors import AuthenticationError, AuthenticationPausedError
from tests.helpers.clients import MakeClient, api_rows, connection_for, requests_to
from tools.autotask_sim.server import Simulator


class SharedParts:
    """A coordinator handing every client the same parts, as the shared one does across
    processes (the PostgreSQL one is tested in tests/shared/apibudget/)."""

    def __init__(self) -> None:
        self._parts: Coordination | None = None

    def bind(self, connection: str, *, clock: Clock) -> Coordination:
        if self._parts is None:
            self._parts = LocalCoordinator().bind(connection, clock=clock)
        return self._parts


def failed_logins(sim: Simulator) -> int:
    return sim.state.requests.failed_logins[sim.username.lower()]


async def test_bad_credentials_one_call_one_rediscovery_then_silence(
    sim: Simulator, make_client: MakeClient
):
    client = await make_client(secret="not-the-secret")
    with pytest.raises(AuthenticationError) as first:
        await client.count("Companies")
    assert not isinstance(first.value, AuthenticationPausedError)  # the real 401 first
    assert failed_logins(sim) == 1
    assert requests_to(sim, "zoneInformation") == 2  # discovery, then the one re-discovery

    for _ in range(5):
        with pytest.raises(AuthenticationPausedError) as later:
            await client.get("Companies", 1)
    assert failed_logins(sim) == 1  # nothing more reached Autotask
    assert requests_to(sim, "zoneInformation") == 2
    message = str(later.value)
    assert "paused for another 5 min" in message
    assert "autotask-sync connections test test" in message
    assert "username, secret or integration code" in message
    assert later.value.retriable
    assert 299 <= (later.value.retry_after or 0) <= 300


async def test_a_backlog_at_start_spends_one_login_not_one_per_call(
    sim: Simulator, make_client: MakeClient
):
    client = await make_client(secret="not-the-secret")
    results = await asyncio.gather(
        *(client.get("Tickets", t["id"]) for t in api_rows(sim, "Tickets")[:20]),
        *(client.get("Companies", c["id"]) for c in api_rows(sim, "Companies")[:20]),
        return_exceptions=True,
    )
    assert all(isinstance(r, AuthenticationError) for r in results)
    assert sum(isinstance(r, AuthenticationPausedError) for r in results) == 39
    assert failed_logins(sim) == 1


async def test_once_the_login_works_calls_run_concurrently_again(
    sim: Simulator, client: AutotaskClient
):
    sim.set_faults(latency=timedelta(milliseconds=20))
    tickets = api_rows(sim, "Tickets")[:30]
    assert await asyncio.gather(*(client.get("Tickets", t["id"]) for t in tickets)) == tickets
    assert sim.state.requests.peak("Tickets") == 3


async def test_the_cool_down_doubles_and_one_call_tries_again_after_each(
    sim: Simulator, make_client: MakeClient, clock: ManualClock
):
    client = await make_client(secret="not-the-secret")
    with pytest.raises(AuthenticationError):
        await client.count("Companies")
    for expected_minutes in (10, 20, 40, 60, 60):
        clock.advance(3_601)  # whatever the pause was, it is over
        with pytest.raises(AuthenticationError) as retry:
            await client.count("Companies")
        assert not isinstance(retry.value, AuthenticationPausedError)  # it did try
        with pytest.raises(AuthenticationPausedError, match=f"for another {expected_minutes} min"):
            await client.count("Companies")
    assert failed_logins(sim) == 6  # one per cool-down, never more


async def test_clients_sharing_a_coordinator_share_the_pause(sim: Simulator, clock: ManualClock):
    shared = SharedParts()
    bad = connection_for(sim, secret="not-the-secret")
    clients = [AutotaskClient(bad, clock=clock, coordinator=shared) for _ in range(3)]
    try:
        with pytest.raises(AuthenticationError):
            await clients[0].count("Companies")
        for other in clients[1:]:
            with pytest.raises(AuthenticationPausedError):
                await other.count("Companies")
        assert failed_logins(sim) == 1
        assert requests_to(sim, "zoneInformation") == 2  # the others never even looked
    finally:
        for client in clients:
            await client.close()


async def test_a_good_login_after_the_cool_down_ends_the_pause(sim: Simulator, clock: ManualClock):
    shared = SharedParts()
    bad = AutotaskClient(
        connection_for(sim, secret="not-the-secret"), clock=clock, coordinator=shared
    )
    good = AutotaskClient(connection_for(sim), clock=clock, coordinator=shared)
    try:
        with pytest.raises(AuthenticationError):
            await bad.count("Companies")
        with pytest.raises(AuthenticationPausedError):
            await good.count("Companies")  # the pause is the connection's
        clock.advance(301)
        assert await good.count("Companies") == len(api_rows(sim, "Companies"))
        assert await good.count("Companies")  # and the failures are forgotten
        with pytest.raises(AuthenticationError) as again:
            await bad.count("Companies")
        assert not isinstance(again.value, AuthenticationPausedError)
        with pytest.raises(AuthenticationPausedError, match="for another 5 min"):
            await bad.count("Companies")  # counted afresh: 5 minutes, not 10
    finally:
        await bad.close()
        await good.close()


async def test_a_zone_move_is_not_a_failure(sim: Simulator, client: AutotaskClient):
    await client.count("Companies")
    sim.move_zone(22)
    assert await client.count("Companies") == len(api_rows(sim, "Companies"))
    assert await client.count("Companies")
    assert failed_logins(sim) == 0


async def test_a_process_that_worked_before_the_pause_tries_again_with_one_call(
    sim: Simulator, clock: ManualClock
):
    shared = SharedParts()
    good = AutotaskClient(connection_for(sim), clock=clock, coordinator=shared)
    bad = AutotaskClient(
        connection_for(sim, secret="not-the-secret"), clock=clock, coordinator=shared
    )
    try:
        assert await good.count("Companies")  # this client has proved its credentials
        with pytest.raises(AuthenticationError):
            await bad.count("Companies")  # another one is rejected: the connection pauses
        with pytest.raises(AuthenticationPausedError):
            await good.count("Companies")
        sim.state.api_user.secret = "rotated-in-autotask"  # now this client's is wrong too
        clock.advance(301)
        results = await asyncio.gather(
            *(good.get("Tickets", t["id"]) for t in api_rows(sim, "Tickets")[:10]),
            return_exceptions=True,
        )
        assert sum(isinstance(r, AuthenticationPausedError) for r in results) == 9
        assert failed_logins(sim) == 2  # one per rejection, not one per queued call
    finally:
        await good.close()
        await bad.close()
