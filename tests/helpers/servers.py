"""Servers a test module owns, so it can really stop them and start them again.

The session's shared PostgreSQL and Kafka must never be stopped; fault tests use these. Each
keeps its port and data across a restart, so clients reconnect to the address they know and find
their topics and tables again. Starting and stopping block: async tests call them through
``asyncio.to_thread`` while the services under test keep running.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tools.dev_infra import kafka, postgres, watchdog
from tools.dev_infra.launch import launch
from tools.dev_infra.processes import require_tool, stop_process

HEAP = "512m"


@dataclass
class Broker:
    """One KRaft node on loopback; :meth:`stop` and :meth:`start` keep its port and data.

    ``secured``: it also serves the SASL_SSL and SSL listeners managed Kafka is reached by
    (``secured_listeners``: ports, CA, users; :class:`tools.dev_infra.kafka.SecuredListeners`)."""

    data_dir: Path
    port: int = 0
    secured: bool = False
    secured_listeners: kafka.SecuredListeners | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _handles: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)
    restarts: int = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        if self.port == 0:
            started = kafka.start_kafka(
                self.data_dir, owned_by_caller=True, heap=HEAP, secured=self.secured
            )
            self.port, self._process = started.port, started.process
            self.secured_listeners = started.secured
        else:
            self.restarts += 1
            self._process = self._relaunch()
        self._handles.append(self._process)

    def _relaunch(self) -> subprocess.Popen[bytes]:
        java = require_tool("java", [], "a Java 17+ runtime")
        jar_dir = kafka.resolve_jars()
        log4j = self.data_dir / "log4j2.properties"
        command = [
            str(java),
            "-Xms256m",
            f"-Xmx{HEAP}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{jar_dir}/*",
            "kafka.Kafka",
            str(self.data_dir / "server.properties"),
        ]
        return launch(
            command,
            what="Kafka broker (restart)",
            port=self.port,
            data_dir=self.data_dir,
            log_file=self.data_dir / f"broker-restart-{self.restarts}.log",
            owned_by_caller=True,
            timeout=90,
            ready=lambda: asyncio.run(kafka.wait_for_metadata(self.bootstrap, deadline=90)),
        )

    def stop(self, *, kill: bool = False) -> None:
        """Stop the broker (SIGTERM, or SIGKILL when ``kill``); its data stays."""
        process, self._process = self._process, None
        if process is None:
            return
        stop_process(process.pid, grace=20, sig=signal.SIGKILL if kill else signal.SIGTERM)
        # stop_process may return once the broker looks gone, a moment before it can be reaped.
        process.wait(timeout=30)

    def close(self) -> None:
        self.stop(kill=True)
        for handle in self._handles:
            handle.wait(timeout=30)
        watchdog.reap()


@dataclass
class Postgres:
    """One PostgreSQL cluster on loopback; :meth:`stop` and :meth:`start` keep its port and data.

    ``tls``: it serves TLS too, ``tls_only``: TLS alone (:class:`postgres.ServerTls`)."""

    data_root: Path
    tls: bool = False
    tls_only: bool = False
    _server: postgres.PostgresProcess | None = field(default=None, repr=False)
    _stopped: postgres.PostgresProcess | None = field(default=None, repr=False)
    _handles: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    @property
    def _cluster(self) -> postgres.PostgresProcess:
        """The cluster, running or stopped (its port and data stay)."""
        server = self._server or self._stopped
        assert server is not None, "start the cluster first"
        return server

    @property
    def dsn(self) -> str:
        return self._cluster.dsn

    @property
    def server_tls(self) -> postgres.ServerTls:
        """The CA clients trust (``server_tls.authority.cert``) and client certificates."""
        tls = self._cluster.tls
        assert tls is not None, "the cluster was started without TLS"
        return tls

    def verified_dsn(self, sslmode: str = "verify-full") -> str:
        """:attr:`dsn` with ``sslmode`` and the cluster's CA as ``sslrootcert``."""
        return self._cluster.verified_dsn(sslmode)

    def start(self) -> None:
        if self._server is not None:
            return
        if self._stopped is None:
            self._server = postgres.start_postgres(
                self.data_root, owned_by_caller=True, tls=self.tls, tls_only=self.tls_only
            )
        else:
            self._server = postgres.restart_postgres(self._stopped, owned_by_caller=True)
            self._stopped = None
        self._handles.append(self._server.process)

    def stop(self) -> None:
        """A fast shutdown (sessions aborted); the data stays."""
        server, self._server = self._server, None
        if server is None:
            return
        stop_process(server.pid, grace=20, sig=signal.SIGINT)
        server.process.wait(timeout=30)
        self._stopped = server

    def close(self) -> None:
        self.stop()
        for handle in self._handles:
            handle.wait(timeout=30)
        watchdog.reap()
        postgres.remove_data(
            self.data_root.parent
            if self.data_root.parent.name.startswith("autotask-sync-")
            else self.data_root
        )
