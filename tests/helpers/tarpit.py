"""A port that accepts connections and closes them at once, counting who knocked.

When a broker goes away, what its clients do depends on what they find at its address. A closed
port answers each attempt with a reset straight away; an address that still accepts (a load
balancer, a proxy, a half-started broker) takes the connection and drops it before any answer.
Either way the client's reconnect backoff alone decides how often it tries again, and a client
without one spins: thousands of connections a second, a core burnt, logs flooded.

:class:`Tarpit` stands in for the broker on its port, on loopback, and counts the attempts per
second. Several processes share the port, so each attempt is traced to the process that made it:
the kernel names the inode of the connection's client end (netlink sock_diag, as ``ss`` asks),
and the inode is looked for among the open files of the processes named in ``owners``, while the
client still holds it (the connection is closed only after). Reading a process's open files
takes a fraction of a millisecond, so above ``traces_per_second`` attempts a second only a
random sample is traced, each attempt with the same chance whoever made it, and each traced
attempt stands for ``1 / chance`` of them (exact while attempts are rarer: every one is traced).
Linux only.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType

_RESET = struct.pack("ii", 1, 0)
"""SO_LINGER on with a zero timeout: close() sends a reset."""

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NO_COOKIE = 0xFFFFFFFF
_ALL_STATES = 0xFFFFFFFF
_INODE_AT = 4 + 48 + 16
"""Where ``idiag_inode`` sits in ``struct inet_diag_msg``: after family, state, timer, retrans,
the 48-byte socket id, expires, rqueue, wqueue and uid."""

UNKNOWN = "?"
"""The label of a traced attempt whose client end was already gone or not in ``owners``."""


@dataclass(frozen=True)
class Knocks:
    """The attempts seen in one window, and what they say about each process."""

    seconds: float
    total: int
    traced: Mapping[str, float]
    """Per label, how many attempts its traced ones stand for."""
    per_second: list[int]
    """Attempts in each whole second of the window (all processes)."""

    @property
    def rate(self) -> float:
        """Attempts per second, all processes together."""
        return self.total / self.seconds if self.seconds > 0 else 0.0

    def rate_of(self, label: str) -> float:
        """Attempts per second made by ``label`` (an estimate unless every attempt was traced)."""
        return self.traced.get(label, 0.0) / self.seconds if self.seconds > 0 else 0.0

    def rates(self) -> dict[str, float]:
        """Attempts per second by label (estimates unless every attempt was traced)."""
        return {label: self.rate_of(label) for label in self.traced}

    def summary(self, labels: list[str]) -> str:
        """One line: the overall rate and peak, then each process's rate."""
        parts = [
            f"{self.total} attempts in {self.seconds:.0f} s ({self.rate:.1f}/s, "
            f"peak {max(self.per_second, default=0)}/s)"
        ]
        parts += [f"{label} {self.rate_of(label):.1f}/s" for label in [*labels, UNKNOWN]]
        return "; ".join(parts)


@dataclass
class Tarpit:
    """Listens on ``127.0.0.1:port`` in a thread of its own; a context manager.

    ``owners`` maps a label to a process id; attempts are traced to them (see the module
    docstring). :meth:`reset` starts a new window; :meth:`knocks` reads the current one."""

    port: int
    owners: Mapping[str, int] = field(default_factory=dict)
    traces_per_second: int = 50
    _socket: socket.socket | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _times: list[float] = field(default_factory=list, repr=False)
    _traced: dict[str, float] = field(default_factory=dict, repr=False)
    _random: random.Random = field(default_factory=random.Random, repr=False)
    _since: float = field(default_factory=time.monotonic, repr=False)

    def start(self) -> None:
        """Bind (the broker that held the port has stopped) and accept in the background."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(1024)
        listener.settimeout(0.2)  # to notice :meth:`stop`
        self._socket = listener
        self.reset()
        self._thread = threading.Thread(target=self._accept, name="tarpit", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and free the port."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def reset(self) -> None:
        """Forget what was counted: a new window starts now."""
        with self._lock:
            self._times = []
            self._traced = {}
            self._since = time.monotonic()

    def knocks(self) -> Knocks:
        """The window so far."""
        with self._lock:
            now = time.monotonic()
            seconds = now - self._since
            buckets = [0] * max(1, int(seconds))
            for at in self._times:
                index = int(at - self._since)
                if index < len(buckets):
                    buckets[index] += 1
            return Knocks(seconds, len(self._times), dict(self._traced), buckets)

    def __enter__(self) -> Tarpit:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _accept(self) -> None:
        assert self._socket is not None
        second, this_second, last_second = 0, 0, 0
        while not self._stop.is_set():
            try:
                connection, (_, peer_port) = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed under us
            now = time.monotonic()
            if int(now) != second:
                second, last_second, this_second = int(now), this_second, 0
            this_second += 1
            # The chance depends only on the rate a moment ago, never on who is knocking.
            chance = min(1.0, self.traces_per_second / max(1, last_second, this_second))
            label = None
            if self.owners and self._random.random() < chance:
                label = self._owner_of(peer_port)
            # A reset, not a FIN: thousands of attempts a second leave no TIME_WAIT pile behind.
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            connection.close()
            with self._lock:
                self._times.append(now)
                if label is not None:
                    self._traced[label] = self._traced.get(label, 0.0) + 1 / chance

    def _owner_of(self, peer_port: int) -> str:
        """Which of ``owners`` holds the client end of the connection from ``peer_port``."""
        inode = _client_inode(peer_port, self.port)
        if inode is None:
            return UNKNOWN
        wanted = f"socket:[{inode}]"
        for label, pid in self.owners.items():
            if wanted in _open_sockets(pid):
                return label
        return UNKNOWN


def _client_inode(client_port: int, server_port: int) -> str | None:
    """The inode of the loopback socket ``client_port`` -> ``server_port`` (IPv4), if open.

    Asked of the kernel by its four addresses (netlink's sock_diag, as ``ss`` does): reading
    ``/proc/net/tcp`` instead takes milliseconds on a machine with thousands of sockets."""
    loopback = socket.inet_aton("127.0.0.1") + bytes(12)
    sockid = struct.pack("!HH16s16s", client_port, server_port, loopback, loopback) + struct.pack(
        "=III", 0, _NO_COOKIE, _NO_COOKIE
    )
    request = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, _ALL_STATES) + sockid
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as netlink:
            netlink.send(header + request)
            reply = netlink.recv(8192)
    except OSError:
        return None
    length, kind = struct.unpack_from("=IH", reply)
    if kind != _SOCK_DIAG_BY_FAMILY or length < 16 + _INODE_AT + 4:
        return None  # NLMSG_ERROR: no such socket (the client closed it already)
    inode = struct.unpack_from("=I", reply, 16 + _INODE_AT)[0]
    return str(inode) if inode else None


def _open_sockets(pid: int) -> set[str]:
    """The ``socket:[inode]`` links among ``pid``'s open files (empty if it is gone)."""
    folder = f"/proc/{pid}/fd"
    links: set[str] = set()
    try:
        names = os.listdir(folder)
    except OSError:
        return links
    for name in names:
        try:
            links.add(os.readlink(f"{folder}/{name}"))
        except OSError:
            continue
    return links


__all__ = ["UNKNOWN", "Knocks", "Tarpit"]
