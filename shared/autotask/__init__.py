"""Async Autotask PSA REST client (aiohttp).

The package's public API is what this module exports (``__all__``, pinned by a test); every
module inside is private, one concept each:

    _tenant.py      Connection (credentials, zone) and the zone resolver (cache, re-discovery)
    _client.py      AutotaskClient: get, query pages/items, count, create, update, delete,
                    child collections, entity/field/UDF metadata, ThresholdInformation
    _batch.py       fetch_by_ids: ``in`` chunks, found + missing
    _query.py       typed filter builder (13 operators, and/or groups, UDFs)
    _limiter.py     per-connection concurrency, budget throttling by priority, 429 pauses
    _budget.py      hourly budget tracker fed by ThresholdInformation, and the share cap
    _coordination.py  slots, budget and lockout as Protocols (shared by processes elsewhere),
                    with the in-process defaults
    _guard.py       the lockout guard: no calls for a cool-down after a 401
    _retry.py       retry policy and loop (jittered back-off, deadline, metric)
    _clock.py       injectable time (ManualClock makes retries instant in tests)
    _timestamps.py  parse / format Autotask timestamps
    _models.py      typed answers (zone, usage, entity and field information, pages)
    _targets.py     Child collections as call targets
    _config.py      ClientConfig
    _caller.py      the call pipeline: retry(zone -> limiter -> transport)
    _transport.py   the one HTTP boundary: every exchange, zone lookup included
    _errors.py      HTTP answer -> exception tree
    _metrics.py     cached metric children for the per-call path
"""

from shared.autotask._batch import chunked
from shared.autotask._budget import DEFAULT_SHARE, BudgetConfig, BudgetTracker
from shared.autotask._client import AutotaskClient
from shared.autotask._clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock
from shared.autotask._config import ClientConfig
from shared.autotask._coordination import (
    BudgetStore,
    BudgetView,
    Coordination,
    Coordinator,
    LocalCoordinator,
    LocalLockout,
    Lockout,
    LockoutPolicy,
    LockoutStore,
    SlotLease,
    SlotProvider,
)
from shared.autotask._limiter import Limiter, LimiterConfig, Priority, Throttle
from shared.autotask._models import (
    BatchResult,
    Entity,
    EntityInfo,
    FieldInfo,
    Page,
    PicklistValue,
    ThresholdInfo,
    UdfDefinition,
    ZoneInfo,
)
from shared.autotask._query import F, Op, Query, and_, or_, udf
from shared.autotask._retry import RetryPolicy
from shared.autotask._targets import Child, Target
from shared.autotask._tenant import Connection, normalize_root
from shared.autotask._timestamps import format_timestamp, parse_timestamp

__all__ = [
    "DEFAULT_SHARE",
    "SYSTEM_CLOCK",
    "AutotaskClient",
    "BatchResult",
    "BudgetConfig",
    "BudgetStore",
    "BudgetTracker",
    "BudgetView",
    "Child",
    "ClientConfig",
    "Clock",
    "Connection",
    "Coordination",
    "Coordinator",
    "Entity",
    "EntityInfo",
    "F",
    "FieldInfo",
    "Limiter",
    "LimiterConfig",
    "LocalCoordinator",
    "LocalLockout",
    "Lockout",
    "LockoutPolicy",
    "LockoutStore",
    "ManualClock",
    "Op",
    "Page",
    "PicklistValue",
    "Priority",
    "Query",
    "RetryPolicy",
    "SlotLease",
    "SlotProvider",
    "SystemClock",
    "Target",
    "ThresholdInfo",
    "Throttle",
    "UdfDefinition",
    "ZoneInfo",
    "and_",
    "chunked",
    "format_timestamp",
    "normalize_root",
    "or_",
    "parse_timestamp",
    "udf",
]
