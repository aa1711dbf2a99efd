"""Fixtures for the simulator suite: a running simulator, a plain aiohttp client, a receiver.

Everything goes over real HTTP on loopback; the helpers are in ``tests/helpers``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from tests.helpers.receiver import Receiver, serve_receiver
from tests.helpers.simapi import Api, fast_config
from tools.autotask_sim import Simulator, run_simulator


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with run_simulator(fast_config()) as simulator:
        yield simulator


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def api(sim: Simulator, session: aiohttp.ClientSession) -> Api:
    return Api(sim, session)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve_receiver() as state:
        yield state
