"""Fixtures for the gateway's tests: a deployment (database, topics, key) per test, and a Kafka
broker of a test module's own for the tests that stop it."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
import pytest_asyncio

from shared.secrets import SecretBox
from tests.helpers.servers import Broker
from tests.services.webhook_gateway.helpers import Deployment, create_topics


@pytest_asyncio.fixture
async def deployment(
    migrated_database: str, kafka_bootstrap: str, unique: str
) -> AsyncIterator[Deployment]:
    topics = await create_topics(kafka_bootstrap, f"gw{unique}")
    yield Deployment(migrated_database, kafka_bootstrap, topics, SecretBox.generate_key())


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker the test module owns (tests/helpers/servers.py), to stop and start: the
    session's shared Kafka is never touched."""
    own = Broker(tmp_path_factory.mktemp("broker"))
    own.start()
    try:
        yield own
    finally:
        own.close()


@pytest_asyncio.fixture
async def on_own_broker(broker: Broker, deployment: Deployment, unique: str) -> Deployment:
    """The test's deployment, but with its topics on the module's own broker."""
    await asyncio.to_thread(broker.start)  # a test that failed half-way may have left it down
    topics = await create_topics(broker.bootstrap, f"gwo{unique}")
    return Deployment(deployment.dsn, broker.bootstrap, topics, deployment.key)


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(autouse=True)
def _leaks_fail_the_test_that_made_them(request: pytest.FixtureRequest) -> Iterator[None]:
    """Collect garbage after each test that opens sockets: an unclosed connection, client
    session or server left in a reference cycle (a ResourceWarning, an error here) is then
    reported by the test that leaked it, not by whichever test the collector next runs in.

    Only the integration tests (a gateway server, HTTP sessions, Kafka and PostgreSQL clients)
    open any; the pure ones (signature, routing, dedup, settings) have nothing to leak and skip
    the full collection, which is not free in a process holding the whole suite."""
    yield
    if request.node.get_closest_marker("integration") is not None:
        gc.collect()
