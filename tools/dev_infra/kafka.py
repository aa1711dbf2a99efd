"""A real single-node Kafka broker (KRaft) assembled from Maven Central jars.

No Docker and no Apache download mirror are needed: Maven resolves ``kafka_2.13`` and its runtime
dependencies into a cache folder outside the repository (keyed by version), and the broker runs
with ``java -cp``. See docs/adr/0001-local-kafka-from-maven-jars.md for the reasoning.

Besides its PLAINTEXT listener the broker can serve the ways managed Kafka is reached
(``start_kafka(..., secured=True)``, :class:`SecuredListeners`): a SASL_SSL listener accepting
PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER (unsigned tokens, Kafka's unsecured
validator: the token provider hook is what is exercised, not an identity provider), and an SSL
listener that requires a client certificate (Aiven's way). Its certificates come from a private
CA (:mod:`tools.dev_infra.certificates`) and are handed to Kafka as PEM text, so no keytool is
needed; SCRAM credentials are written into the metadata when the storage is formatted.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import struct
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.errors import InfrastructureError
from tools.dev_infra.certificates import Authority, KeyPair, authority
from tools.dev_infra.launch import ServerProcess, launch, run_checked
from tools.dev_infra.maven import cache_root, copy_dependencies, dependency, pom
from tools.dev_infra.processes import free_port, replies_to, require_free_ports, require_tool

KAFKA_VERSION = "4.2.1"
SCALA_VERSION = "2.13.17"
LOG4J_VERSION = "2.25.4"
SLF4J_VERSION = "1.7.36"

INSTALL_JAVA = "a Java 17+ runtime, e.g. `apt-get install openjdk-17-jre-headless`"

_POM = pom(
    "kafka-runtime",
    KAFKA_VERSION,
    [
        dependency("org.apache.kafka", "kafka_2.13", KAFKA_VERSION),
        # Not in Kafka's POM: without this slf4j 1.x binding every broker log line vanishes.
        dependency("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
    ],
    managed=[
        dependency("org.scala-lang", "scala-library", SCALA_VERSION),
        dependency("org.scala-lang", "scala-reflect", SCALA_VERSION),
        dependency("org.slf4j", "slf4j-api", SLF4J_VERSION),
    ],
)

LOG4J2_WARNINGS_TO_STDERR = """status = warn
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
"""
"""A log4j2 configuration for the JVMs started here (the broker, Kafka Connect): warnings and
errors on stderr, which the process owner keeps."""
_LOG4J2 = (
    LOG4J2_WARNINGS_TO_STDERR
    + """logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = INFO
"""
)


JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
"""A test and demo broker is short-lived and lightly loaded: the quick (C1) compiler alone and
the single-threaded collector halve the CPU it takes to start and to run (a JVM's start-up is
mostly the optimizing compiler's work), which counts on a two-core machine running tests in
parallel."""


def jvm_command(java: Path, *, heap: tuple[str, str], args: Sequence[str]) -> list[str]:
    """``java`` with ``heap`` (initial, maximum) and what every long-running local JVM gets
    (:data:`JVM_OPTIONS`, headless), then ``args`` (properties, class path, main class...)."""
    initial, maximum = heap
    return [
        str(java),
        f"-Xms{initial}",
        f"-Xmx{maximum}",
        *JVM_OPTIONS,
        "-Djava.awt.headless=true",
        *args,
    ]


def resolve_jars(cache_dir: Path | None = None) -> Path:
    """Return the folder holding the broker's jars, downloading them with Maven on first use."""
    return copy_dependencies(
        (cache_dir or cache_root()) / f"kafka-{KAFKA_VERSION}",
        _POM,
        expect="kafka_2.13-*.jar",
        what=f"Kafka {KAFKA_VERSION}",
        advice="check network access to Maven Central or set KAFKA_BOOTSTRAP_SERVERS to an "
        "existing broker",
    )


def new_cluster_id() -> str:
    """22 url-safe base64 chars of 16 random bytes; never starting with '-' (read as an option)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
"""What the SASL_SSL listener accepts."""


@dataclass(frozen=True)
class SecuredListeners:
    """The broker's TLS listeners and what they accept.

    ``sasl_ssl_port``: SASL over TLS with every mechanism of :data:`SASL_MECHANISMS`; ``users``
    (name -> password) are known to PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 alike; OAUTHBEARER
    takes any unsigned token that has a ``sub`` and has not expired. ``ssl_port``: TLS with a
    client certificate signed by ``authority`` (:meth:`client_certificate`). Clients trust
    ``authority.cert``; the server certificate (``server``) is for 127.0.0.1 and localhost.
    """

    sasl_ssl_port: int
    ssl_port: int
    authority: Authority
    server: KeyPair
    users: Mapping[str, str]

    @property
    def ca_file(self) -> Path:
        return self.authority.cert

    @property
    def sasl_ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ssl_port}"

    def client_certificate(self, folder: Path, name: str) -> KeyPair:
        """A client certificate (and its key) the SSL listener accepts."""
        return self.authority.client(folder, name)


@dataclass(frozen=True)
class KafkaProcess(ServerProcess):
    """A running local broker."""

    controller_port: int
    secured: SecuredListeners | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"


def _pem_value(path: Path) -> str:
    """A PEM file as one properties value (Java reads ``\\n`` as a line break)."""
    return path.read_text().strip().replace("\n", "\\n")


def _secured_properties(secured: SecuredListeners) -> dict[str, str]:
    plain_users = " ".join(f'user_{name}="{password}"' for name, password in secured.users.items())
    sasl = "listener.name.sasl_ssl"
    return {
        f"{sasl}.sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
        f"{sasl}.plain.sasl.jaas.config": (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
        ),
        f"{sasl}.scram-sha-256.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        f"{sasl}.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        # No validator configured: Kafka checks OAUTHBEARER tokens with its unsecured validator
        # (unsigned JWTs), which is what a local broker can offer without an identity provider.
        f"{sasl}.oauthbearer.sasl.jaas.config": (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
            'unsecuredLoginStringClaim_sub="broker";'
        ),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.certificate.chain": _pem_value(secured.server.cert),
        "ssl.keystore.key": _pem_value(secured.server.key),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.certificates": _pem_value(secured.authority.cert),
        "listener.name.ssl.ssl.client.auth": "required",
    }


def _server_properties(
    port: int,
    controller_port: int,
    log_dir: Path,
    secured: SecuredListeners | None = None,
) -> str:
    listeners = {"PLAINTEXT": port}
    if secured is not None:
        listeners |= {"SASL_SSL": secured.sasl_ssl_port, "SSL": secured.ssl_port}
    advertised = ",".join(f"{name}://127.0.0.1:{p}" for name, p in listeners.items())
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"{advertised},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": advertised,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": ",".join(
            ["CONTROLLER:PLAINTEXT", *(f"{name}:{name}" for name in listeners)]
        ),
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "2",
        # The default dedupe buffer takes 128 MiB of heap; compacted topics need far less here.
        "log.cleaner.dedupe.buffer.size": "33554432",
        "auto.create.topics.enable": "false",
    }
    if secured is not None:
        settings |= _secured_properties(secured)
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _ports(wanted: int | None) -> list[int]:
    """The broker's ports: ``wanted`` (or a free one) for clients, then free ones for the
    controller, the SASL_SSL and the SSL listeners."""
    ports = [wanted] if wanted else []
    while len(ports) < 4:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def start_kafka(
    data_dir: Path,
    *,
    owned_by_caller: bool,
    timeout: float = 90.0,
    heap: str = "1g",
    secured: bool = False,
    port: int | None = None,
) -> KafkaProcess:
    """Format storage and start one KRaft node on 127.0.0.1 free ports; wait until it serves.

    ``owned_by_caller``: see :func:`tools.dev_infra.launch.launch`. ``secured``: also serve the
    SASL_SSL and SSL listeners (:class:`SecuredListeners`, certificates and credentials made
    here, under ``data_dir``). ``port``: serve clients there (a stack keeping its address)
    rather than on a free port.
    """
    java = require_tool("java", [], INSTALL_JAVA)
    jar_dir = resolve_jars()
    port, controller_port, sasl_ssl_port, ssl_port = _ports(port)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = data_dir / "log"
    listeners: SecuredListeners | None = None
    scram: list[str] = []
    if secured:
        tls_dir = data_dir / "tls"
        ca = authority(tls_dir, "autotask-sync local Kafka")
        server = ca.server(tls_dir, "kafka-broker")
        users = {"autotask-sync": secrets.token_hex(16), "operator": secrets.token_hex(16)}
        listeners = SecuredListeners(sasl_ssl_port, ssl_port, ca, server, users)
        scram = [
            argument
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
            for name, password in users.items()
            for argument in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
        ]
    props = data_dir / "server.properties"
    props.write_text(_server_properties(port, controller_port, log_dir, listeners))
    props.chmod(0o600)  # it holds the server key and the PLAIN passwords
    (data_dir / "log4j2.properties").write_text(_LOG4J2)

    run_checked(
        [
            str(java),
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1",
            *_java_arguments(data_dir, jar_dir),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            new_cluster_id(),
            "-c",
            str(props),
            "--ignore-formatted",
            *scram,
        ],
        "formatting Kafka storage",
        timeout=120,
    )
    process = _serve(
        java,
        jar_dir,
        data_dir,
        _listeners(props),
        log_file=data_dir / "broker.log",
        owned_by_caller=owned_by_caller,
        timeout=timeout,
        heap=heap,
    )
    return KafkaProcess(
        process, port, data_dir, data_dir / "broker.log", controller_port, listeners
    )


def restart_kafka(
    data_dir: Path, *, owned_by_caller: bool, timeout: float = 90.0, heap: str = "1g"
) -> KafkaProcess:
    """Start the broker :func:`start_kafka` made in ``data_dir`` again, after it stopped or
    crashed, on the ports its ``server.properties`` names.

    Its storage is not formatted again: formatting gives a new cluster id, and the broker would
    refuse the log dir (or, emptied, lose every topic). The returned process carries no
    :class:`SecuredListeners` details (a secured broker still serves those listeners).
    """
    if not (data_dir / "log" / "meta.properties").exists():
        raise InfrastructureError(
            f"there is no formatted Kafka storage in {data_dir / 'log'} to start again"
        )
    listeners = _listeners(data_dir / "server.properties")
    log_file = data_dir / "broker-restart.log"
    process = _serve(
        require_tool("java", [], INSTALL_JAVA),
        resolve_jars(),
        data_dir,
        listeners,
        log_file=log_file,
        owned_by_caller=owned_by_caller,
        timeout=timeout,
        heap=heap,
    )
    return KafkaProcess(
        process, listeners["PLAINTEXT"], data_dir, log_file, listeners["CONTROLLER"]
    )


def _listeners(props: Path) -> dict[str, int]:
    """Listener name -> port, from the ``listeners`` line of a broker's server.properties."""
    for line in props.read_text().splitlines():
        if line.startswith("listeners="):
            items = line.removeprefix("listeners=").split(",")
            return {
                name: int(address.rsplit(":", 1)[1])
                for name, _, address in (item.partition("://") for item in items)
            }
    raise InfrastructureError(f"{props} names no listeners")


def _java_arguments(data_dir: Path, jar_dir: Path) -> list[str]:
    """The logging configuration and class path every JVM run on ``data_dir`` gets."""
    return [f"-Dlog4j2.configurationFile={data_dir / 'log4j2.properties'}", "-cp", f"{jar_dir}/*"]


def _serve(
    java: Path,
    jar_dir: Path,
    data_dir: Path,
    listeners: Mapping[str, int],
    *,
    log_file: Path,
    owned_by_caller: bool,
    timeout: float,
    heap: str,
) -> subprocess.Popen[bytes]:
    """Run the broker configured in ``data_dir`` and wait until it serves its clients; each of
    its ``listeners`` ports must be free (the error names who holds one that is not)."""
    require_free_ports(listeners.values(), "Kafka")
    bootstrap_servers = f"127.0.0.1:{listeners['PLAINTEXT']}"
    args = [*_java_arguments(data_dir, jar_dir), "kafka.Kafka", str(data_dir / "server.properties")]
    return launch(
        jvm_command(java, heap=("256m", heap), args=args),
        what="Kafka broker",
        port=listeners["PLAINTEXT"],
        data_dir=data_dir,
        log_file=log_file,
        owned_by_caller=owned_by_caller,
        timeout=timeout,
        # The port opens slightly before the broker serves: wait for a real admin round trip.
        ready=lambda: asyncio.run(wait_for_metadata(bootstrap_servers, deadline=timeout)),
    )


def _api_versions_request() -> bytes:
    """Kafka's ApiVersions request (version 0, which every broker answers, if only to list the
    versions it supports): the cheapest request there is."""
    client_id = b"dev-infra"
    header = struct.pack("!hhih", 18, 0, 1, len(client_id)) + client_id
    return struct.pack("!i", len(header)) + header


def answers(host: str, port: int) -> bool:
    """Whether a Kafka broker on ``host:port`` answers now (not merely holds its port)."""
    return replies_to(host, port, _api_versions_request())


async def wait_for_metadata(bootstrap_servers: str, *, deadline: float) -> None:
    """One real admin round trip, retried until the broker answers (the port opens early)."""
    from aiokafka.admin import AIOKafkaAdminClient  # imported late: only needed here

    end = time.monotonic() + deadline
    last_error: Exception | None = None
    while time.monotonic() < end:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception as exc:
            last_error = exc
            await asyncio.sleep(0.3)
        finally:
            await admin.close()
    raise InfrastructureError(f"Kafka at {bootstrap_servers} did not answer: {last_error!r}")
