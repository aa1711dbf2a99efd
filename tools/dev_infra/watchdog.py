"""Stops a process (and deletes its data) when the process that owns it dies.

Test sessions own their PostgreSQL and Kafka, and the services and commands their tests start;
if pytest is killed (SIGKILL, a CI timeout) nothing else would stop them. A parent-death signal
cannot do this job for PostgreSQL, because switching away from root clears it, so a tiny
watchdog process polls for its owner instead (docs/adr/0002).

Usage: ``python -m tools.dev_infra.watchdog OWNER_PID SERVER_PID [DATA_DIR]``
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

# Watchdogs started by this process and the pid each one watches, kept so they are reaped
# rather than leaked.
_spawned: dict[subprocess.Popen[bytes], int] = {}


def spawn(owner_pid: int, server_pid: int, data_dir: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a detached watchdog that stops ``server_pid`` (and deletes ``data_dir``, if given)
    once ``owner_pid`` is gone; it exits by itself when ``server_pid`` does."""
    command = [sys.executable, "-m", "tools.dev_infra.watchdog", str(owner_pid), str(server_pid)]
    if data_dir is not None:
        command.append(str(data_dir))
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # survives the owner's process group being killed
        cwd=Path(__file__).resolve().parents[2],
    )
    _spawned[process] = server_pid
    return process


def release(process: subprocess.Popen[bytes], timeout: float = 3.0) -> None:
    """End a watchdog whose server its owner has stopped, without waiting for its next poll."""
    _spawned.pop(process, None)
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def reap(timeout: float = 3.0) -> None:
    """Wait for the watchdogs whose servers are gone (each exits within one poll interval).

    Watchdogs of servers still running are left alone: they still have a job to do."""
    for process, server_pid in list(_spawned.items()):
        if not pid_alive(server_pid):
            release(process, timeout)


def main(argv: list[str]) -> int:
    owner_pid, server_pid = int(argv[0]), int(argv[1])
    data_dir = Path(argv[2]) if len(argv) > 2 else None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a clean stop ends the watchdog
    while pid_alive(server_pid):
        if not pid_alive(owner_pid):
            stop_process(server_pid, grace=5)
            if data_dir is not None:
                shutil.rmtree(data_dir, ignore_errors=True)
            return 0
        time.sleep(POLL_SECONDS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
