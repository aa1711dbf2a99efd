"""The one shape every service's life has.

1. start resources in order (each an async context manager entered on an exit stack);
2. run until SIGTERM/SIGINT, or until a background task fails;
3. drain, within the ``grace`` budget: first the intakes (an HTTP server taking requests from
   outside) stop accepting and finish the requests in flight, while the background tasks still
   run for them; then the background tasks see :attr:`ServiceRunner.stopping` and finish their
   current work; the ones still running when their budget ends are cancelled;
4. close resources in reverse order.

Stopping is idempotent: a second signal during the drain does not restart it.
:meth:`ServiceRunner.run` is a process's life (signals, exit code); :meth:`ServiceRunner.running`
is the same life as a block, for a service embedded in another program or a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from shared.logging import get_logger
from shared.metrics import SERVICE_INFO, SHUTDOWN_SECONDS

log = get_logger(__name__)
T = TypeVar("T")

VERSION = "0.1.0"
CANCEL_WAIT = timedelta(seconds=5)
"""How long tasks cancelled at the end of their budget may take to unwind."""


@dataclass(frozen=True, slots=True)
class _Spawned:
    task: asyncio.Task[None]
    stop_within: timedelta | None


class ServiceRunner:
    """Runs one service: resources, intakes, background tasks, signals and an orderly shutdown."""

    def __init__(self, name: str, *, grace: timedelta = timedelta(seconds=20)) -> None:
        self.name = name
        self.grace = grace
        self.stop_requested = asyncio.Event()
        """Set as soon as a stop is asked for (a signal, a failed task, :meth:`request_stop`):
        waits for a dependency during start end early."""
        self.stopping = asyncio.Event()
        """Set once the intakes are closed (at once when there are none): background tasks
        finish their current work and return."""
        self._stack = AsyncExitStack()
        self._intakes: list[AsyncExitStack] = []
        self._spawned: list[_Spawned] = []
        self._failed: BaseException | None = None

    async def enter(self, resource: AbstractAsyncContextManager[T]) -> T:
        """Start ``resource`` now; it is closed after everything entered later."""
        return await self._stack.enter_async_context(resource)

    def on_close(self, callback: Callable[[], Awaitable[object] | None]) -> None:
        """Call ``callback`` (plain or async) at shutdown, in reverse order of registration with
        :meth:`enter`."""

        async def close() -> None:
            result = callback()
            if inspect.isawaitable(result):
                await result

        self._stack.push_async_callback(close)

    async def intake(self, resource: AbstractAsyncContextManager[T]) -> T:
        """Start ``resource``, a source of work from outside (an HTTP server for the service's
        own routes, :func:`shared.runtime.bootstrap.serve_public`).

        At stop it is closed first, before the background tasks are told to stop, so the work
        it let in still finds them running; closing it must bound its own drain (an HTTP server
        gives requests in flight a timeout). If the service never gets that far, it is closed
        with the resources, after everything entered later.
        """
        own = AsyncExitStack()
        value = await own.enter_async_context(resource)
        self._intakes.append(own)
        self._stack.push_async_callback(own.aclose)  # a no-op once the drain closed it
        return value

    def spawn(
        self,
        coroutine: Coroutine[Any, Any, None],
        name: str,
        *,
        may_finish: bool = False,
        stop_within: timedelta | None = None,
    ) -> None:
        """Run a background task for the service's lifetime; if it fails, the service stops.

        A task that returns before the stop stops the service too, unless ``may_finish`` (one
        whose job ends, such as connecting). Once told to stop it has ``stop_within`` to finish
        (never more than what is left of the grace; by default all of it), then it is cancelled.
        """
        task = asyncio.create_task(coroutine, name=name)
        task.add_done_callback(lambda t: self._task_done(t, may_finish=may_finish))
        self._spawned.append(_Spawned(task, stop_within))

    def request_stop(self, reason: str) -> None:
        """Begin the shutdown (idempotent: a second request changes nothing)."""
        if not self.stop_requested.is_set():
            log.info("stop requested", service=self.name, reason=reason)
            self.stop_requested.set()

    async def run(self, start: Callable[[ServiceRunner], Awaitable[object]]) -> int:
        """Start the service with ``start`` and run until stopped; returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        SERVICE_INFO.labels(self.name, VERSION).set(1)
        try:
            async with self.running(start):
                log.info("service started", service=self.name)
                await self.stop_requested.wait()
        finally:
            SERVICE_INFO.labels(self.name, VERSION).set(0)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("service stopped", service=self.name, failed=self._failed is not None)
        return 1 if self._failed is not None else 0

    @asynccontextmanager
    async def running(self, start: Callable[[ServiceRunner], Awaitable[T]]) -> AsyncIterator[T]:
        """Start the service with ``start`` (the block gets what it returns); when the block
        ends, or ``start`` fails, drain and close in reverse order. No signal handling: the
        caller decides when the block ends (:meth:`run` waits for :attr:`stop_requested`)."""
        async with self._stack:
            try:
                yield await start(self)
            finally:
                began = time.monotonic()
                await self._drain()
        SHUTDOWN_SECONDS.labels(self.name).observe(time.monotonic() - began)

    async def _drain(self) -> None:
        """Intakes, then background tasks, within the grace; the resources close after."""
        deadline = time.monotonic() + self.grace.total_seconds()
        self.stop_requested.set()
        for intake in reversed(self._intakes):
            try:
                await intake.aclose()
            except Exception as exc:  # the tasks must still be stopped, and resources closed
                self._failed = exc
                log.error("an intake did not close cleanly", service=self.name, exc_info=exc)
        self.stopping.set()
        pending = [spawned for spawned in self._spawned if not spawned.task.done()]
        if pending:
            await asyncio.gather(*(self._finish(spawned, deadline) for spawned in pending))

    async def _finish(self, spawned: _Spawned, deadline: float) -> None:
        within = max(0.0, deadline - time.monotonic())
        if spawned.stop_within is not None:
            within = min(within, spawned.stop_within.total_seconds())
        task = spawned.task
        _done, late = await asyncio.wait({task}, timeout=within)
        if late:
            log.warning("cancelling task after the drain budget", task=task.get_name())
            task.cancel()
            await asyncio.wait(late, timeout=CANCEL_WAIT.total_seconds())

    def _task_done(self, task: asyncio.Task[None], *, may_finish: bool) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._failed = error
            log.error("background task failed", task=task.get_name(), exc_info=error)
            self.request_stop(f"task {task.get_name()} failed")
        elif not may_finish and not self.stop_requested.is_set():
            self.request_stop(f"task {task.get_name()} finished")


async def aiter_until(stop: asyncio.Event, interval: timedelta) -> AsyncIterator[None]:
    """Yield every ``interval`` until ``stop`` is set; loops stop promptly."""
    while not stop.is_set():
        yield
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval.total_seconds())
        except TimeoutError:
            continue


async def until_stopped(coroutine: Coroutine[Any, Any, T], stop: asyncio.Event) -> asyncio.Task[T]:
    """Run ``coroutine`` until it ends or ``stop`` is set, whichever comes first; one still
    running then is cancelled (and waited for). Returns its task: done, or cancelled."""
    task = asyncio.create_task(coroutine)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return task
