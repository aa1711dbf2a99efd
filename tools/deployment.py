"""A deployment on this machine for the demo, the end-to-end tests and the benchmarks.

:class:`ChildProcess` runs a Python module as a child that cannot outlive this process: a
watchdog (:mod:`tools.dev_infra.watchdog`) stops it if this process dies first, so a killed test
run or demo leaves nothing running. :class:`ServiceProcess` runs one service
(``python -m services.<name>``) that way, with its own ports (public and ops) and log;
:func:`run_cli` runs an ``autotask-sync`` command. :class:`LocalDeployment` holds what the
services of one deployment share (database, broker, topic prefix, secret key), starts them, and
runs commands against the same environment. Development only: the product never imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from tools.dev_infra import watchdog
from tools.dev_infra.processes import free_port

ROOT = Path(__file__).resolve().parents[1]

_CLEARED_PREFIXES = ("AUTOTASK_SYNC_",)
_CLEARED = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")


def clean_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the project's own settings, plus ``env``.

    A variable given as an empty string is left out: that is how a caller unsets one."""
    base = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_CLEARED_PREFIXES) and name not in _CLEARED
    }
    base.update(env or {})
    return {name: value for name, value in base.items() if value != ""}


def _seconds(within: timedelta | None) -> float | None:
    return None if within is None else within.total_seconds()


@dataclass
class ChildProcess:
    """``python -m MODULE ARGS`` as a child of this process that cannot outlive it."""

    process: asyncio.subprocess.Process
    _watchdog: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    async def start(
        cls, module: str, *args: str, env: Mapping[str, str] | None = None, **options: Any
    ) -> ChildProcess:
        """Start ``module`` with ``env`` as its whole environment (None: this process's).
        ``options`` (``stdin``, ``stdout``, ``stderr``) go to the subprocess as they are."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            *args,
            cwd=ROOT,
            env=None if env is None else dict(env),
            **options,
        )
        return cls(process, watchdog.spawn(os.getpid(), process.pid))

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def send_signal(self, sig: int) -> None:
        """Signal it, if it still runs."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    async def wait(self, within: timedelta | None = None) -> int:
        """Its exit code, once it has exited; TimeoutError if that takes longer than
        ``within`` (it keeps running)."""
        code = await asyncio.wait_for(self.process.wait(), _seconds(within))
        self._release()
        return code

    async def stop(
        self, *, sig: int = signal.SIGTERM, within: timedelta = timedelta(seconds=25)
    ) -> int:
        """Send ``sig``, wait up to ``within`` for it to exit (then SIGKILL); its exit code."""
        self.send_signal(sig)
        try:
            return await self.wait(within)
        except TimeoutError:
            return await self.kill()

    async def kill(self) -> int:
        """SIGKILL: no drain, no commit."""
        self.send_signal(signal.SIGKILL)
        return await self.wait()

    async def communicate(
        self, stdin: bytes | None = None, *, within: timedelta | None = None
    ) -> tuple[bytes, bytes]:
        """Send ``stdin``, read its output to the end and wait for it to exit. If that takes
        longer than ``within`` (TimeoutError) or the wait is cancelled, it is killed."""
        try:
            out, err = await asyncio.wait_for(self.process.communicate(stdin), _seconds(within))
        except BaseException:
            await self.kill()
            raise
        self._release()
        return out, err

    def _release(self) -> None:
        if self._watchdog is not None:
            watchdog.release(self._watchdog)
            self._watchdog = None


@dataclass
class ServiceProcess:
    """One service (``python -m services.<name>``) as a real process: its own ports, its output
    in ``log_path`` (appended to), stopped by a watchdog if this process dies first.

    ``port`` is the public port (the gateway's callout routes; the other services have none),
    ``ops_port`` the one of ``/healthz``, ``/readyz`` and ``/metrics``."""

    name: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    child: ChildProcess | None = field(default=None, repr=False)
    ops_port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        """The public routes (the gateway's callouts)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        """The ops endpoints: ``/healthz``, ``/readyz``, ``/metrics``."""
        return f"http://127.0.0.1:{self.ops_port}"

    @property
    def process(self) -> asyncio.subprocess.Process | None:
        return None if self.child is None else self.child.process

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.returncode is None

    async def start(
        self, *, ready: timedelta | None = timedelta(seconds=30), probe: str = "/readyz"
    ) -> ServiceProcess:
        """Start it and wait up to ``ready`` until ``probe`` (an ops path) answers 200 (None:
        return at once). A service started again (after a stop or a kill) keeps its ports and
        log."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        if self.child is not None:
            await self.child.wait()  # the previous run has exited: let its watchdog go
        env = clean_environment(
            {
                "AUTOTASK_SYNC_HTTP_HOST": "127.0.0.1",
                "AUTOTASK_SYNC_HTTP_PORT": str(self.port),
                "AUTOTASK_SYNC_OPS_PORT": str(self.ops_port),
                "AUTOTASK_SYNC_LOG_FORMAT": "json",
                "AUTOTASK_SYNC_SHUTDOWN_GRACE": "10s",
                **self.env,
            }
        )
        # A small local file, opened once per start: not worth a thread.
        log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115, ASYNC230
        try:
            self.child = await ChildProcess.start(
                f"services.{self.name}",
                env=env,
                stdout=log or asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            if log is not None:
                log.close()  # the child has its own copy
        if ready is not None:
            await self.wait_ready(ready, probe=probe)
        return self

    async def wait_ready(self, within: timedelta, *, probe: str = "/readyz") -> None:
        """Until ``probe`` answers 200 on the ops port; fails if the service exits or
        ``within`` passes."""
        assert self.child is not None, "start the service first"
        deadline = asyncio.get_running_loop().time() + within.total_seconds()
        async with aiohttp.ClientSession() as session:
            while asyncio.get_running_loop().time() < deadline:
                if self.child.returncode is not None:
                    raise AssertionError(
                        f"{self.name} exited with {self.child.returncode}" + self._log_tail()
                    )
                try:
                    async with session.get(f"{self.ops_url}{probe}") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} was not ready within {within}" + self._log_tail())

    async def wait(self, within: timedelta | None = None) -> int:
        """Its exit code, once it has exited by itself (TimeoutError after ``within``)."""
        assert self.child is not None, "start the service first"
        return await self.child.wait(within)

    async def stop(
        self, *, sig: int = signal.SIGTERM, within: timedelta = timedelta(seconds=25)
    ) -> int | None:
        """Send ``sig`` (SIGTERM: a graceful stop) and wait, then SIGKILL; the exit code
        (None if it was never started)."""
        if self.child is None:
            return None
        return await self.child.stop(sig=sig, within=within)

    async def kill(self) -> int | None:
        """SIGKILL: no drain, no commit."""
        if self.child is None:
            return None
        return await self.child.kill()

    async def metrics(self) -> str:
        """Its ``/metrics`` (the ops port)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.ops_url}/metrics") as response,
        ):
            response.raise_for_status()
            return await response.text()

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``, from ``/metrics``."""
        return metric_total(await self.metrics(), name, **labels)

    def log(self) -> str:
        """Everything it printed so far (empty without a log file)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        """Its JSON log lines, decoded (other lines left out)."""
        lines = []
        for line in self.log().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines

    def _log_tail(self, lines: int = 40) -> str:
        tail = self.log().splitlines()[-lines:]
        return "; the end of its log:\n" + "\n".join(tail) if tail else ""


def metric_total(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if head != name and not head.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


@dataclass(frozen=True)
class CliResult:
    """What an ``autotask-sync`` command printed and returned."""

    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


async def start_cli(
    *args: str, env: Mapping[str, str] | None = None, **options: Any
) -> ChildProcess:
    """Start ``autotask-sync ARGS`` (``python -m cli``) with a clean environment (see
    :func:`clean_environment`), its own log lines at WARNING, plus ``env``. ``options`` go to
    :meth:`ChildProcess.start`."""
    command_env = clean_environment({"AUTOTASK_SYNC_LOG_LEVEL": "WARNING", **(env or {})})
    return await ChildProcess.start("cli", *args, env=command_env, **options)


async def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    within: timedelta | None = None,
) -> CliResult:
    """Run ``autotask-sync ARGS`` as :func:`start_cli` starts it, feeding it ``stdin``; a
    command still running after ``within`` is killed (TimeoutError)."""
    command = await start_cli(
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await command.communicate(
            None if stdin is None else stdin.encode(), within=within
        )
    except TimeoutError as exc:
        shown = " ".join(args)
        raise TimeoutError(f"`autotask-sync {shown}` did not finish within {within}") from exc
    assert command.returncode is not None
    return CliResult(command.returncode, out.decode(), err.decode())


@dataclass
class LocalDeployment:
    """The shared configuration of one deployment's services and commands."""

    dsn: str
    bootstrap: str
    topic_prefix: str
    secret_key: str
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    services: list[ServiceProcess] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment every service and command of this deployment reads."""
        return {
            "DATABASE_URL": self.dsn,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "AUTOTASK_SYNC_TOPIC_PREFIX": self.topic_prefix,
            "AUTOTASK_SYNC_SECRET_KEYS": self.secret_key,
            **self.extra_env,
            **extra,
        }

    async def start(
        self,
        name: str,
        *,
        port: int | None = None,
        ops_port: int | None = None,
        ready: timedelta = timedelta(seconds=40),
        **extra: str,
    ) -> ServiceProcess:
        """Start ``services.<name>`` (public routes on ``port``, ops endpoints on ``ops_port``;
        free ones when None) and wait until it is ready."""
        number = sum(1 for s in self.services if s.name == name) + 1
        log_path = self.log_dir / f"{name}-{number}.log"
        service = ServiceProcess(name, self.env(**extra), log_path=log_path)
        if port is not None:
            service.port = port
        if ops_port is not None:
            service.ops_port = ops_port
        self.services.append(service)
        return await service.start(ready=ready)

    async def cli(self, *args: str, stdin: str | None = None, **extra: str) -> CliResult:
        """Run ``autotask-sync ARGS`` with this deployment's environment."""
        # A command's own output is what people read: its log lines stay at WARNING.
        env = {**self.env(), "AUTOTASK_SYNC_LOG_LEVEL": "WARNING", **extra}
        return await run_cli(*args, env=env, stdin=stdin)

    def logs(self, lines: int = 40) -> str:
        """The end of every service's log, for a failing assertion's message."""
        parts = []
        for service in self.services:
            tail = service.log().splitlines()[-lines:]
            if tail:
                parts.append(f"--- {service.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    async def stop(self) -> None:
        """Stop every service (SIGTERM, then SIGKILL after the grace), newest first."""
        for service in reversed(self.services):
            await service.stop()
