"""Waiting in tests for something to become true: one helper, :func:`eventually`.

A test waits for an outcome (a row, a message, a process gone), never for a length of time; the
bound is how long the outcome may take on a busy machine, far above how long it normally takes.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

T = TypeVar("T")

_NOTHING = object()


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    *,
    within: timedelta = timedelta(seconds=10),
    interval: timedelta = timedelta(milliseconds=10),
    what: str | None = None,
) -> T:
    """Call ``check`` (sync or async) every ``interval`` until it returns a true value, and
    return that value. A check that raises (an assertion, a connection refused) counts as not
    yet. After ``within`` the test fails, saying ``what`` was awaited (by default the check's
    name or source) and the last value or exception the check gave."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within.total_seconds()
    last: object = _NOTHING
    error: BaseException | None = None
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            last, error = _NOTHING, exc
        else:
            if result:
                return result  # type: ignore[return-value]
            last, error = result, None
        if loop.time() >= deadline:
            break
        await asyncio.sleep(interval.total_seconds())
    awaited = what or describe(check)
    if error is not None:
        seen = f"the last check raised {type(error).__name__}: {_shortened(str(error))}"
    else:
        seen = f"the last check gave {_shortened(repr(last))}"
    raise AssertionError(f"waited {_duration(within)} for {awaited}; {seen}") from error


def describe(check: Callable[..., object]) -> str:
    """How ``check`` reads in a failure message: a lambda's source line, a function's name."""
    name = getattr(check, "__qualname__", "")
    if name.endswith("<lambda>"):
        try:
            return inspect.getsource(check).strip()
        except (OSError, TypeError):
            return "a condition"
    return name.rsplit(".", 1)[-1].strip("_").replace("_", " ") or repr(check)


def _shortened(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _duration(span: timedelta) -> str:
    return f"{span.total_seconds():g} s"
