"""The stack ``python -m tools dev-infra up`` leaves running, as its state file records it.

The record (``.dev-infra/state.json`` by default) names each server of the stack and where it
listens; for a server started from local binaries, also its pid and data folder. That is what it
takes to tell how each server is (:meth:`Server.state`) and to bring a stopped one back as it was
(:func:`repair`): on the same port, so the addresses people exported and services were given stay
right, and on the same data, so databases, rows and topics are still there. A server whose data
folder was removed is started new in its place, on its port. A server from the environment or a
container is only looked at: it is not run from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shared.errors import InfrastructureError
from tools.dev_infra import kafka, postgres
from tools.dev_infra.launch import ServerProcess
from tools.dev_infra.processes import command_line, pid_alive, port_taken_by
from tools.dev_infra.stack import DevStack, StackEnv, StackProcesses

TITLES = {"postgres": "PostgreSQL", "kafka": "Kafka"}
_ELSEWHERE = {"environment": "from the environment", "testcontainers": "in a container"}
_ANSWERS = {"postgres": postgres.answers, "kafka": kafka.answers}


class State(StrEnum):
    """How a server is, as ``status`` prints it."""

    RUNNING = "running"
    NOT_ANSWERING = "not answering"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Server:
    """One server of the recorded stack: ``name`` is ``postgres`` or ``kafka``; ``source`` says
    where it came from (``local binaries``, ``local jars``, ``testcontainers``, ``environment``).
    ``pid`` and ``data_dir`` are set for a server started from local binaries."""

    name: str
    source: str
    host: str
    port: int
    pid: int | None = None
    data_dir: Path | None = None

    @property
    def title(self) -> str:
        return f"{TITLES[self.name]} {self.host}:{self.port}"

    @property
    def where(self) -> str:
        """``data /tmp/autotask-sync-pg-...`` for a local server, else where it comes from."""
        if self.data_dir is not None:
            return f"data {self.data_dir}"
        return _ELSEWHERE.get(self.source, self.source)

    def running_pid(self) -> int | None:
        """The recorded pid while it still runs this server. Its command line must name the
        data folder: a pid the system gave another program after a crash or a reboot is not
        taken for the server, nor stopped by ``down``."""
        if self.pid and pid_alive(self.pid) and str(self.data_dir) in command_line(self.pid):
            return self.pid
        return None

    def state(self) -> State:
        if self.data_dir is not None and self.running_pid() is None:
            return State.STOPPED
        return State.RUNNING if _ANSWERS[self.name](self.host, self.port) else State.NOT_ANSWERING

    def report(self, state: State) -> str:
        """One ``status`` line: ``Kafka 127.0.0.1:39092: stopped; pid -; data /tmp/...``."""
        why = self._why_stopped() if state is State.STOPPED else None
        pid = self.running_pid() or "-"
        return f"{self.title}: {state}{f' ({why})' if why else ''}; pid {pid}; {self.where}"

    def _why_stopped(self) -> str | None:
        """What ``up`` will find in the way of starting it again, if anything."""
        if self.data_dir is not None and not self.data_dir.exists():
            return "its data folder is gone"
        holder = port_taken_by(self.port)
        return f"its port is taken by {holder}" if holder else None


@dataclass(frozen=True)
class Repair:
    """What :func:`repair` found and did: ``server`` as it is now (a restarted one has its new
    pid), ``done`` for the person, ``ok`` when it runs."""

    server: Server
    done: str
    ok: bool


def repair(server: Server) -> Repair:
    """Start ``server`` again if it stopped, on its port and data (or new, in its place, when
    the data folder is gone). A server that is alive but does not answer is left alone: it may
    be starting, and stopping it is the person's call."""
    state = server.state()
    if state is State.RUNNING:
        origin = f"pid {server.pid}" if server.data_dir else server.where
        return Repair(server, f"running ({origin})", ok=True)
    if state is State.NOT_ANSWERING:
        advice = (
            f"pid {server.pid} is alive: left alone; give it a moment, or `down` and `up` a new "
            "stack"
            if server.data_dir
            else f"{server.where}: not started from here"
        )
        return Repair(server, f"not answering ({advice})", ok=False)
    assert server.data_dir is not None  # only a local server is ever stopped
    try:
        if server.data_dir.exists():
            started = _restart(server.name, server.data_dir, server.port)
            done = "was stopped, restarted on the same port and data"
        else:
            started = _start_new(server.name, server.data_dir, server.port)
            done = "was stopped and its data folder was gone: started a new, empty one there"
    except InfrastructureError as exc:
        return Repair(server, f"was stopped, and starting it again failed: {exc}", ok=False)
    return Repair(replace(server, pid=started.pid), f"{done} (pid {started.pid})", ok=True)


def _restart(name: str, data_dir: Path, port: int) -> ServerProcess:
    if name == "postgres":
        return postgres.restart_cluster(data_dir, port, owned_by_caller=False)
    return kafka.restart_kafka(data_dir, owned_by_caller=False)


def _start_new(name: str, data_dir: Path, port: int) -> ServerProcess:
    if name == "postgres":
        return postgres.start_postgres(data_dir, owned_by_caller=False, port=port)
    return kafka.start_kafka(data_dir, owned_by_caller=False, port=port)


@dataclass(frozen=True)
class StackRecord:
    """The recorded stack: its addresses (``env``), its servers, the containers it started."""

    env: StackEnv
    servers: tuple[Server, ...]
    container_ids: tuple[str, ...] = ()

    @classmethod
    def of(cls, stack: DevStack, env: StackEnv) -> StackRecord:
        """The record of a stack ``stack.up()`` just started (``env``)."""
        servers = []
        for name, address in (
            ("postgres", env.database_url),
            ("kafka", env.kafka_bootstrap_servers),
        ):
            local = stack.servers.get(name)
            if local is not None:
                servers.append(
                    Server(name, stack.sources[name], "127.0.0.1", local.port, local.pid,
                           local.data_dir)
                )  # fmt: skip
            elif address:
                servers.append(Server(name, stack.sources[name], *_endpoint(name, address)))
        return cls(env, tuple(servers), tuple(stack.processes.container_ids))

    def states(self) -> dict[Server, State]:
        return {server: server.state() for server in self.servers}

    @property
    def running(self) -> bool:
        return all(state is State.RUNNING for state in self.states().values())

    def processes(self) -> StackProcesses:
        """What ``down`` stops and deletes: the servers still running and every data folder."""
        pids = {server.name: server.running_pid() for server in self.servers}
        return StackProcesses(
            postgres_pid=pids.get("postgres"),
            kafka_pid=pids.get("kafka"),
            data_dirs=[str(server.data_dir) for server in self.servers if server.data_dir],
            container_ids=list(self.container_ids),
        )

    def save(self, path: Path) -> None:
        """Write the record; a reader never sees half of it."""
        servers = [
            {**vars(server), "data_dir": str(server.data_dir) if server.data_dir else None}
            for server in self.servers
        ]
        text = json.dumps(
            {"env": vars(self.env), "servers": servers, "container_ids": self.container_ids},
            indent=2,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f".{path.name}.writing")
        scratch.write_text(text)
        scratch.replace(path)

    @classmethod
    def load(cls, path: Path) -> StackRecord | None:
        """The record in ``path``; None when there is none."""
        try:
            data = json.loads(path.read_text())
            if "servers" not in data:
                data = _from_first_layout(data)
            servers = tuple(
                Server(**{**server, "data_dir": server["data_dir"] and Path(server["data_dir"])})
                for server in data["servers"]
            )
            return cls(StackEnv(**data["env"]), servers, tuple(data["container_ids"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InfrastructureError(
                f"{path} is not a stack record this version can read ({exc!r}): stop the "
                "servers it names by their pids and delete it"
            ) from exc


def _from_first_layout(old: dict[str, Any]) -> dict[str, Any]:
    """A record written before servers were recorded one by one (pids and data folders in
    ``processes``), in today's layout: stacks started then are reused, repaired and stopped
    like any. Data folders are told apart by the name :class:`DevStack` gives them."""
    env = {"database_url": old["env"]["DATABASE_URL"],
           "kafka_bootstrap_servers": old["env"]["KAFKA_BOOTSTRAP_SERVERS"]}  # fmt: skip
    processes = old["processes"]
    servers = []
    for name, address, kind in (
        ("postgres", env["database_url"], "pg"),
        ("kafka", env["kafka_bootstrap_servers"], "kafka"),
    ):
        if not address:
            continue
        folders = (d for d in processes["data_dirs"] if f"autotask-sync-{kind}-" in Path(d).name)
        host, port = _endpoint(name, address)
        servers.append(
            {"name": name, "source": old["sources"][name], "host": host, "port": port,
             "pid": processes[f"{name}_pid"], "data_dir": next(folders, None)}
        )  # fmt: skip
    return {"env": env, "servers": servers, "container_ids": processes["container_ids"]}


def _endpoint(name: str, address: str) -> tuple[str, int]:
    """Host and port of a server given by address (a DSN, or Kafka's bootstrap list)."""
    if name == "postgres":
        url = urlsplit(address)
        return url.hostname or "127.0.0.1", url.port or 5432
    host, _, port = address.split(",")[0].rpartition(":")
    return host, int(port)
