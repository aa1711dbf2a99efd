"""A throwaway PostgreSQL cluster from the locally installed server binaries.

``initdb`` into a fresh folder, trust authentication, listening on 127.0.0.1 on a free port only.
PostgreSQL refuses to run as root, so when we are root the server runs as an unprivileged user
(``postgres`` by default, ``AUTOTASK_SYNC_PG_USER`` to change it).

Durability settings are relaxed (``fsync=off``): the cluster exists for tests and demos and is
deleted afterwards; nothing in it must survive a machine crash.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import InfrastructureError
from tools.dev_infra import watchdog
from tools.dev_infra.processes import (
    free_port,
    port_open,
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


def _binary_dirs() -> list[Path]:
    base = Path("/usr/lib/postgresql")
    if not base.is_dir():
        return []
    # Newest major version first.
    versions = sorted(
        (p for p in base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
    )
    return [v / "bin" for v in versions]


@dataclass(frozen=True)
class PostgresProcess:
    """A running throwaway cluster."""

    pid: int
    port: int
    data_dir: Path
    log_file: Path
    # Kept so the Popen object is reaped by its owner rather than warned about when collected.
    process: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"


def _run_as() -> tuple[str | None, int | None, int | None]:
    """Which user to run the server as: ourselves unless we are root."""
    if os.geteuid() != 0:
        return None, None, None
    name = os.environ.get("AUTOTASK_SYNC_PG_USER", "postgres")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise InfrastructureError(
            f"running as root, and PostgreSQL refuses root; user '{name}' does not exist. "
            "Create an unprivileged user (e.g. `useradd --system postgres`) or set "
            "AUTOTASK_SYNC_PG_USER to one"
        ) from None
    return name, entry.pw_uid, entry.pw_gid


def start_postgres(
    data_root: Path, *, owned_by_caller: bool, timeout: float = 60.0
) -> PostgresProcess:
    """Create and start a cluster under ``data_root``; returns once it accepts connections."""
    dirs = _binary_dirs()
    initdb = require_tool("initdb", dirs, _INSTALL_POSTGRES)
    postgres = require_tool("postgres", [initdb.parent, *dirs], _INSTALL_POSTGRES)
    createdb = require_tool("createdb", [initdb.parent, *dirs], _INSTALL_POSTGRES)
    user, uid, gid = _run_as()

    data_root.mkdir(parents=True, exist_ok=True)
    data_dir = data_root / "pgdata"
    log_file = data_root / "postgres.log"
    if uid is not None and gid is not None:
        os.chown(data_root, uid, gid)
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}

    init = subprocess.run(
        [
            str(initdb),
            "-D",
            str(data_dir),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        capture_output=True,
        check=False,
        user=user,
        group=gid,
        env=env,
        cwd=data_root,
        timeout=120,
    )
    if init.returncode != 0:
        raise InfrastructureError("initdb failed: " + init.stderr.decode(errors="replace")[-2000:])

    port = free_port()
    with log_file.open("wb") as out:
        if uid is not None and gid is not None:
            os.chown(log_file, uid, gid)
        process = subprocess.Popen(
            [
                *_drop_privileges(uid, gid),
                str(postgres),
                "-D",
                str(data_dir),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={data_root}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=128MB",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=data_root,
            start_new_session=True,
        )
    server = PostgresProcess(process.pid, port, data_root, log_file, process)
    if owned_by_caller:
        watchdog.spawn(os.getpid(), process.pid, data_root)
    try:
        wait_until(
            lambda: port_open(port),
            timeout=timeout,
            what="PostgreSQL",
            process=process,
            log_file=log_file,
        )
        created = subprocess.run(
            [str(createdb), "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, DATABASE],
            capture_output=True,
            check=False,
            env=env,
            timeout=60,
        )
        if created.returncode != 0:
            raise InfrastructureError(
                "createdb failed: " + created.stderr.decode(errors="replace")[-2000:]
            )
    except BaseException:
        process.kill()
        process.wait()
        raise
    return server


def _drop_privileges(uid: int | None, gid: int | None) -> list[str]:
    """A ``setpriv`` prefix that switches to ``uid``/``gid`` (nothing when not root)."""
    if uid is None or gid is None:
        return []
    setpriv = require_tool("setpriv", [Path("/usr/bin"), Path("/bin")], "util-linux")
    return [str(setpriv), f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]


def remove_data(data_root: Path) -> None:
    shutil.rmtree(data_root, ignore_errors=True)
