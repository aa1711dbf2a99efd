"""API limits (§5) and the request statistics tests read to prove a client respects them.

- Thread limit: at most N concurrent calls per (integration code, endpoint); the next one is
  rejected at once with the thread-threshold text seen in production, naming the method and the
  code ``Itgenatr005`` (by default as 429, without ``Retry-After``).
- Hourly threshold: a rolling window of requests per database; over it, calls are refused with
  429 until usage falls back. Usage above 50 % / 75 % adds latency to every call.
- Statistics: requests per endpoint, statuses, the peak concurrency each (integration code,
  endpoint) pair *attempted* (rejected calls included: that is what a client's own cap controls)
  and the peak actually admitted, and logins: authenticated requests and failed logins (wrong
  secret or integration code, or a locked user) per username, what an API user's lockout counts.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import timedelta

from tools.autotask_sim.apierror import ApiError
from tools.autotask_sim.config import LimitsConfig, SimulatorConfig
from tools.autotask_sim.jsontypes import JsonObject

THREAD_LIMIT_CODE = "Itgenatr005"


def thread_limit_text(limit: int, method: str) -> str:
    """The rejection text as n8n quotes it, with the code its detector matches (§5).

    ``method`` is the SOAP-era method name the real text carries (``getThresholdAndUsageInfo``
    for ThresholdInformation); the names of the other REST calls are assumed.
    """
    return (
        "Thread Threshold Exceeded — The Autotask API thread threshold of "
        f"{limit} threads has been exceeded. Method: {method} ({THREAD_LIMIT_CODE})"
    )


def hourly_limit_text(limit: int) -> str:
    return (
        "API Threshold Exceeded — The Autotask API request threshold of "
        f"{limit} requests per 60 minutes has been exceeded. Try again later."
    )


ThreadKey = tuple[str, str]  # (integration code, endpoint)


@dataclass
class RequestStats:
    """What the simulator saw; exposed in ``sim.state`` and ``/_sim/requests``."""

    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    by_endpoint_status: Counter[tuple[str, int]] = field(default_factory=Counter)
    in_flight: Counter[ThreadKey] = field(default_factory=Counter)
    max_concurrency: dict[ThreadKey, int] = field(default_factory=dict)
    max_admitted: dict[ThreadKey, int] = field(default_factory=dict)
    thread_rejections: Counter[ThreadKey] = field(default_factory=Counter)
    hourly_rejections: int = 0
    logins: Counter[str] = field(default_factory=Counter)
    """Requests that authenticated, per username (lower case)."""
    failed_logins: Counter[str] = field(default_factory=Counter)
    """Requests whose credentials were refused, per username (lower case, as sent)."""
    recent: deque[JsonObject] = field(default_factory=lambda: deque(maxlen=2000))

    def peak(self, endpoint: str, integration_code: str | None = None) -> int:
        """Highest attempted concurrency on ``endpoint`` (for one code, or any)."""
        return max(
            (
                n
                for (code, ep), n in self.max_concurrency.items()
                if ep.lower() == endpoint.lower() and integration_code in (None, code)
            ),
            default=0,
        )

    def reset(self) -> None:
        self.by_endpoint.clear()
        self.by_status.clear()
        self.by_endpoint_status.clear()
        self.max_concurrency.clear()
        self.max_admitted.clear()
        self.thread_rejections.clear()
        self.hourly_rejections = 0
        self.logins.clear()
        self.failed_logins.clear()
        self.recent.clear()

    def to_json(self) -> JsonObject:
        return {
            "requestsByEndpoint": dict(self.by_endpoint),
            "requestsByStatus": {str(k): v for k, v in self.by_status.items()},
            "maxConcurrency": [
                {
                    "integrationCode": c,
                    "endpoint": e,
                    "max": n,
                    "maxAdmitted": self.max_admitted.get((c, e), 0),
                }
                for (c, e), n in sorted(self.max_concurrency.items())
            ],
            "threadRejections": [
                {"integrationCode": c, "endpoint": e, "count": n}
                for (c, e), n in sorted(self.thread_rejections.items())
            ],
            "hourlyRejections": self.hourly_rejections,
            "logins": dict(self.logins),
            "failedLogins": dict(self.failed_logins),
            "inFlight": sum(self.in_flight.values()),
        }


class Limits:
    """Enforces the thread and hourly limits; keeps ``RequestStats`` current."""

    def __init__(self, root: SimulatorConfig) -> None:
        self._root = root
        self.stats = RequestStats()
        self._window: deque[float] = deque()

    @property
    def config(self) -> LimitsConfig:
        """Read on every call, so admin changes apply at once."""
        return self._root.limits

    @property
    def time_scale(self) -> float:
        return self._root.time_scale

    # ---------------------------------------------------------------- hourly

    @property
    def window(self) -> timedelta:
        return self.config.hourly_window * self.time_scale

    def usage(self) -> int:
        """Requests counted in the current rolling window."""
        cutoff = time.monotonic() - self.window.total_seconds()
        window = self._window
        while window and window[0] <= cutoff:
            window.popleft()
        return len(window)

    def count_request(self) -> None:
        """Count one call against the hourly threshold, or refuse it when the budget is gone."""
        if self.usage() >= self.config.hourly_limit:
            self.stats.hourly_rejections += 1
            raise ApiError(
                self.config.hourly_limit_status,
                hourly_limit_text(self.config.hourly_limit),
                headers=self.retry_after_headers(),
            )
        self._window.append(time.monotonic())

    def usage_delay(self) -> timedelta:
        """Latency Autotask adds at the current usage (none below 50 %)."""
        share = len(self._window) / self.config.hourly_limit
        if share >= 0.75:
            return self.config.latency_at_75 * self.time_scale
        if share >= 0.5:
            return self.config.latency_at_50 * self.time_scale
        return timedelta(0)

    def reset_window(self) -> None:
        self._window.clear()

    def add_usage(self, calls: int) -> int:
        """Count ``calls`` made now by the tenant's other integrations (the hourly threshold is
        shared by all of them); they age out of the window like ours. Returns the usage."""
        if calls < 0:
            raise ValueError(f"calls must be 0 or more, not {calls}")
        self._window.extend([time.monotonic()] * calls)
        return self.usage()

    # --------------------------------------------------------------- threads

    def acquire(self, key: ThreadKey, method: str) -> None:
        """Take a thread slot for ``key`` or raise the thread-limit error naming ``method``."""
        stats = self.stats
        stats.in_flight[key] += 1
        current = stats.in_flight[key]
        if current > stats.max_concurrency.get(key, 0):
            stats.max_concurrency[key] = current
        if current > self.config.thread_limit:
            stats.in_flight[key] -= 1
            stats.thread_rejections[key] += 1
            raise ApiError(
                self.config.thread_limit_status,
                thread_limit_text(self.config.thread_limit, method),
                headers=self.retry_after_headers(),
            )
        if current > stats.max_admitted.get(key, 0):
            stats.max_admitted[key] = current

    def release(self, key: ThreadKey) -> None:
        """Give the slot back (after ``thread_release_delay`` if configured)."""
        delay = (self.config.thread_release_delay * self.time_scale).total_seconds()
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._release_now, key)
        else:
            self._release_now(key)

    def _release_now(self, key: ThreadKey) -> None:
        self.stats.in_flight[key] -= 1
        if self.stats.in_flight[key] <= 0:
            del self.stats.in_flight[key]

    def retry_after_headers(self) -> dict[str, str]:
        """``Retry-After`` in whole seconds when configured (no source shows it), else none."""
        retry_after = self.config.retry_after
        if retry_after is None:
            return {}
        return {"Retry-After": str(max(0, round(retry_after.total_seconds())))}


__all__ = [
    "THREAD_LIMIT_CODE",
    "Limits",
    "RequestStats",
    "hourly_limit_text",
    "thread_limit_text",
]
