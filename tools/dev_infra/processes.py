"""Small process and network helpers shared by the local PostgreSQL and Kafka launchers."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from shared.errors import InfrastructureError, MissingToolError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def replies_to(host: str, port: int, request: bytes, *, timeout: float = 3.0) -> bool:
    """Whether the server on ``host:port`` replies to ``request`` within ``timeout``. An open
    port is not enough: the kernel completes connections for a hung or stopped process too."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            return bool(sock.recv(1))
    except OSError:
        return False


def require_free_ports(ports: Iterable[int], what: str) -> None:
    """Raise, naming the process that holds it, when one of ``ports`` cannot be listened on.

    A server keeping its address across a restart must not land elsewhere or fail with a bare
    "address in use" in its log: the person needs to know which program took the port."""
    for port in ports:
        holder = port_taken_by(port)
        if holder is not None:
            raise InfrastructureError(
                f"{what} cannot listen on 127.0.0.1:{port}: the port is taken by {holder}"
            )


def port_taken_by(port: int) -> str | None:
    """Who holds TCP ``port`` on 127.0.0.1, for a message (``pid 4242 (python3 -m http.server
    5432)``), or None when a server could listen on it now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Bound as servers bind: a closed connection lingering in TIME_WAIT does not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return _holder(port)
    return None


def _holder(port: int) -> str:
    inodes = _socket_inodes(port)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and inodes & _open_sockets(entry):
            return f"pid {entry.name} ({command_line(int(entry.name))[:100]})"
    return "a process this user cannot see"


def _socket_inodes(port: int) -> set[str]:
    """The inodes of the TCP sockets bound to local ``port`` (IPv4 and IPv6), from /proc/net."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] != "0":
                    inodes.add(fields[9])
    return inodes


def _open_sockets(proc: Path) -> set[str]:
    """The socket inodes among a process's open files (empty when it is gone or not ours)."""
    sockets: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in (proc / "fd").iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    sockets.add(link[len("socket:[") : -1])
    return sockets


def command_line(pid: int) -> str:
    """The command ``pid`` runs with its arguments, space-separated ("" when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; treat it as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def require_tool(name: str, candidates: list[Path], install_hint: str) -> Path:
    """Find ``name`` on PATH or in ``candidates``; otherwise say what to install."""
    found = shutil.which(name)
    if found:
        return Path(found)
    for folder in candidates:
        path = folder / name
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise MissingToolError(f"'{name}' was not found on PATH. Install it: {install_hint}")


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    process: subprocess.Popen[bytes] | None = None,
    log_file: Path | None = None,
    interval: float = 0.1,
) -> None:
    """Poll ``check`` until it is true; fail early if ``process`` exits, with its log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and process.poll() is not None:
            raise InfrastructureError(
                f"{what} exited with code {process.returncode} while starting" + _log_tail(log_file)
            )
        time.sleep(interval)
    raise InfrastructureError(f"{what} was not ready within {timeout:.0f} s" + _log_tail(log_file))


def stop_process(pid: int, *, grace: float, sig: int = signal.SIGTERM) -> None:
    """Send ``sig``, wait up to ``grace`` seconds, then SIGKILL. Safe on an already-gone pid."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)


def peak_rss_bytes(pid: int) -> int | None:
    """Peak resident set size (VmHWM) of a live process, from /proc."""
    return _status_bytes(pid, "VmHWM:")


def rss_bytes(pid: int) -> int | None:
    """Resident set size (VmRSS) of a live process now, from /proc."""
    return _status_bytes(pid, "VmRSS:")


def _status_bytes(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _log_tail(log_file: Path | None, lines: int = 30) -> str:
    if log_file is None or not log_file.exists():
        return ""
    tail = log_file.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log_file}:\n" + "\n".join(tail)
