"""The one shape every service's life has.

1. start resources in order (each an async context manager entered on an exit stack);
2. run until SIGTERM/SIGINT, or until a background task fails;
3. drain: background tasks see :attr:`ServiceRunner.stopping` and finish their current work; the
   ones still running when the budget ends are cancelled;
4. close resources in reverse order.

Stopping is idempotent: a second signal during the drain does not restart it.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from datetime import timedelta
from typing import Any, TypeVar

from shared.logging import get_logger
from shared.metrics import SERVICE_INFO, SHUTDOWN_SECONDS

log = get_logger(__name__)
T = TypeVar("T")

VERSION = "0.1.0"


class ServiceRunner:
    """Runs one service: resources, background tasks, signals and an orderly shutdown."""

    def __init__(self, name: str, *, grace: timedelta = timedelta(seconds=20)) -> None:
        self.name = name
        self.grace = grace
        self.stopping = asyncio.Event()
        self._stack = AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []
        self._failed: BaseException | None = None

    async def enter(self, resource: AbstractAsyncContextManager[T]) -> T:
        """Start ``resource`` now; it is closed after everything entered later."""
        return await self._stack.enter_async_context(resource)

    def on_close(self, callback: Callable[[], Awaitable[Any]]) -> None:
        """Call ``callback`` at shutdown, in reverse order of registration with :meth:`enter`."""
        self._stack.push_async_callback(callback)

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        """Run a background task for the service's lifetime; if it fails, the service stops."""
        task = asyncio.create_task(coroutine, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def request_stop(self, reason: str) -> None:
        if not self.stopping.is_set():
            log.info("stop requested", service=self.name, reason=reason)
            self.stopping.set()

    async def run(self, start: Callable[[ServiceRunner], Awaitable[None]]) -> int:
        """Start the service with ``start`` and run until stopped; returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        SERVICE_INFO.labels(self.name, VERSION).set(1)
        try:
            async with self._stack:
                await start(self)
                log.info("service started", service=self.name)
                await self.stopping.wait()
                began = time.monotonic()
                await self._drain()
            SHUTDOWN_SECONDS.labels(self.name).observe(time.monotonic() - began)
        finally:
            SERVICE_INFO.labels(self.name, VERSION).set(0)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("service stopped", service=self.name, failed=self._failed is not None)
        return 1 if self._failed is not None else 0

    async def _drain(self) -> None:
        pending = [t for t in self._tasks if not t.done()]
        if not pending:
            return
        _done, still_running = await asyncio.wait(pending, timeout=self.grace.total_seconds())
        for task in still_running:
            log.warning("cancelling task after the drain budget", task=task.get_name())
            task.cancel()
        if still_running:
            await asyncio.wait(still_running, timeout=5)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._failed = error
            log.error("background task failed", task=task.get_name(), exc_info=error)
            self.request_stop(f"task {task.get_name()} failed")
        elif not self.stopping.is_set():
            self.request_stop(f"task {task.get_name()} finished")


async def aiter_until(stop: asyncio.Event, interval: timedelta) -> AsyncIterator[None]:
    """Yield every ``interval`` until ``stop`` is set; loops stop promptly."""
    while not stop.is_set():
        yield
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval.total_seconds())
        except TimeoutError:
            continue
