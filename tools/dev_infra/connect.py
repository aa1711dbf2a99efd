"""A Kafka Connect worker (standalone mode) from Maven Central jars, with Debezium's JDBC sink.

What a consumer of the change topics runs (docs/consumers.md), run here the way the local broker
is (:mod:`tools.dev_infra.kafka`, docs/adr/0001): Maven fetches Connect's runtime and its
JsonConverter, at the broker's Kafka version, into one cache folder that goes on the class path,
and Debezium's JDBC sink connector into a plugin folder of its own (``plugin.path``: Connect gives
each plugin its own class loader, so the connector's libraries never meet the worker's).

Debezium is pinned at 3.5.0.Final: the newest release whose dependencies Maven Central serves in
full (3.6's POM names ``org.hibernate:hibernate-agroal`` 7.2.6.Final, which is not there). The
plugin keeps only the PostgreSQL driver of the five Debezium bundles, and none of the jars the
worker provides (Kafka's, SLF4J, Jackson).

``python -m tools.dev_infra.connect`` (``make jars``) fetches every jar the local broker and this
worker run from, so a test run finds them in the cache.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import InfrastructureError
from tools.dev_infra.kafka import (
    INSTALL_JAVA,
    KAFKA_VERSION,
    LOG4J2_WARNINGS_TO_STDERR,
    LOG4J_VERSION,
    SLF4J_VERSION,
    jvm_command,
    resolve_jars,
)
from tools.dev_infra.launch import ServerProcess, launch
from tools.dev_infra.maven import cache_root, copy_dependencies, dependency, pom
from tools.dev_infra.processes import free_port, require_tool, stop_process

DEBEZIUM_VERSION = "3.5.0.Final"

_RUNTIME_POM = pom(
    "kafka-connect-runtime",
    KAFKA_VERSION,
    [
        dependency("org.apache.kafka", "connect-runtime", KAFKA_VERSION),
        dependency("org.apache.kafka", "connect-json", KAFKA_VERSION),
        dependency("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
    ],
    managed=[dependency("org.slf4j", "slf4j-api", SLF4J_VERSION)],
)

_EXCLUDED = (  # provided by the worker, or drivers of other databases
    ("org.apache.kafka", "*"),
    ("org.slf4j", "*"),
    # Jackson too: with a copy of its own, Hibernate's look-up of Jackson modules finds the
    # worker's (Blackbird) and fails on them ("not a subtype").
    ("com.fasterxml.jackson.core", "*"),
    ("com.mysql", "mysql-connector-j"),
    ("org.mariadb.jdbc", "mariadb-java-client"),
    ("com.microsoft.sqlserver", "mssql-jdbc"),
    ("com.oracle.database.jdbc", "ojdbc11"),
)
_JDBC_SINK_POM = pom(
    "debezium-jdbc-sink",
    DEBEZIUM_VERSION,
    [dependency("io.debezium", "debezium-connector-jdbc", DEBEZIUM_VERSION, exclusions=_EXCLUDED)],
)


def resolve_runtime(cache_dir: Path | None = None) -> Path:
    """The folder of the worker's jars (its class path), fetched with Maven on first use."""
    return copy_dependencies(
        (cache_dir or cache_root()) / f"kafka-connect-{KAFKA_VERSION}",
        _RUNTIME_POM,
        expect="connect-runtime-*.jar",
        what=f"Kafka Connect {KAFKA_VERSION}",
    )


def resolve_jdbc_sink(cache_dir: Path | None = None) -> Path:
    """A ``plugin.path`` folder holding Debezium's JDBC sink, fetched with Maven on first use."""
    folder = (cache_dir or cache_root()) / f"debezium-jdbc-{DEBEZIUM_VERSION}"
    copy_dependencies(
        folder,
        _JDBC_SINK_POM,
        expect="debezium-connector-jdbc-*.jar",
        what=f"Debezium's JDBC sink {DEBEZIUM_VERSION}",
    )
    return folder  # its lib/ is the plugin; Connect ignores the files beside it


@dataclass(frozen=True)
class ConnectProcess(ServerProcess):
    """A running standalone worker; ``port`` serves Connect's REST API."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_connect(
    data_dir: Path,
    *,
    bootstrap_servers: str,
    connectors: Collection[Mapping[str, str]],
    owned_by_caller: bool,
    timeout: float = 120.0,
    heap: str = "512m",
) -> ConnectProcess:
    """Start a standalone worker running ``connectors`` (each a configuration with its
    ``name``) against ``bootstrap_servers``; return once the REST API lists all of them.

    Keys and values are read with JsonConverter, schemas enabled; the worker keeps its sink
    offsets in ``data_dir``. ``owned_by_caller``: see :func:`tools.dev_infra.launch.launch`."""
    java = require_tool("java", [], INSTALL_JAVA)
    classpath = resolve_runtime()
    plugins = resolve_jdbc_sink()
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    worker = data_dir / "worker.properties"
    worker.write_text(_worker_properties(bootstrap_servers, port, data_dir, plugins))
    files = []
    for connector in connectors:
        file = data_dir / f"{connector['name']}.json"
        file.write_text(json.dumps(dict(connector), indent=2))
        file.chmod(0o600)  # it may hold a database password
        files.append(str(file))
    log4j = data_dir / "log4j2.properties"
    log4j.write_text(LOG4J2_WARNINGS_TO_STDERR)
    url = f"http://127.0.0.1:{port}"
    names = {connector["name"] for connector in connectors}
    process = launch(
        jvm_command(
            java,
            heap=("128m", heap),
            args=[
                f"-Dlog4j2.configurationFile={log4j}",
                "-cp",
                f"{classpath}/*",
                "org.apache.kafka.connect.cli.ConnectStandalone",
                str(worker),
                *files,
            ],
        ),
        what="Kafka Connect worker",
        port=port,
        data_dir=data_dir,
        log_file=data_dir / "connect.log",
        owned_by_caller=owned_by_caller,
        timeout=timeout,
        # The REST port opens before the connectors exist: wait until it lists them.
        ready=lambda: _wait_for_connectors(url, names, deadline=timeout),
    )
    return ConnectProcess(process, port, data_dir, data_dir / "connect.log")


def stop_connect(worker: ConnectProcess) -> None:
    """Stop the worker (SIGTERM: its sink tasks commit their offsets first)."""
    stop_process(worker.pid, grace=20, sig=signal.SIGTERM)
    worker.process.wait(timeout=30)


def _worker_properties(bootstrap_servers: str, port: int, data_dir: Path, plugins: Path) -> str:
    settings = {
        "bootstrap.servers": bootstrap_servers,
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
        "offset.storage.file.filename": str(data_dir / "offsets"),
        "offset.flush.interval.ms": "1000",
        "plugin.path": str(plugins),
        # Plugins declare themselves (META-INF/services): no scan of every class of every jar.
        "plugin.discovery": "service_load",
        "listeners": f"http://127.0.0.1:{port}",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _wait_for_connectors(url: str, names: set[str], *, deadline: float) -> None:
    end = time.monotonic() + deadline
    listed: Any = None
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"{url}/connectors", timeout=5) as answer:  # noqa: S310
                listed = json.loads(answer.read())
            if names <= set(listed):
                return
        except (OSError, ValueError, urllib.error.URLError):
            pass  # not serving yet
        time.sleep(0.3)
    raise InfrastructureError(f"Kafka Connect at {url} did not list {sorted(names)}: {listed}")


def fetch() -> list[Path]:
    """Fetch (or find in the cache) the broker's, the worker's and the sink's jars."""
    return [resolve_jars(), resolve_runtime(), resolve_jdbc_sink()]


if __name__ == "__main__":
    for folder in fetch():
        print(folder)
