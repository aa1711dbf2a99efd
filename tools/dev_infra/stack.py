"""The local development stack: one PostgreSQL and one Kafka, from wherever they can come.

For each service, in order of preference:
1. what the environment names (``DATABASE_URL``, ``KAFKA_BOOTSTRAP_SERVERS``): used as is;
2. a container through testcontainers, when a Docker engine answers;
3. a process started here from local binaries (PostgreSQL server binaries; Kafka jars from
   Maven Central run on the local JVM).

Tests, ``make demo`` and the benchmarks all go through :class:`DevStack`; the
``python -m tools dev-infra`` command starts the same stack for a person.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import WELL_KNOWN_NAMES, configured_value
from tools.dev_infra import docker, kafka, postgres, watchdog
from tools.dev_infra.launch import ServerProcess
from tools.dev_infra.processes import peak_rss_bytes, stop_process


@dataclass(frozen=True)
class StackEnv:
    """Where the stack's services listen, as the environment variables the project reads."""

    database_url: str
    kafka_bootstrap_servers: str

    def as_env(self) -> dict[str, str]:
        return {
            WELL_KNOWN_NAMES["database_url"]: self.database_url,
            WELL_KNOWN_NAMES["kafka_bootstrap_servers"]: self.kafka_bootstrap_servers,
        }


@dataclass
class StackProcesses:
    """What this stack started itself (and must stop): pids, data folders, containers."""

    postgres_pid: int | None = None
    kafka_pid: int | None = None
    data_dirs: list[str] = field(default_factory=list)
    container_ids: list[str] = field(default_factory=list)
    handles: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)


@dataclass
class DevStack:
    """Provide PostgreSQL and Kafka; stop what was started on :meth:`down`.

    ``owned`` ties started processes to this Python process: a watchdog stops them and removes
    their data if it dies without calling :meth:`down` (test sessions). The CLI passes False so
    the stack outlives the command.
    """

    owned: bool = True
    postgres: bool = True
    kafka: bool = True
    processes: StackProcesses = field(default_factory=StackProcesses)
    servers: dict[str, ServerProcess] = field(default_factory=dict)
    """The servers started from local binaries, by name (``postgres``, ``kafka``): where each
    listens and keeps its data, which the CLI records to start a stopped one again."""
    timings: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    _containers: docker.Containers = field(default_factory=lambda: docker.Containers([]))
    _docker: bool | None = field(default=None, repr=False)

    def up(self) -> StackEnv:
        try:
            database_url = self._provide(
                "postgres",
                "database_url",
                self.postgres,
                docker.start_postgres_container,
                self._local_postgres,
            )
            bootstrap = self._provide(
                "kafka",
                "kafka_bootstrap_servers",
                self.kafka,
                docker.start_kafka_container,
                self._local_kafka,
            )
        except BaseException:
            self.down()
            raise
        self.processes.container_ids = [
            str(c.get_wrapped_container().id) for c in self._containers.started
        ]
        return StackEnv(database_url=database_url, kafka_bootstrap_servers=bootstrap)

    def _provide(
        self,
        name: str,
        setting: str,
        wanted: bool,
        in_container: Callable[[docker.Containers], str],
        local: Callable[[], str],
    ) -> str:
        """The address of one service: configured, from a container, or started locally."""
        configured = configured_value(setting)
        if configured or not wanted:
            self.sources[name] = "environment" if configured else "not requested"
            return configured or ""
        started = time.monotonic()
        if self._docker_available():
            address = in_container(self._containers)
            self.sources[name] = "testcontainers"
        else:
            address = local()
        self.timings[f"{name}_start_seconds"] = time.monotonic() - started
        return address

    def _local_postgres(self) -> str:
        server = postgres.start_postgres(self._new_data_dir("pg"), owned_by_caller=self.owned)
        self.processes.postgres_pid = server.pid
        self._keep("postgres", server)
        self.sources["postgres"] = "local binaries"
        return server.dsn

    def _local_kafka(self) -> str:
        started = time.monotonic()
        kafka.resolve_jars()
        self.timings["kafka_jars_seconds"] = time.monotonic() - started
        broker = kafka.start_kafka(self._new_data_dir("kafka"), owned_by_caller=self.owned)
        self.processes.kafka_pid = broker.pid
        self._keep("kafka", broker)
        self.sources["kafka"] = "local jars"
        return broker.bootstrap_servers

    def _new_data_dir(self, kind: str) -> Path:
        """A fresh folder the server user can enter, deleted by :meth:`down` whatever happens."""
        folder = Path(tempfile.mkdtemp(prefix=f"autotask-sync-{kind}-"))
        folder.chmod(0o755)
        self.processes.data_dirs.append(str(folder))
        return folder

    def _docker_available(self) -> bool:
        if self._docker is None:
            self._docker = docker.docker_available()
        return self._docker

    def _keep(self, name: str, server: ServerProcess) -> None:
        self.servers[name] = server
        if self.owned:  # launch() keeps a detached server's handle
            self.processes.handles.append(server.process)

    def kafka_peak_rss(self) -> int | None:
        """Peak RSS of the local broker in bytes (None when Kafka is not a local process)."""
        pid = self.processes.kafka_pid
        return peak_rss_bytes(pid) if pid else None

    def down(self) -> None:
        """Stop everything this stack started, newest first, and delete its data. Idempotent."""
        stop_processes(self.processes)
        self._containers.stop()
        self._containers.started.clear()
        self.processes = StackProcesses()
        self.servers.clear()


def stop_processes(processes: StackProcesses) -> None:
    """Stop recorded processes and delete their data folders (also used by the CLI's ``down``)."""
    if processes.kafka_pid:
        stop_process(processes.kafka_pid, grace=20)
    if processes.postgres_pid:
        # SIGINT is PostgreSQL's "fast" shutdown: abort sessions, checkpoint, exit.
        stop_process(processes.postgres_pid, grace=10, sig=signal.SIGINT)
    for handle in processes.handles:
        handle.poll()  # records the exit status so the Popen object is not reported as leaked
    watchdog.reap()
    for folder in processes.data_dirs:
        postgres.remove_data(Path(folder))
