"""Shared machinery of tenant generation: the seeded RNG helpers, fast stamps, credentials."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from tools.autotask_sim.clock import SimClock
from tools.autotask_sim.config import SimulatorConfig
from tools.autotask_sim.jsontypes import JsonValue, Record

SYSTEM_RESOURCE_ID = 4  # Autotask's built-in system account (workflow rules), §8.2
FIRST_RESOURCE_ID = 29682833
OWN_COMPANY_ID = 0  # Autotask tenants hold their own company as id 0

EPOCH = datetime(1970, 1, 1)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ApiCredentials:
    """The seeded API user's login."""

    username: str
    secret: str
    integration_code: str
    resource_id: int


@dataclass
class TenantData:
    """Generated records per REST entity name, plus the API user."""

    records: dict[str, list[Record]] = field(default_factory=dict)
    api_user: ApiCredentials | None = None


def _derived(seed: int, label: str, length: int, alphabet: str) -> str:
    digest = hashlib.sha256(f"{seed}:{label}".encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def credentials_for(config: SimulatorConfig, resource_id: int) -> ApiCredentials:
    """The API user's credentials: configured values, or stable ones derived from the seed."""
    upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    mixed = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    username = config.username or f"api-{_derived(config.seed, 'user', 8, upper).lower()}@sim.local"
    secret = config.secret or _derived(config.seed, "secret", 20, mixed) + "$1a"
    code = config.integration_code or _derived(config.seed, "code", 27, upper)
    return ApiCredentials(username, secret, code, resource_id)


class Gen:
    """The generator's RNG and helpers; one instance builds one tenant."""

    def __init__(self, config: SimulatorConfig, clock: SimClock, anchor: datetime) -> None:
        self.rng = random.Random(config.seed)
        self.config = config
        self.clock = clock
        self.anchor_ms = int((anchor - EPOCH).total_seconds() * 1000)
        self.span_ms = config.history_days * 86_400_000
        self.day_prefixes: dict[int, str] = {}
        self._udf_tuples: dict[tuple[tuple[str, Any], ...], tuple[Record, ...]] = {}

    def udfs(self, *pairs: tuple[str, Any]) -> tuple[Record, ...]:
        """A ``userDefinedFields`` value, one shared object per distinct set of values.

        Records are never mutated in place (updates build new UDF tuples), so records with the
        same UDF values can share one tuple: a 100,000-ticket tenant saves tens of MiB this way.
        Only use it for values drawn from small pools, or the cache itself grows per record.
        """
        cached = self._udf_tuples.get(pairs)
        if cached is None:
            cached = tuple({"name": n, "value": v} for n, v in pairs)
            self._udf_tuples[pairs] = cached
        return cached

    def stamper(self, entity: str, name: str) -> Callable[[int], str]:
        """A fast ``epoch ms → API string`` formatter for one field (dates cached per day)."""
        suffix = "Z" if self.clock.wants_z(entity, name) else ""
        days = self.day_prefixes

        def fmt(ms: int) -> str:
            day, rem = divmod(ms, 86_400_000)
            prefix = days.get(day)
            if prefix is None:
                prefix = days[day] = f"{EPOCH + timedelta(days=day):%Y-%m-%d}T"
            secs, millis = divmod(rem, 1000)
            mins, secs = divmod(secs, 60)
            hours, mins = divmod(mins, 60)
            return f"{prefix}{hours:02d}:{mins:02d}:{secs:02d}.{millis:03d}{suffix}"

        return fmt

    def pick(self, seq: Sequence[T]) -> T:
        """``random.choice`` without its per-call overhead (same RNG stream every run)."""
        return seq[int(self.rng.random() * len(seq))]

    def sorted_times(self, n: int, start_ms: int | None = None) -> list[int]:
        lo = self.anchor_ms - self.span_ms if start_ms is None else start_ms
        rand = self.rng.random
        span = self.anchor_ms - lo
        return sorted(lo + int(rand() * span) for _ in range(n))

    def ids(self, first: int, n: int) -> list[int]:
        out, current, rand = [], first, self.rng.random
        for _ in range(n):
            out.append(current)
            current += 2 if rand() < 0.08 else 1
        return out

    def later(self, ms: int) -> int:
        """A time between ``ms`` and the anchor, biased toward ``ms``."""
        return ms + int((self.anchor_ms - ms) * self.rng.random() ** 3)


def udfs_of(gen: Gen, values: dict[str, Callable[[random.Random], JsonValue]]) -> JsonValue:
    return gen.udfs(*((name, make(gen.rng)) for name, make in values.items()))


__all__ = [
    "EPOCH",
    "FIRST_RESOURCE_ID",
    "OWN_COMPANY_ID",
    "SYSTEM_RESOURCE_ID",
    "ApiCredentials",
    "Gen",
    "TenantData",
    "credentials_for",
    "udfs_of",
]
