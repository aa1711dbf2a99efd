"""``python -m tools dev-infra``: a stack that partly died is repaired by ``up``, not replaced.

One stack serves the module, started by ``up`` into a state file of its own (the developer's
``.dev-infra/`` is never touched). Each test begins with ``up`` (which reuses the stack, or
repairs what the previous test left), breaks part of it and checks what a person cares about:
what ran kept its pid, what stopped came back on the same port with its data, and ``status``
and ``up`` said which. Every server here was started by this module, and a watchdog stops it
if the test process dies first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.db import connect
from shared.kafka import ensure_topics
from shared.kafka.admin import missing_topics
from shared.messages.topics import TopicSpec
from shared.settings import WELL_KNOWN_NAMES, env_names
from tools.dev_infra import cli, postgres, watchdog
from tools.dev_infra.processes import pid_alive
from tools.dev_infra.record import Server, StackRecord

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

_guarded: set[int] = set()
"""Pids of the servers given a watchdog already."""


@pytest.fixture(scope="module")
def state_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The module's own stack record; the stack it names is stopped at the end."""
    path = tmp_path_factory.mktemp("dev-infra") / "state.json"
    with pytest.MonkeyPatch.context() as patch:
        for name in (n for setting in WELL_KNOWN_NAMES for n in env_names(setting)):
            patch.delenv(name, raising=False)
        patch.setenv("AUTOTASK_SYNC_NO_DOCKER", "1")  # local processes are what up repairs
        try:
            yield path
        finally:
            cli.down(path)


def _up(state_file: Path) -> StackRecord:
    """Run ``up``, which must succeed; the record it leaves, each new server guarded."""
    assert cli.up(state_file) == 0
    record = _record(state_file)
    for server in record.servers:
        if server.pid is not None and server.pid not in _guarded:
            watchdog.spawn(os.getpid(), server.pid, server.data_dir)
            _guarded.add(server.pid)
    return record


def _record(state_file: Path) -> StackRecord:
    record = StackRecord.load(state_file)
    assert record is not None
    return record


def _servers(record: StackRecord) -> tuple[Server, Server]:
    by_name = {server.name: server for server in record.servers}
    return by_name["postgres"], by_name["kafka"]


def _kill(server: Server) -> None:
    """SIGKILL, as the kernel's OOM killer does; then reaped, as init would, which waits until
    all its threads are gone (and with them its listening sockets). ``up`` ran in this process,
    so the server is its child."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    os.waitpid(server.pid, 0)


async def _write_row(dsn: str, table: str) -> None:
    db = await connect(dsn)
    try:
        # The stack's PostgreSQL acknowledges commits before writing them (synchronous_commit
        # off); this row is written through, so a kill right after cannot lose it.
        await db.execute("SET synchronous_commit = on")
        await db.execute(f"CREATE TABLE {table} (note text)")
        await db.execute(f"INSERT INTO {table} VALUES ('written before')")  # noqa: S608 - our name
    finally:
        await db.close()


async def _read_rows(dsn: str, table: str) -> list[str] | None:
    """The table's notes; None when the table does not exist."""
    db = await connect(dsn)
    try:
        if await db.fetchval("SELECT to_regclass($1)", table) is None:
            return None
        rows = await db.fetch(f"SELECT note FROM {table}")  # noqa: S608 - a name made here
        return [row["note"] for row in rows]
    finally:
        await db.close()


def _create_topic(bootstrap: str) -> str:
    topic = f"kept-{uuid.uuid4().hex[:10]}"
    asyncio.run(ensure_topics(bootstrap, [TopicSpec(topic, 1)], replication_factor=1))
    return topic


def test_up_on_a_running_stack_reuses_it_and_status_lists_each_server(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _up(state_file)
    pg, broker = _servers(record)
    capsys.readouterr()

    assert cli.up(state_file) == 0
    said = capsys.readouterr()
    assert said.err.startswith("reusing the local stack:")
    assert f"export DATABASE_URL={record.env.database_url}" in said.out
    assert _record(state_file) == record

    assert cli.status(state_file) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"PostgreSQL 127.0.0.1:{pg.port}: running; pid {pg.pid}; data {pg.data_dir}",
        f"Kafka 127.0.0.1:{broker.port}: running; pid {broker.pid}; data {broker.data_dir}",
    ]
    assert cli.env(state_file) == 0
    assert f"export KAFKA_BOOTSTRAP_SERVERS={broker.host}:{broker.port}" in capsys.readouterr().out
    assert cli.running_stack(state_file) == record.env


def test_up_restarts_a_killed_kafka_with_its_topics_and_leaves_postgres_alone(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _up(state_file)
    pg, broker = _servers(record)
    table = f"kept_{uuid.uuid4().hex[:10]}"
    asyncio.run(_write_row(record.env.database_url, table))
    topic = _create_topic(record.env.kafka_bootstrap_servers)
    capsys.readouterr()

    _kill(broker)
    assert cli.status(state_file) == 1
    listed = capsys.readouterr().out.splitlines()
    assert f"PostgreSQL 127.0.0.1:{pg.port}: running; pid {pg.pid}; data {pg.data_dir}" in listed
    assert f"Kafka 127.0.0.1:{broker.port}: stopped; pid -; data {broker.data_dir}" in listed
    assert cli.env(state_file) == 1
    assert capsys.readouterr().out == ""  # nothing for an `eval` to run
    assert cli.running_stack(state_file) is None

    repaired = _up(state_file)
    said = capsys.readouterr().err
    assert said.startswith("repaired the local stack:")
    assert f"PostgreSQL 127.0.0.1:{pg.port}: running (pid {pg.pid})" in said
    assert (
        f"Kafka 127.0.0.1:{broker.port}: was stopped, restarted on the same port and data" in said
    )
    new_pg, new_broker = _servers(repaired)
    assert new_pg == pg
    assert (new_broker.port, new_broker.data_dir) == (broker.port, broker.data_dir)
    assert new_broker.pid != broker.pid
    assert repaired.env == record.env
    assert asyncio.run(missing_topics(repaired.env.kafka_bootstrap_servers, [topic])) == []
    assert asyncio.run(_read_rows(repaired.env.database_url, table)) == ["written before"]


def test_up_restarts_a_killed_postgres_with_its_rows_and_leaves_kafka_alone(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _up(state_file)
    pg, broker = _servers(record)
    table = f"kept_{uuid.uuid4().hex[:10]}"
    asyncio.run(_write_row(record.env.database_url, table))
    capsys.readouterr()

    _kill(pg)
    assert cli.status(state_file) == 1
    assert f"PostgreSQL 127.0.0.1:{pg.port}: stopped; pid -" in capsys.readouterr().out

    repaired = _up(state_file)
    said = capsys.readouterr().err
    assert f"PostgreSQL 127.0.0.1:{pg.port}: was stopped, restarted on the same port and" in said
    assert f"Kafka 127.0.0.1:{broker.port}: running (pid {broker.pid})" in said
    new_pg, new_broker = _servers(repaired)
    assert new_broker == broker
    assert (new_pg.port, new_pg.data_dir, new_pg.pid != pg.pid) == (pg.port, pg.data_dir, True)
    assert asyncio.run(_read_rows(repaired.env.database_url, table)) == ["written before"]


def test_a_server_that_does_not_answer_is_reported_and_left_running(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _up(state_file)
    pg, _broker = _servers(record)
    assert pg.pid is not None
    capsys.readouterr()

    os.kill(pg.pid, signal.SIGSTOP)  # hung: its port still takes connections, it answers none
    try:
        assert cli.status(state_file) == 1
        listed = capsys.readouterr().out.splitlines()
        assert (
            f"PostgreSQL 127.0.0.1:{pg.port}: not answering; pid {pg.pid}; data {pg.data_dir}"
            in listed
        )
        assert cli.up(state_file) == 1
        said = capsys.readouterr()
        assert said.out == ""
        assert (
            f"PostgreSQL 127.0.0.1:{pg.port}: not answering (pid {pg.pid} is alive: left"
            in said.err
        )
        assert _record(state_file) == record
    finally:
        os.kill(pg.pid, signal.SIGCONT)
    assert _up(state_file) == record


def test_up_names_the_process_that_took_a_stopped_servers_port_and_moves_nothing(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _up(state_file)
    pg, _broker = _servers(record)
    _kill(pg)
    capsys.readouterr()

    with _listening_on(pg.port):
        assert cli.up(state_file) == 1
        said = capsys.readouterr()
        assert said.out == ""
        assert (
            f"PostgreSQL 127.0.0.1:{pg.port}: was stopped, and starting it again failed" in said.err
        )
        assert f"the port is taken by pid {os.getpid()} (" in said.err
        assert _record(state_file) == record  # nothing moved, nothing deleted
        assert pg.data_dir is not None
        assert pg.data_dir.exists()
        assert cli.status(state_file) == 1
        assert f"stopped (its port is taken by pid {os.getpid()}" in capsys.readouterr().out

    new_pg, _ = _servers(_up(state_file))
    assert (new_pg.port, new_pg.data_dir) == (pg.port, pg.data_dir)


def test_up_starts_a_new_postgres_in_place_of_one_whose_data_was_removed(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _up(state_file)
    pg, broker = _servers(record)
    table = f"kept_{uuid.uuid4().hex[:10]}"
    asyncio.run(_write_row(record.env.database_url, table))
    _kill(pg)
    assert pg.data_dir is not None
    postgres.remove_data(pg.data_dir)
    assert cli.status(state_file) == 1
    assert "stopped (its data folder is gone)" in capsys.readouterr().out

    repaired = _up(state_file)
    said = capsys.readouterr().err
    assert f"PostgreSQL 127.0.0.1:{pg.port}: was stopped and its data folder was gone" in said
    new_pg, new_broker = _servers(repaired)
    assert (new_pg.port, new_pg.data_dir, new_broker) == (pg.port, pg.data_dir, broker)
    assert asyncio.run(_read_rows(repaired.env.database_url, table)) is None  # a new cluster


def test_down_stops_every_server_and_deletes_its_data(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _up(state_file)
    assert cli.down(state_file) == 0
    for server in record.servers:
        assert server.pid is not None
        assert not pid_alive(server.pid)
        assert server.data_dir is not None
        assert not server.data_dir.exists()
    assert not state_file.exists()
    capsys.readouterr()
    assert cli.status(state_file) == 1
    assert "no local stack is recorded" in capsys.readouterr().err
    assert cli.down(state_file) == 0
    assert capsys.readouterr().err.strip() == "nothing to stop"


@contextlib.contextmanager
def _listening_on(port: int) -> Iterator[None]:
    """A listening socket of this test process on ``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield
