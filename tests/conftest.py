"""Session-wide real infrastructure: one PostgreSQL and one Kafka for the whole test run.

What the environment names (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS) is used as is; a stack started
with `python -m tools dev-infra up` is reused; otherwise the session starts its own (testcontainers
when Docker answers, else local binaries and jars) and stops it at the end. Nothing is started
for tests that do not ask for it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from shared.db import apply_migrations
from shared.settings import WELL_KNOWN_NAMES, configured_value
from tools.dev_infra.cli import running_stack
from tools.dev_infra.databases import scratch_database
from tools.dev_infra.stack import DevStack, StackEnv

# Fixtures shared by several test packages (a simulator with clients wired to it).
pytest_plugins = ["tests.helpers.fixtures"]

INFRA_FIXTURES = frozenset(
    {"stack", "kafka_bootstrap", "database_url", "fresh_database", "migrated_database"}
)
"""Fixtures that start (or reuse) real PostgreSQL and Kafka."""
INFRA_MARKERS = frozenset({"integration", "e2e"})

_stack_report: dict[str, object] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs the real stack must say so with a marker, so ``make test-fast`` (which
    deselects those markers) never starts infrastructure by accident."""
    unmarked = [
        item.nodeid
        for item in items
        if INFRA_FIXTURES & set(getattr(item, "fixturenames", ()))
        and not INFRA_MARKERS & {mark.name for mark in item.iter_markers()}
    ]
    if unmarked:
        raise pytest.UsageError(
            "tests that use PostgreSQL/Kafka fixtures need @pytest.mark.integration or "
            f"@pytest.mark.e2e: {unmarked}"
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _stack_report:
        terminalreporter.write_line(f"local stack: {_stack_report}")


@pytest.fixture(scope="session")
def stack() -> Iterator[StackEnv]:
    configured = any(configured_value(name) for name in WELL_KNOWN_NAMES)
    reused = None if configured else running_stack()
    if reused is not None:
        yield reused
        return
    dev = DevStack(owned=True)
    try:
        env = dev.up()
        yield env
    finally:
        rss = dev.kafka_peak_rss()
        dev.down()
        _stack_report.update(dev.sources)
        _stack_report.update({k: round(v, 2) for k, v in dev.timings.items()})
        if rss:
            _stack_report["kafka_peak_rss_mib"] = round(rss / 2**20, 1)


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: StackEnv) -> str:
    return stack.kafka_bootstrap_servers


@pytest.fixture(scope="session")
def database_url(stack: StackEnv) -> str:
    return stack.database_url


@pytest.fixture
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    """A new, empty database for one test; dropped afterwards."""
    async with scratch_database(database_url, "t", migrated=False) as dsn:
        yield dsn


@pytest.fixture
async def migrated_database(fresh_database: str) -> str:
    """A fresh database with every migration applied."""
    connection = await asyncpg.connect(fresh_database)
    try:
        await apply_migrations(connection)
    finally:
        await connection.close()
    return fresh_database


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic and group names, so tests never share state."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(autouse=True)
async def _fail_on_unhandled_loop_errors() -> AsyncIterator[None]:
    """A test that leaves an error nobody handled on the event loop fails (e.g. a task whose
    exception was never retrieved), instead of the error only reaching a log."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        yield
        await asyncio.sleep(0)  # let callbacks scheduled by the test's last step run
    finally:
        loop.set_exception_handler(previous)
    if errors:
        pytest.fail(f"unhandled event-loop errors: {[e.get('message') for e in errors]}")
