"""Fixtures for the gateway's tests: a deployment (database, topics, key) per test."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
import pytest_asyncio

from shared.secrets import SecretBox
from tests.services.webhook_gateway.helpers import Deployment, create_topics


@pytest_asyncio.fixture
async def deployment(
    migrated_database: str, kafka_bootstrap: str, unique: str
) -> AsyncIterator[Deployment]:
    topics = await create_topics(kafka_bootstrap, f"gw{unique}")
    yield Deployment(migrated_database, kafka_bootstrap, topics, SecretBox.generate_key())


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(autouse=True)
def _leaks_fail_the_test_that_made_them() -> Iterator[None]:
    """Collect garbage after each test: an unclosed connection or socket (a ResourceWarning,
    an error here) is then reported by the test that leaked it, not by a later one."""
    yield
    gc.collect()
