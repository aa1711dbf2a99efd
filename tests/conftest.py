"""Session-wide real infrastructure: one PostgreSQL and one Kafka for the whole test run.

What the environment names (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS) is used as is; a stack started
with `python -m tools dev-infra up` is reused (unless AUTOTASK_SYNC_REUSE_STACK=0); otherwise the
run starts its own (testcontainers when Docker answers, else local binaries and jars) and stops it
at the end. Nothing is started for tests that do not ask for it.

Under pytest-xdist (``-n``) the workers share one stack, hosted by the controller process and
started the first time a worker asks for it (tools/dev_infra/shared_stack.py). Tests isolate
themselves on it: a database per test (``fresh_database``), topic and consumer group names from
``unique``. A test that stops or kills a server starts its own (tests/helpers/servers.py).
docs/testing.md has the rules.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.db import Pool, create_pool
from shared.settings import WELL_KNOWN_NAMES, configured_value
from tools.dev_infra.cli import running_stack
from tools.dev_infra.databases import scratch_database
from tools.dev_infra.shared_stack import StackHost, request_stack
from tools.dev_infra.stack import DevStack, StackEnv

# Fixtures shared by several test packages (a simulator with clients wired to it).
pytest_plugins = ["tests.helpers.fixtures"]

INFRA_FIXTURES = frozenset(
    {"stack", "kafka_bootstrap", "database_url", "fresh_database", "migrated_database"}
)
"""Fixtures that start (or reuse) real PostgreSQL and Kafka."""
INFRA_MARKERS = frozenset({"integration", "e2e"})

FIRST = ("e2e", "integration")
"""Markers whose files run first: the slow files start early, so no worker is left finishing
one alone at the end of a parallel run."""

SECTIONS = "autotask_sync_summary_sections"
"""Key of a worker's output holding ``(title, text)`` sections for the run's closing summary (the
fault suite's table, tests/e2e/conftest.py)."""
_STACK_FOLDER = "autotask_sync_stack_folder"
_HOST = pytest.StashKey[StackHost]()

_stack_report: dict[str, object] = {}
_sections: list[tuple[str, str]] = []


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs the real stack must say so with a marker, so ``make test-unit`` (which
    deselects those markers) never starts infrastructure by accident. Then the slow files move
    to the front (see :data:`FIRST`), each file's tests staying together and in order."""
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
    rank: dict[Path, int] = {}
    for item in items:
        names = {mark.name for mark in item.iter_markers()}
        here = next((i for i, name in enumerate(FIRST) if name in names), len(FIRST))
        rank[item.path] = min(here, rank.get(item.path, here))
    items.sort(key=lambda item: rank[item.path])


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything imported and collected so far lives for the whole run: freeze it, so each
    garbage collection (Python's own, and the leak checks that force one) scans only what the
    tests create."""
    gc.collect()
    gc.freeze()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """The xdist controller hosts the stack its workers share."""
    config = session.config
    if not config.pluginmanager.hasplugin("dsession"):
        return
    host = StackHost(Path(tempfile.mkdtemp(prefix="autotask-sync-run-")))
    host.serve()
    config.stash[_HOST] = host
    config.pluginmanager.register(_Controller(host.folder), "autotask-sync-controller")


class _Controller:
    """pytest-xdist's controller hooks (registered only when xdist distributes the run)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[_STACK_FOLDER] = str(self.folder)

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        _sections.extend(tuple(s) for s in getattr(node, "workeroutput", {}).get(SECTIONS, []))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    host = session.config.stash.get(_HOST, None)
    if host is not None:  # after xdist stopped the workers
        _stack_report.update(host.close())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for title, text in _sections:
        terminalreporter.write_sep("=", title)
        terminalreporter.write_line(text)
    if _stack_report:
        terminalreporter.write_line(f"local stack: {_stack_report}")


def _reuse_allowed() -> bool:
    return os.environ.get("AUTOTASK_SYNC_REUSE_STACK", "1") != "0"


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Iterator[StackEnv]:
    configured = any(configured_value(name) for name in WELL_KNOWN_NAMES)
    reused = None if configured or not _reuse_allowed() else running_stack()
    if reused is not None:
        yield reused
        return
    folder = getattr(request.config, "workerinput", {}).get(_STACK_FOLDER)
    if folder is not None:  # an xdist worker: the controller owns the stack
        yield request_stack(Path(folder))
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
async def migrated_database(database_url: str) -> AsyncIterator[str]:
    """A new database with every migration applied (a copy of a migrated template); dropped
    afterwards."""
    async with scratch_database(database_url, "t") as dsn:
        yield dsn


@pytest.fixture
async def pool(migrated_database: str) -> AsyncIterator[Pool]:
    """A small pool (two sessions) on the test's migrated database."""
    opened = await create_pool(migrated_database, min_size=1, max_size=2)
    try:
        yield opened
    finally:
        await opened.close()


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
        pytest.fail(f"unhandled event-loop errors: {[_loop_error(e) for e in errors]}")


def _loop_error(context: dict[str, object]) -> str:
    """The message, the exception and what held it (a future's repr names its origin)."""
    parts = [str(context.get("message"))]
    for key in ("exception", "future", "task", "handle"):
        if context.get(key) is not None:
            parts.append(f"{key}={context[key]!r}")
    return "; ".join(parts)
