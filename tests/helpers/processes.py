"""Services and ``autotask-sync`` commands as real processes, the way an operator runs them.

Whatever a test starts here cannot outlive the test run: a watchdog stops it if pytest dies
first (:mod:`tools.deployment`, docs/adr/0002). Environments start clean: the test process's
own ``AUTOTASK_SYNC_*``, ``DATABASE_URL`` and ``KAFKA_BOOTSTRAP_SERVERS`` never leak in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from tools.deployment import (
    ChildProcess,
    CliResult,
    LocalDeployment,
    ServiceProcess,
    metric_total,
    run_cli,
    start_cli,
)


@asynccontextmanager
async def running(
    service: ServiceProcess, *, ready: timedelta = timedelta(seconds=30)
) -> AsyncIterator[ServiceProcess]:
    """``service`` started and ready for the block, stopped (SIGTERM) after it; the end of its
    log is printed, which pytest shows for a failing test."""
    await service.start(ready=ready)
    try:
        yield service
    finally:
        await service.stop()
        print(f"--- {service.name} ---\n{service.log()[-20_000:]}")


__all__ = [
    "ChildProcess",
    "CliResult",
    "LocalDeployment",
    "ServiceProcess",
    "metric_total",
    "run_cli",
    "running",
    "start_cli",
]
