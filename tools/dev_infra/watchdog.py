"""Stops a server and deletes its data when the process that owns it dies.

Test sessions own their PostgreSQL and Kafka; if pytest is killed (SIGKILL, a CI timeout) nothing
else would stop them. A parent-death signal cannot do this job for PostgreSQL, because switching
away from root clears it, so a tiny watchdog process polls for its owner instead.

Usage: ``python -m tools.dev_infra.watchdog OWNER_PID SERVER_PID DATA_DIR``
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tools.dev_infra.processes import pid_alive, stop_process

POLL_SECONDS = 0.5

# Watchdogs started by this process, kept so they are reaped rather than leaked.
_spawned: list[subprocess.Popen[bytes]] = []


def spawn(owner_pid: int, server_pid: int, data_dir: Path) -> subprocess.Popen[bytes]:
    """Start a detached watchdog for ``server_pid`` on behalf of ``owner_pid``."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.dev_infra.watchdog",
            str(owner_pid),
            str(server_pid),
            str(data_dir),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # survives the owner's process group being killed
        cwd=Path(__file__).resolve().parents[2],
    )
    _spawned.append(process)
    return process


def reap(timeout: float = 3.0) -> None:
    """Wait for watchdogs whose servers are gone (each exits within one poll interval)."""
    for process in list(_spawned):
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait()
        _spawned.remove(process)


def main(argv: list[str]) -> int:
    owner_pid, server_pid, data_dir = int(argv[0]), int(argv[1]), Path(argv[2])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a clean stop ends the watchdog
    while pid_alive(server_pid):
        if not pid_alive(owner_pid):
            stop_process(server_pid, grace=5)
            shutil.rmtree(data_dir, ignore_errors=True)
            return 0
        time.sleep(POLL_SECONDS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
