"""A throwaway PostgreSQL cluster from the locally installed server binaries.

``initdb`` into a fresh folder, trust authentication, listening on 127.0.0.1 on a free port only.
PostgreSQL refuses to run as root, so when we are root the server runs as an unprivileged user
(``postgres`` by default, ``AUTOTASK_SYNC_PG_USER`` to change it).

Durability settings are relaxed (``fsync=off``): the cluster exists for tests and demos and is
deleted afterwards; nothing in it must survive a machine crash.

With ``tls=True`` the cluster also serves TLS the way managed PostgreSQL does (:class:`ServerTls`):
``ssl=on`` with a server certificate for 127.0.0.1 and localhost from a private CA
(:mod:`tools.dev_infra.certificates`), the key owned by the server's user with mode 0600 as
PostgreSQL demands; ``tls_only=True`` makes pg_hba.conf refuse TCP sessions without TLS. The
settings are written into the cluster's own configuration files, so a restart keeps them. The
default cluster (the shared development stack's) has no TLS.
"""

from __future__ import annotations

import os
import pwd
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import InfrastructureError
from tools.dev_infra.certificates import Authority, KeyPair, authority
from tools.dev_infra.launch import ServerProcess, launch, run_checked
from tools.dev_infra.processes import (
    free_port,
    replies_to,
    require_free_ports,
    require_tool,
    wait_until,
)

DATABASE = "autotask_sync"
SUPERUSER = "postgres"
_INSTALL_POSTGRES = (
    "the PostgreSQL server, e.g. `apt-get install postgresql` "
    "(binaries land in /usr/lib/postgresql/<version>/bin), or set DATABASE_URL to an existing "
    "database"
)


_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
"""A client's first packet asking for TLS: a server answers it with one byte (``S`` or ``N``)
before any authentication."""


def answers(host: str, port: int) -> bool:
    """Whether a PostgreSQL server on ``host:port`` answers now (not merely holds its port)."""
    return replies_to(host, port, _SSL_REQUEST)


def _binary_dirs() -> list[Path]:
    base = Path("/usr/lib/postgresql")
    if not base.is_dir():
        return []
    # Newest major version first.
    versions = sorted(
        (p for p in base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
    )
    return [v / "bin" for v in versions]


CERTIFICATE_USER = "certified"
"""On a TLS cluster, the role that must log in with a client certificate (pg_hba.conf ``cert``:
its common name must be the role's name); the cluster does not create the role."""


@dataclass(frozen=True)
class ServerTls:
    """The TLS a cluster serves. Clients trust ``authority.cert`` (``sslrootcert``); the server
    certificate is for 127.0.0.1 and localhost. ``only``: TCP sessions without TLS are refused."""

    authority: Authority
    only: bool

    def client_certificate(self, folder: Path, name: str = CERTIFICATE_USER) -> KeyPair:
        """A client certificate (and its key) for the role ``name``, which the server accepts
        as that role's login (:data:`CERTIFICATE_USER`)."""
        return self.authority.client(folder, name)


@dataclass(frozen=True)
class PostgresProcess(ServerProcess):
    """A running throwaway cluster."""

    tls: ServerTls | None = None

    @property
    def dsn(self) -> str:
        """The superuser's DSN, without TLS parameters (libpq's and asyncpg's default, prefer,
        uses TLS when the server offers it but verifies nothing)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def verified_dsn(self, sslmode: str = "verify-full") -> str:
        """The superuser's DSN with ``sslmode`` and the CA as ``sslrootcert`` (a TLS cluster)."""
        if self.tls is None:
            raise InfrastructureError("this cluster was started without TLS")
        return f"{self.dsn}?sslmode={sslmode}&sslrootcert={self.tls.authority.cert}"


def _server_user() -> dict[str, Any]:
    """``subprocess`` options that run the server as an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return {}
    name = os.environ.get("AUTOTASK_SYNC_PG_USER", "postgres")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise InfrastructureError(
            f"running as root, and PostgreSQL refuses root; user '{name}' does not exist. "
            "Create an unprivileged user (e.g. `useradd --system postgres`) or set "
            "AUTOTASK_SYNC_PG_USER to one"
        ) from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "128MB",
}


def start_postgres(
    data_root: Path,
    *,
    owned_by_caller: bool,
    timeout: float = 60.0,
    tls: bool = False,
    tls_only: bool = False,
    port: int | None = None,
) -> PostgresProcess:
    """Create and start a cluster under ``data_root``; returns once it accepts connections.

    ``tls``: serve TLS too (:class:`ServerTls`); ``tls_only``: serve TLS and nothing else.
    ``port``: listen there (a stack keeping its address) rather than on a free port."""
    dirs = _binary_dirs()
    initdb = require_tool("initdb", dirs, _INSTALL_POSTGRES)
    as_server_user = _server_user()
    data_root.mkdir(parents=True, exist_ok=True)
    if as_server_user:
        os.chown(data_root, as_server_user["user"], as_server_user["group"])
    run_checked(
        [str(initdb), "-D", str(data_root / "pgdata"), "-U", SUPERUSER, "-A", "trust",
         "-E", "UTF8", "--no-sync"],
        "initdb",
        env=_env(),
        cwd=data_root,
        timeout=120,
        **as_server_user,
    )  # fmt: skip
    server_tls = None
    if tls or tls_only:
        server_tls = _configure_tls(data_root, only=tls_only, owner_uid=as_server_user.get("user"))
    return _serve(data_root, port or free_port(), owned_by_caller=owned_by_caller,
                  timeout=timeout, create_database=True, tls=server_tls)  # fmt: skip


def _configure_tls(data_root: Path, *, only: bool, owner_uid: int | None) -> ServerTls:
    """Certificates under ``data_root/tls``, ``ssl=on`` in postgresql.conf, and a pg_hba.conf
    that asks :data:`CERTIFICATE_USER` for a client certificate (and, when ``only``, everyone
    for TLS)."""
    folder = data_root / "tls"
    ca = authority(folder, "autotask-sync PostgreSQL CA")
    server = ca.server(folder, "postgres", owner_uid=owner_uid)
    pgdata = data_root / "pgdata"
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write(
            "\n# TLS (tools/dev_infra/postgres.py)\n"
            "ssl = on\n"
            f"ssl_cert_file = '{server.cert}'\n"
            f"ssl_key_file = '{server.key}'\n"
            f"ssl_ca_file = '{ca.cert}'\n"
        )
    rules = [
        "local all all trust",
        f"hostssl all {CERTIFICATE_USER} 127.0.0.1/32 cert",
        f"host all {CERTIFICATE_USER} 127.0.0.1/32 reject",
        "hostssl all all 127.0.0.1/32 trust",
    ]
    if not only:
        rules.append("host all all 127.0.0.1/32 trust")
    (pgdata / "pg_hba.conf").write_text("\n".join(rules) + "\n")
    return ServerTls(authority=ca, only=only)


def restart_postgres(
    stopped: PostgresProcess, *, owned_by_caller: bool, timeout: float = 60.0
) -> PostgresProcess:
    """Start a stopped cluster again on the same port with the same data (fault tests)."""
    return restart_cluster(stopped.data_dir, stopped.port, owned_by_caller=owned_by_caller,
                           timeout=timeout, tls=stopped.tls)  # fmt: skip


def restart_cluster(
    data_root: Path,
    port: int,
    *,
    owned_by_caller: bool,
    timeout: float = 60.0,
    tls: ServerTls | None = None,
) -> PostgresProcess:
    """Start the cluster :func:`start_postgres` made under ``data_root`` again on ``port``, after
    it stopped or crashed. PostgreSQL replays its write-ahead log, so committed rows are kept,
    all but the last fraction of a second's after a crash (commits do not wait for the log
    here). Its settings, TLS included, are in its own files; ``tls`` describes them to callers."""
    return _serve(data_root, port, owned_by_caller=owned_by_caller, timeout=timeout,
                  create_database=False, tls=tls)  # fmt: skip


def _serve(
    data_root: Path,
    port: int,
    *,
    owned_by_caller: bool,
    timeout: float,
    create_database: bool,
    tls: ServerTls | None = None,
) -> PostgresProcess:
    require_free_ports([port], "PostgreSQL")
    dirs = _binary_dirs()
    initdb = require_tool("initdb", dirs, _INSTALL_POSTGRES)
    postgres = require_tool("postgres", [initdb.parent, *dirs], _INSTALL_POSTGRES)
    createdb = require_tool("createdb", [initdb.parent, *dirs], _INSTALL_POSTGRES)
    psql = require_tool("psql", [initdb.parent, *dirs], _INSTALL_POSTGRES)
    settings = {**_SETTINGS, "unix_socket_directories": str(data_root)}
    log_file = data_root / ("postgres.log" if create_database else "postgres-restart.log")
    address = ["-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER]

    def ready() -> None:
        # The port opens before the server takes sessions: on a busy machine, and after a crash
        # (it replays its log first), "the database system is starting up" for a while.
        query = [str(psql), *address, "-d", "postgres", "-c", "SELECT 1"]
        wait_until(lambda: _succeeds(query), timeout=timeout, what="PostgreSQL taking sessions",
                   log_file=log_file)  # fmt: skip
        if create_database:
            run_checked([str(createdb), *address, DATABASE], "createdb", env=_env(), timeout=60)

    process = launch(
        [str(postgres), "-D", str(data_root / "pgdata"), "-p", str(port),
         *(arg for key, value in settings.items() for arg in ("-c", f"{key}={value}"))],
        what="PostgreSQL",
        port=port,
        data_dir=data_root,
        log_file=log_file,
        owned_by_caller=owned_by_caller,
        timeout=timeout,
        ready=ready,
        env=_env(),
        cwd=data_root,
        **_server_user(),
    )  # fmt: skip
    return PostgresProcess(process, port, data_root, log_file, tls)


def _succeeds(command: list[str]) -> bool:
    return subprocess.run(command, capture_output=True, env=_env(), timeout=60).returncode == 0


def _env() -> dict[str, str]:
    return {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}


def remove_data(data_root: Path) -> None:
    shutil.rmtree(data_root, ignore_errors=True)
