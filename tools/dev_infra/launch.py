"""Starting a local server process the same way for PostgreSQL and Kafka.

Output goes to a log file (an undrained pipe would eventually block the server), the server gets
its own session (a Ctrl-C meant for the caller does not reach it), a watchdog stops it when the
caller dies if the caller owns it, and the call returns only once the server listens.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import InfrastructureError
from tools.dev_infra import watchdog
from tools.dev_infra.processes import port_open, wait_until

# Servers started to outlive this process (the CLI's stack): their Popen objects are kept for the
# life of the interpreter so they are not reported as leaked when collected.
_detached: list[subprocess.Popen[bytes]] = []


@dataclass(frozen=True)
class ServerProcess:
    """A running local server."""

    # Kept so its owner reaps it, rather than Python warning about it when collected.
    process: subprocess.Popen[bytes] = field(compare=False, repr=False)
    port: int
    data_dir: Path
    log_file: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def run_checked(command: Sequence[str], what: str, **options: Any) -> None:
    """Run a preparation step; a failure raises with the tail of what it printed."""
    result = subprocess.run(command, capture_output=True, check=False, **options)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).decode(errors="replace")[-2000:]
        raise InfrastructureError(f"{what} failed: {output}")


def launch(
    command: Sequence[str],
    *,
    what: str,
    port: int,
    data_dir: Path,
    log_file: Path,
    owned_by_caller: bool,
    timeout: float,
    ready: Callable[[], None] | None = None,
    **options: Any,
) -> subprocess.Popen[bytes]:
    """Start ``command`` and wait until ``port`` accepts connections and ``ready`` passes.

    ``owned_by_caller`` ties the server's life to the calling process (test sessions): a
    watchdog stops it and deletes ``data_dir`` if the caller dies without stopping it. The CLI
    passes False so its servers outlive the command. If starting fails, the server is killed.
    """
    with log_file.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **options,
        )
    if owned_by_caller:
        watchdog.spawn(os.getpid(), process.pid, data_dir)
    else:
        _detached.append(process)
    try:
        wait_until(
            lambda: port_open(port), timeout=timeout, what=what, process=process, log_file=log_file
        )
        if ready is not None:
            ready()
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process
