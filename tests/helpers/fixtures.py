"""Fixtures for tests of the client (and of commands using it): a fresh simulator per test and
clients wired to it; registered for the whole suite in ``tests/conftest.py``.

Each test gets its own simulator (start-up takes tens of milliseconds), so faults, limits,
security levels and zone moves never leak between tests. Clients use a ManualClock: retries,
429 pauses and budget waits happen instantly and are recorded in ``clock.sleeps``.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.autotask import AutotaskClient, ClientConfig, Connection, ManualClock
from tests.helpers.clients import MakeClient, connection_for
from tools.autotask_sim import Simulator, SimulatorConfig, run_simulator


@pytest.fixture
def sim_config() -> SimulatorConfig:
    """Override in a test module (or parametrize) to shape the tenant."""
    return SimulatorConfig(seed=7, companies=50, tickets=200, contacts=60, ticket_notes=120)


@pytest.fixture
async def sim(sim_config: SimulatorConfig) -> AsyncIterator[Simulator]:
    async with run_simulator(sim_config) as simulator:
        yield simulator


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def make_client(sim: Simulator, clock: ManualClock) -> AsyncIterator[MakeClient]:
    """``await make_client(config=..., connection=..., **connection_overrides)``."""
    clients: list[AutotaskClient] = []

    async def make(
        config: ClientConfig | None = None,
        connection: Connection | None = None,
        **overrides: Any,
    ) -> AutotaskClient:
        client = AutotaskClient(
            connection or connection_for(sim, **overrides),
            config=config,
            clock=clock,
            rng=random.Random(0),
        )
        clients.append(client)
        return await client.__aenter__()

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: MakeClient) -> AutotaskClient:
    return await make_client()
