"""The retry loop: only retriable errors, jittered back-off, attempts cap, deadline, metric."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from shared.autotask import ManualClock
from shared.autotask._retry import Decision, RetryPolicy, retry_reason, retrying
from shared.errors import (
    AutotaskConnectionError,
    AutotaskError,
    AutotaskServerError,
    DeadlineExceededError,
    HourlyLimitError,
    InvalidQueryError,
    ThreadLimitError,
    ZoneLookupError,
)
from shared.metrics import AUTOTASK_RETRIES


def retries(connection: str, reason: str) -> float:
    return AUTOTASK_RETRIES.labels(connection, reason)._value.get()


class Flaky:
    """Fails with the given errors, then returns 'ok'."""

    def __init__(self, *errors: AutotaskError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self, _deadline: float) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def decide(exc: AutotaskError) -> Decision | None:
    reason = retry_reason(exc)
    return Decision(reason) if reason else None


async def run(attempt, policy=None, clock=None, connection="t-retry"):
    return await retrying(
        attempt,
        decide=decide,
        policy=policy or RetryPolicy(),
        clock=clock or ManualClock(),
        rng=random.Random(1),
        connection=connection,
        what="GET Tickets",
    )


def test_backoff_is_jittered_exponential_and_capped():
    policy = RetryPolicy(base_delay=timedelta(seconds=1), max_delay=timedelta(seconds=8))
    rng = random.Random(3)
    for retry, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = {policy.backoff(retry, rng) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered


async def test_retriable_errors_are_retried_instantly_and_counted():
    clock = ManualClock()
    before = retries("t-retry-a", "server"), retries("t-retry-a", "network")
    attempt = Flaky(AutotaskServerError("boom"), AutotaskConnectionError("reset"))
    assert await run(attempt, clock=clock, connection="t-retry-a") == "ok"
    assert attempt.calls == 3
    assert len(clock.sleeps) == 2
    assert 0.5 <= clock.sleeps[0] <= 1.0
    assert 1.0 <= clock.sleeps[1] <= 2.0
    assert retries("t-retry-a", "server") == before[0] + 1
    assert retries("t-retry-a", "network") == before[1] + 1


async def test_non_retriable_errors_are_raised_at_once():
    attempt = Flaky(InvalidQueryError("bad field"))
    with pytest.raises(InvalidQueryError):
        await run(attempt)
    assert attempt.calls == 1


async def test_attempts_cap_raises_the_last_error():
    attempt = Flaky(*[AutotaskServerError(f"boom {i}") for i in range(10)])
    with pytest.raises(AutotaskServerError, match="boom 2"):
        await run(attempt, policy=RetryPolicy(max_attempts=3))
    assert attempt.calls == 3


async def test_deadline_stops_retrying_with_the_last_error_named():
    clock = ManualClock()
    attempt = Flaky(*[AutotaskServerError("boom") for _ in range(10)])
    policy = RetryPolicy(
        max_attempts=10,
        base_delay=timedelta(seconds=4),
        max_delay=timedelta(seconds=4),
        deadline=timedelta(seconds=10),
    )
    with pytest.raises(DeadlineExceededError, match="last error: boom") as info:
        await run(attempt, policy=policy, clock=clock)
    assert not info.value.retriable
    assert clock.slept <= 10.0


def test_retry_reasons():
    assert retry_reason(ThreadLimitError("t")) == "thread_limit"
    assert retry_reason(HourlyLimitError("h")) == "rate_limit"
    assert retry_reason(AutotaskServerError("s")) == "server"
    assert retry_reason(AutotaskServerError("s", retriable=False)) is None
    assert retry_reason(AutotaskConnectionError("n")) == "network"
    assert retry_reason(ZoneLookupError("z", retriable=True)) == "network"
    assert retry_reason(ZoneLookupError("z")) is None
