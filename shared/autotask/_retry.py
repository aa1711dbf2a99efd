"""When and how long to retry an Autotask call.

Only errors whose ``retriable`` flag is set are retried (network, 5xx that are not business
errors, rate and thread limits), with jittered exponential back-off, a cap on attempts and an
overall deadline. Rate-limit errors add no back-off of their own: the limiter has already paused
the endpoint or connection for ``Retry-After`` (autotask-api.md §5), and the next attempt waits
there. All waiting goes through the injected :class:`~shared.autotask._clock.Clock`, so tests
retry instantly.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import structlog

from shared.autotask._clock import Clock
from shared.errors import (
    AutotaskConnectionError,
    AutotaskError,
    AutotaskServerError,
    DeadlineExceededError,
    RateLimitError,
    ThreadLimitError,
    ZoneLookupError,
)
from shared.metrics import AUTOTASK_RETRIES

T = TypeVar("T")
_ZERO = timedelta(0)

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry limits for one logical call (all pages of a query count separately)."""

    max_attempts: int = 6
    """Attempts in total, the first included."""
    base_delay: timedelta = timedelta(seconds=1)
    """Back-off before the first retry, doubled each time (n8n uses 1 s)."""
    max_delay: timedelta = timedelta(seconds=60)
    """Cap for one back-off."""
    deadline: timedelta = timedelta(seconds=300)
    """Time from the first attempt after which no retry starts (limiter waits included)."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay < _ZERO or self.max_delay < _ZERO:
            raise ValueError("RetryPolicy needs max_attempts >= 1 and non-negative delays")
        if self.deadline <= _ZERO:
            raise ValueError("RetryPolicy.deadline must be positive")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Seconds before retry number ``retry`` (1-based): half fixed, half random.

        The fixed half keeps a floor under the wait; the random half spreads replicas that
        failed together so they do not return together.
        """
        ceiling = min(
            self.max_delay.total_seconds(), self.base_delay.total_seconds() * 2.0 ** (retry - 1)
        )
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


NO_RETRY = RetryPolicy(max_attempts=1)


def retry_reason(exc: AutotaskError) -> str | None:
    """The AUTOTASK_RETRIES reason label for a retriable error, or None if not retriable."""
    if not exc.retriable:
        return None
    if isinstance(exc, ThreadLimitError):
        return "thread_limit"
    if isinstance(exc, RateLimitError):
        return "rate_limit"
    if isinstance(exc, AutotaskServerError):
        return "server"
    if isinstance(exc, AutotaskConnectionError | ZoneLookupError):
        return "network"
    return "server"


@dataclass(frozen=True, slots=True)
class Decision:
    """Retry with ``reason``; ``backoff`` False when something else already waits (limiter)."""

    reason: str
    backoff: bool = True


async def retrying(
    attempt: Callable[[float], Awaitable[T]],
    *,
    decide: Callable[[AutotaskError], Awaitable[Decision | None]],
    policy: RetryPolicy,
    clock: Clock,
    rng: random.Random,
    connection: str,
    what: str,
) -> T:
    """Run ``attempt(deadline)`` until it succeeds, ``decide`` declines, or limits run out.

    ``deadline`` is on ``clock.monotonic()``'s scale, so the limiter can refuse to wait past
    it. When attempts run out the last error is raised as is (still retriable for the caller's
    own redelivery); when time runs out a DeadlineExceededError names the last error.
    """
    deadline = clock.monotonic() + policy.deadline.total_seconds()
    tries = 0
    while True:
        tries += 1
        try:
            return await attempt(deadline)
        except AutotaskError as exc:
            decision = await decide(exc)
            if decision is None or tries >= policy.max_attempts:
                raise
            delay = policy.backoff(tries, rng) if decision.backoff else 0.0
            if clock.monotonic() + delay > deadline:
                raise DeadlineExceededError(
                    f"gave up on {what} after {tries} attempts within the "
                    f"{policy.deadline.total_seconds():g} s deadline; last error: {exc}",
                    status=exc.status,
                    errors=exc.errors,
                ) from exc
            AUTOTASK_RETRIES.labels(connection, decision.reason).inc()
            log.warning(
                "autotask.retry",
                connection=connection,
                call=what,
                reason=decision.reason,
                attempt=tries,
                delay_s=round(delay, 3),
                error=type(exc).__name__,
                status=exc.status,
            )
            if delay > 0:
                await clock.sleep(delay)


__all__ = ["NO_RETRY", "Decision", "RetryPolicy", "retry_reason", "retrying"]
