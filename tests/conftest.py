"""Session-wide real infrastructure: one PostgreSQL and one Kafka for the whole test run.

What the environment names (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS) is used as is; a stack started
with `autotask-sync dev-infra up` is reused; otherwise the session starts its own (testcontainers
when Docker answers, else local binaries and jars) and stops it at the end. Nothing is started
for tests that do not ask for it.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from tools.dev_infra.cli import running_stack
from tools.dev_infra.stack import DevStack, StackEnv

_stack_report: dict[str, object] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _stack_report:
        terminalreporter.write_line(f"local stack: {_stack_report}")


@pytest.fixture(scope="session")
def stack() -> Iterator[StackEnv]:
    configured = any(
        os.environ.get(name)
        for name in ("DATABASE_URL", "AUTOTASK_SYNC_DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS",
                     "AUTOTASK_SYNC_KAFKA_BOOTSTRAP_SERVERS")
    )  # fmt: skip
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
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _old = database_url.rpartition("/")
    yield f"{base}/{name}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


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
