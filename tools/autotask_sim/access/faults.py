"""Request-level fault injection: latency, random 429/500, truncated bodies, outages.

Decisions come from one seeded RNG, so a run with the same seed and the same request order sees
the same faults. The settings are read on every request, so the admin API can change them live.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

from tools.autotask_sim.config import FaultConfig

RANDOM_429_TEXT = "Rate limit exceeded (simulated). Please retry later."
RANDOM_500_TEXT = "An unexpected error has occurred. Please contact Autotask support (simulated)."
OUTAGE_TEXT = "The service is unavailable (simulated outage)."


class FaultInjector:
    """Rolls the dice for one request at a time."""

    def __init__(self, settings: Callable[[], FaultConfig], seed: int) -> None:
        self._settings = settings
        self._rng = random.Random(f"faults:{seed}")

    @property
    def settings(self) -> FaultConfig:
        return self._settings()

    def applies_to(self, endpoint: str) -> bool:
        """Whether request faults target ``endpoint`` (all endpoints unless restricted)."""
        endpoints = self.settings.endpoints
        return endpoints is None or endpoint.lower() in {e.lower() for e in endpoints}

    def latency(self) -> timedelta:
        """The injected delay for this request: the latency plus a seeded share of the jitter."""
        settings = self.settings
        if not settings.latency and not settings.latency_jitter:
            return timedelta(0)  # no roll: runs without latency keep their seeded fault sequence
        return settings.latency + self._rng.random() * settings.latency_jitter

    def roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate


__all__ = ["OUTAGE_TEXT", "RANDOM_429_TEXT", "RANDOM_500_TEXT", "FaultInjector"]
