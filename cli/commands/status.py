"""``autotask-sync status [--connection C] [--json]``: one screen for the person on call.

Per connection: the webhooks (state, Autotask id, last callout accepted, last deactivation), the
provisioner's last pass, callouts waiting in the gateway's spool, the last sweep of each entity
and what it repaired, ids the worker could not fetch, dead letters, the API budget (this
deployment's share and the tenant's use in all) and a lockout after rejected credentials. Then
the worker's consumer lag. Everything is read from PostgreSQL and Kafka: no Autotask call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg

from cli.store import open_store
from shared.connections import store as rows
from shared.connections.catalogue import environment_connection
from shared.db.pool import DB_ERRORS, DbSession
from shared.errors import KafkaError, SyncError
from shared.kafka.admin import consumer_lag
from shared.kafka.reader import read_to_end
from shared.messages.callout import HEADER_CONNECTION, header_map
from shared.messages.deadletter import HEADER_ERROR_CLASS
from shared.messages.topics import Topics
from shared.settings import AutotaskSettings, load_settings

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
    async with open_store(settings) as store, store.pool.acquire() as db:
        names = await _connection_names(db, settings)
        if only is not None:
            names = [n for n in names if n == only] or [only]
        for name in names:
            status["connections"][name] = await _connection(db, name)
    status["dead_letters"] = await _dead_letters(settings, topics)
    for name, entry in status["connections"].items():
        entry["dead_letters"] = status["dead_letters"]["by_connection"].get(name, {})
    try:
        lag = await consumer_lag(settings.kafka_bootstrap_servers, group, topics.callouts)
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


async def _connection(db: DbSession, name: str) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    entry["webhooks"] = [
        dict(r)
        for r in await _fetch(
            db,
            "SELECT entity, state, autotask_webhook_id, last_callout_at, last_deactivated_at, "
            "secret_rotated_at FROM webhook_registrations WHERE connection = $1 "
            "AND state <> 'retired' ORDER BY entity",
            name,
        )
    ]
    provisioning = await _fetch(
        db,
        "SELECT last_pass_at, last_outcome, last_steps, last_error, held_at, held_reason "
        "FROM webhook_provisioning WHERE connection = $1",
        name,
    )
    entry["provisioner"] = dict(provisioning[0]) if provisioning else None
    spool = await _fetch(
        db,
        "SELECT count(*) AS rows, min(received_at) AS oldest FROM callout_spool "
        "WHERE connection = $1",
        name,
    )
    entry["spool"] = dict(spool[0]) if spool else {"rows": 0, "oldest": None}
    entry["sweeps"] = [
        dict(r)
        for r in await _fetch(
            db,
            "SELECT DISTINCT ON (entity) entity, mode, status, started_at, finished_at, repaired, "
            "error FROM sync_runs WHERE connection = $1 ORDER BY entity, started_at DESC",
            name,
        )
    ]
    repaired = await _fetch(
        db,
        "SELECT coalesce(sum(repaired), 0) AS repaired FROM sync_runs WHERE connection = $1 "
        "AND started_at > now() - interval '24 hours'",
        name,
    )
    entry["repaired_last_24h"] = int(repaired[0]["repaired"]) if repaired else 0
    entry["unresolved_ids"] = {
        r["entity"]: r["n"]
        for r in await _fetch(
            db,
            "SELECT entity, count(*) AS n FROM unresolved_ids WHERE connection = $1 GROUP BY 1",
            name,
        )
    }
    entry["api_budget"] = await _budget(db, name)
    health = await _fetch(
        db,
        "SELECT failures, locked_until, failure_reason, failed_at FROM connection_health "
        "WHERE connection = $1",
        name,
    )
    locked = health[0] if health else None
    entry["lockout"] = (
        dict(locked)
        if locked is not None
        and locked["locked_until"] is not None
        and locked["locked_until"] > datetime.now(UTC)
        else None
    )
    return entry


async def _budget(db: DbSession, name: str) -> dict[str, Any] | None:
    budget = await _fetch(
        db,
        "SELECT threshold, tenant_calls, timeframe_minutes, read_at FROM api_budget "
        "WHERE connection = $1",
        name,
    )
    project = await _fetch(
        db,
        "SELECT coalesce(sum(calls), 0) AS calls FROM api_calls WHERE connection = $1 "
        "AND minute > now() - interval '61 minutes'",
        name,
    )
    if not budget and not project:
        return None
    reading = dict(budget[0]) if budget else {}
    return {**reading, "project_calls_last_hour": int(project[0]["calls"]) if project else 0}


async def _fetch(db: DbSession, query: str, *args: Any) -> list[asyncpg.Record]:
    """A read; a table an older schema lacks reads as empty rather than failing the screen."""
    try:
        return list(await db.fetch(query, *args))
    except asyncpg.UndefinedTableError:
        return []
    except DB_ERRORS as exc:
        raise SyncError(f"could not read the status from PostgreSQL: {exc}") from exc


async def _dead_letters(settings: AutotaskSettings, topics: Topics) -> dict[str, Any]:
    by_connection: dict[str, Counter[str]] = {}
    total = 0
    try:
        async for record in read_to_end(
            settings.kafka_bootstrap_servers, topics.callouts_dlq, client_id="autotask-sync-status"
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
                f"{hook['autotask_webhook_id'] or '-':<10} last callout "
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
