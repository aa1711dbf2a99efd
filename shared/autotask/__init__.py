"""Async Autotask PSA REST client (aiohttp).

Layout (one concept per module):

    connection.py   Connection (credentials, zone), zone discovery and cache
    client.py       AutotaskClient: get, query pages/items, count, create, update, delete,
                    child collections, entity/field/UDF metadata, ThresholdInformation
    batch.py        fetch_by_ids: ``in`` chunks, found + missing
    query.py        typed filter builder (13 operators, and/or groups, UDFs)
    limiter.py      per-connection concurrency, budget throttling by priority, 429 pauses
    budget.py       hourly budget tracker fed by ThresholdInformation
    retry.py        retry policy and loop (jittered back-off, deadline, metric)
    clock.py        injectable time (ManualClock makes retries instant in tests)
    timestamps.py   parse / format Autotask timestamps
    models.py       typed answers (zone, usage, entity and field information, pages)
    targets.py      Child collections as call targets
    config.py       ClientConfig
    _caller.py      the call pipeline: retry(zone -> limiter -> transport)
    _transport.py   one HTTP exchange (the aiohttp boundary)
    _errors.py      HTTP answer -> exception tree, secret redaction
    _metrics.py     cached metric children for the per-call path
"""

from shared.autotask.batch import chunked
from shared.autotask.budget import BudgetConfig, BudgetTracker
from shared.autotask.client import AutotaskClient
from shared.autotask.clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock
from shared.autotask.config import ClientConfig
from shared.autotask.connection import Connection, normalize_root
from shared.autotask.limiter import Limiter, LimiterConfig, Priority, Throttle
from shared.autotask.models import (
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
from shared.autotask.query import F, Op, Query, and_, or_, udf
from shared.autotask.retry import RetryPolicy
from shared.autotask.targets import Child, Target
from shared.autotask.timestamps import format_timestamp, parse_timestamp

__all__ = [
    "SYSTEM_CLOCK",
    "AutotaskClient",
    "BatchResult",
    "BudgetConfig",
    "BudgetTracker",
    "Child",
    "ClientConfig",
    "Clock",
    "Connection",
    "Entity",
    "EntityInfo",
    "F",
    "FieldInfo",
    "Limiter",
    "LimiterConfig",
    "ManualClock",
    "Op",
    "Page",
    "PicklistValue",
    "Priority",
    "Query",
    "RetryPolicy",
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
