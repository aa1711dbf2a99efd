"""``autotask-sync status [--connection C] [--json]``: one screen for the person on call.

Per connection: the webhooks (state, Autotask id, last callout accepted, last deactivation), the
provisioner's last pass, callouts waiting in the gateway's spool, the last sweep of each entity
and what it repaired, whether the mirror follows the sync scope or a scope change is still in
progress, ids the worker could not fetch, dead letters, the API budget (this
deployment's share and the tenant's use in all) and a lockout after rejected credentials. Then
the worker's consumer lag. Everything is read through the state's stores in PostgreSQL and from
Kafka: no Autotask call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from cli.store import open_store
from services.provisioner import store as provisioner_store
from services.webhook_gateway import spool
from shared.apibudget import store as budget_store
from shared.connections import store as rows
from shared.connections.catalogue import environment_connection
from shared.db import DbSession, session
from shared.entities import find_rest_name
from shared.errors import DatabaseError, KafkaError, SyncError
from shared.kafka import client_config
from shared.kafka.admin import consumer_lag
from shared.kafka.reader import read_to_end
from shared.messages.callout import HEADER_CONNECTION, header_map
from shared.messages.deadletter import HEADER_ERROR_CLASS
from shared.messages.topics import Topics
from shared.reconcile import runs, unresolved
from shared.scope import applied as applied_scopes
from shared.scope.boundary import boundary
from shared.settings import AutotaskSettings, load_settings

T = TypeVar("T")

WORKER_GROUP = "autotask-sync-worker"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connection", metavar="NAME", help="only this connection")
    parser.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    parser.add_argument(
        "--consumer-group",
        default=WORKER_GROUP,
        help=f"the worker's consumer group, for the lag (default {WORKER_GROUP})",
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(AutotaskSettings)
    status = asyncio.run(collect(settings, only=args.connection, group=args.consumer_group))
    print(json.dumps(status, indent=2, default=str) if args.json else render(status))
    return 0


async def collect(settings: AutotaskSettings, *, only: str | None, group: str) -> dict[str, Any]:
    """Everything the screen shows, as data."""
    topics = Topics(prefix=settings.topic_prefix)
    status: dict[str, Any] = {"at": datetime.now(UTC).isoformat(), "connections": {}}
    async with open_store(settings) as store, session(store.pool, "read the status") as db:
        names = await _connection_names(db, settings)
        if only is not None:
            names = [n for n in names if n == only] or [only]
        for name in names:
            status["connections"][name] = await _connection(db, name)
            status["connections"][name]["scope"] = await _scope(db, settings, name)
    status["dead_letters"] = await _dead_letters(settings, topics)
    for name, entry in status["connections"].items():
        entry["dead_letters"] = status["dead_letters"]["by_connection"].get(name, {})
    try:
        lag = await consumer_lag(client_config(settings), group, topics.callouts)
        status["consumer_lag"] = {"group": group, "topic": topics.callouts,
                                  "total": sum(lag.values()), "partitions": lag}  # fmt: skip
    except (KafkaError, SyncError) as exc:
        status["consumer_lag"] = {"group": group, "error": str(exc)}
    return status


async def _connection_names(db: DbSession, settings: AutotaskSettings) -> list[str]:
    names = [row.name for row in await rows.fetch_all(db)]
    environment = environment_connection(settings) if settings.has_environment_connection else None
    if environment is not None and environment.name not in names:
        names.insert(0, environment.name)
    return names


async def _scope(db: DbSession, settings: AutotaskSettings, name: str) -> dict[str, Any] | None:
    """Whether the mirror follows the connection's scope, or which entities are still being
    brought to it (a scope change in progress, ``shared/reconcile/rescope.py``)."""
    environment = environment_connection(settings) if settings.has_environment_connection else None
    if environment is not None and environment.name == name:
        scope = environment.scope
    else:
        stored = await _read(rows.fetch_one(db, name), None)
        if stored is None:
            return None
        scope = stored.sync_scope()
    applied = await _read(applied_scopes.read_connection(db, name), {})
    running = {
        run.entity for run in await _read(runs.latest_per_entity(db, name), [])
        if run.mode == "scope" and run.status == "running"
    }  # fmt: skip
    pending = []
    for entity, (followed, _at) in sorted(applied.items()):
        spec = find_rest_name(entity)
        if spec is not None and not boundary(spec, scope).same_rows(boundary(spec, followed)):
            pending.append({"entity": entity, "running": entity in running})
    return {
        "following": not pending,
        "pending": pending,
        "last_applied_at": max((at for _s, at in applied.values()), default=None),
    }


async def _read(read: Awaitable[T], empty: T) -> T:
    """A store's read; a table an older schema lacks reads as ``empty`` rather than failing
    the screen."""
    try:
        return await read
    except DatabaseError as exc:
        if exc.sqlstate == DatabaseError.UNDEFINED_TABLE:
            return empty
        raise SyncError(f"could not read the status from PostgreSQL: {exc}") from exc


async def _connection(db: DbSession, name: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    hooks = await _read(provisioner_store.live_registrations(db, of_connection=name), [])
    record = await _read(provisioner_store.fetch_record(db, name), None)
    spooled = await _read(spool.stats(db, connection=name), spool.SpoolStats(0, None))
    latest = await _read(runs.latest_per_entity(db, name), [])
    unresolved_ids = await _read(unresolved.count(db, name), {})
    usage = await _read(budget_store.read_usage(db, [name]), {})
    health = await _read(budget_store.read_health(db, [name]), {})
    return {
        "webhooks": [
            {
                "entity": hook.entity,
                "state": str(hook.state),
                "autotask_webhook_id": hook.webhook_id,
                "last_callout_at": hook.last_callout_at,
                "last_deactivated_at": hook.last_deactivated_at,
                "secret_rotated_at": hook.secret_rotated_at,
            }
            for hook in sorted(hooks, key=lambda hook: hook.entity)
        ],
        "provisioner": None
        if record is None
        else {
            "last_pass_at": record.last_pass_at,
            "last_outcome": record.last_outcome,
            "last_steps": record.last_steps,
            "last_error": record.last_error,
            "held_at": record.held_at,
            "held_reason": record.held_reason,
        },
        "spool": {"rows": spooled.rows, "oldest": spooled.oldest_received_at},
        "sweeps": [
            {
                "entity": run.entity,
                "mode": run.mode,
                "status": run.status,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "repaired": run.counts.repaired,
                "error": run.error,
            }
            for run in latest
        ],
        "repaired_last_24h": await _read(
            runs.repaired_since(db, name, now - timedelta(hours=24)), 0
        ),
        "unresolved_ids": {entity: n for (_, entity), n in sorted(unresolved_ids.items())},
        "api_budget": _budget(usage.get(name), now),
        "lockout": _lockout(health.get(name), now),
    }


def _budget(usage: budget_store.UsageRow | None, now: datetime) -> dict[str, Any] | None:
    if usage is None:
        return None
    read_at = None if usage.reading_age is None else now - timedelta(seconds=usage.reading_age)
    return {
        "threshold": usage.threshold,
        "tenant_calls": usage.tenant_calls,
        "timeframe_minutes": usage.timeframe_minutes,
        "read_at": read_at,
        "project_calls_last_hour": usage.project_calls,
    }


def _lockout(health: budget_store.HealthRow | None, now: datetime) -> dict[str, Any] | None:
    if health is None or health.remaining <= 0:
        return None
    return {
        "failures": health.failures,
        "locked_until": now + timedelta(seconds=health.remaining),
        "failure_reason": health.reason,
        "failed_at": health.failed_at,
    }


async def _dead_letters(settings: AutotaskSettings, topics: Topics) -> dict[str, Any]:
    by_connection: dict[str, Counter[str]] = {}
    total = 0
    try:
        async for record in read_to_end(
            client_config(settings), topics.callouts_dlq, client_id="autotask-sync-status"
        ):
            headers = header_map(record.headers)
            name = headers.get(HEADER_CONNECTION, "")
            by_connection.setdefault(name, Counter())[headers.get(HEADER_ERROR_CLASS, "?")] += 1
            total += 1
    except KafkaError as exc:
        return {"error": str(exc), "total": None, "by_connection": {}}
    return {"total": total, "by_connection": {k: dict(v) for k, v in by_connection.items()}}


# --- text ---------------------------------------------------------------------------------------
def _when(value: Any) -> str:
    if not isinstance(value, datetime):
        return "-"
    seconds = (datetime.now(UTC) - value).total_seconds()
    if seconds < 120:
        ago = f"{seconds:.0f} s ago"
    elif seconds < 7200:
        ago = f"{seconds / 60:.0f} min ago"
    else:
        ago = f"{seconds / 3600:.1f} h ago"
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z ({ago})"


def _or_dash(value: Any) -> str:
    """``value``, or ``-`` when there is none (0 is a real Autotask id, shown as 0)."""
    return "-" if value is None else str(value)


def render(status: dict[str, Any]) -> str:
    lines: list[str] = []
    for name, c in status["connections"].items():
        lines.append(f"connection {name}")
        if c["lockout"]:
            lock = c["lockout"]
            lines.append(
                f"  LOCKED OUT until {_when(lock['locked_until'])}: {lock['failure_reason']} "
                f"({lock['failures']} failed login(s)); fix the credentials, then "
                f"`autotask-sync connections test {name}`"
            )
        lines.append("  webhooks:")
        if not c["webhooks"]:
            lines.append("    none registered (`autotask-sync provision apply`)")
        for hook in c["webhooks"]:
            lines.append(
                f"    {hook['entity']:<20} {hook['state']:<12} webhook "
                f"{_or_dash(hook['autotask_webhook_id']):<10} last callout "
                f"{_when(hook['last_callout_at'])}; last deactivation "
                f"{_when(hook['last_deactivated_at'])}"
            )
        p = c["provisioner"]
        if p:
            held = f"; HELD since {_when(p['held_at'])}: {p['held_reason']}" if p["held_at"] else ""
            error = f" ({p['last_error']})" if p["last_error"] else ""
            lines.append(
                f"  provisioner: last pass {_when(p['last_pass_at'])}: {p['last_outcome']}, "
                f"{p['last_steps']} step(s){error}{held}"
            )
        spool = c["spool"]
        lines.append(
            f"  gateway spool: {spool['rows']} callout(s) waiting (oldest {_when(spool['oldest'])})"
        )
        scope = c.get("scope")
        if scope is not None and scope["pending"]:
            entities = ", ".join(
                f"{p['entity']} ({'running' if p['running'] else 'waiting'})"
                for p in scope["pending"]
            )
            lines.append(f"  scope: change in progress: {entities}")
        elif scope is not None:
            lines.append(
                f"  scope: the mirror follows it (last applied {_when(scope['last_applied_at'])})"
            )
        lines.append(f"  sweeps (repaired in the last 24 h: {c['repaired_last_24h']:,}):")
        for sweep in c["sweeps"]:
            error = f": {sweep['error']}" if sweep["error"] else ""
            lines.append(
                f"    {sweep['entity']:<20} {sweep['mode']:<12} {sweep['status']:<10} "
                f"{_when(sweep['finished_at'] or sweep['started_at'])}, repaired "
                f"{sweep['repaired']}{error}"
            )
        unresolved = ", ".join(f"{e} {n}" for e, n in sorted(c["unresolved_ids"].items())) or "none"
        lines.append(f"  unresolved ids (left for the sweep): {unresolved}")
        dead = ", ".join(f"{k} {v}" for k, v in sorted(c["dead_letters"].items())) or "none"
        lines.append(f"  dead letters: {dead}")
        budget = c["api_budget"]
        if budget:
            tenant = (
                f"tenant {budget['tenant_calls']:,} of {budget['threshold']:,} this hour "
                f"(read {_when(budget['read_at'])})"
                if budget.get("threshold")
                else "tenant use not read yet"
            )
            lines.append(
                f"  API budget: this deployment {budget['project_calls_last_hour']:,} call(s) in "
                f"the last hour; {tenant}"
            )
        else:
            lines.append("  API budget: no calls recorded")
    lag = status["consumer_lag"]
    if "error" in lag:
        lines.append(f"consumer lag ({lag['group']}): unknown: {lag['error']}")
    else:
        lines.append(
            f"consumer lag ({lag['group']} on {lag['topic']}): {lag['total']:,} message(s)"
        )
    return "\n".join(lines)
