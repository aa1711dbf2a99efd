"""A deployment on this machine for the demo, the end-to-end tests and the benchmarks.

:class:`ServiceProcess` runs one service as a real process (``python -m services.<name>``) with
its own port and log; :class:`LocalDeployment` holds what the services of one deployment share
(database, broker, topic prefix, secret key) and starts them, and runs ``autotask-sync``
commands against the same environment. Development only: the product never imports it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import aiohttp

from tools.dev_infra.processes import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ServiceProcess:
    """One service (``python -m services.<name>``) as a real process."""

    name: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, *, ready: timedelta = timedelta(seconds=30)) -> ServiceProcess:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AUTOTASK_SYNC_")},
            "AUTOTASK_SYNC_HTTP_HOST": "127.0.0.1",
            "AUTOTASK_SYNC_HTTP_PORT": str(self.port),
            "AUTOTASK_SYNC_LOG_FORMAT": "json",
            "AUTOTASK_SYNC_SHUTDOWN_GRACE": "10s",
            **self.env,
        }
        # A small local file, opened once per start: not worth a thread.
        log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115, ASYNC230
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"services.{self.name}",
                cwd=ROOT, env=env, stdout=log or asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        finally:
            if log is not None:
                log.close()  # the child has its own copy
        await self.wait_ready(ready)
        return self

    async def wait_ready(self, within: timedelta) -> None:
        deadline = asyncio.get_running_loop().time() + within.total_seconds()
        async with aiohttp.ClientSession() as session:
            while asyncio.get_running_loop().time() < deadline:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise AssertionError(f"{self.name} exited with {self.process.returncode}")
                try:
                    async with session.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} was not ready within {within}")

    async def stop(self, *, within: timedelta = timedelta(seconds=25)) -> int | None:
        """SIGTERM and wait (then SIGKILL); returns the exit code."""
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), within.total_seconds())
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()

    async def kill(self) -> None:
        """SIGKILL: no drain, no commit."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}/metrics") as r:
            return await r.text()


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
        ready: timedelta = timedelta(seconds=40),
        **extra: str,
    ) -> ServiceProcess:
        """Start ``services.<name>`` (on ``port``, or a free one) and wait until it is ready."""
        number = sum(1 for s in self.services if s.name == name) + 1
        log_path = self.log_dir / f"{name}-{number}.log"
        service = ServiceProcess(name, self.env(**extra), log_path=log_path)
        if port is not None:
            service.port = port
        self.services.append(service)
        return await service.start(ready=ready)

    async def cli(self, *args: str, stdin: str | None = None, **extra: str) -> CliResult:
        """Run ``autotask-sync ARGS`` with this deployment's environment."""
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AUTOTASK_SYNC_")},
            **self.env(),
            "AUTOTASK_SYNC_LOG_LEVEL": "WARNING",  # a command's own output is what people read
            **extra,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli", *args, cwd=ROOT, env=env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate(None if stdin is None else stdin.encode())
        return CliResult(process.returncode or 0, out.decode(), err.decode())

    async def stop(self) -> None:
        """Stop every service (SIGTERM, then SIGKILL after the grace), newest first."""
        for service in reversed(self.services):
            await service.stop()
