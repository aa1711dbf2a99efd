"""``autotask-sync status [--connection C] [--json] [--watch SECONDS]``: the on-call screen.

The first line is the verdict, ``healthy``, ``degraded`` or ``down``, and the lines under it are
its reasons; the exit code says the same (0, 1, 2), so the command serves as a probe or a cron
check. ``--json`` carries the verdict and the reasons (``severity``, ``condition``,
``connection``, ``text``) with everything below them. ``--watch 5`` shows the screen again every
5 s until Ctrl-C, which ends it cleanly with the last screen's exit code.

What decides the verdict is :mod:`cli.verdict` (its table is also in docs/architecture.md,
"Operations").

Per connection the screen shows the webhooks (state, Autotask id, last callout, last
deactivation), the provisioner's last pass, callouts in the gateway's spool, whether the mirror
follows the sync scope, the callouts waiting for the worker, each entity's last sweep and last
success, ids the worker could not fetch, the dead letters pending, the API budget (this
deployment's calls against its share, the tenant's against its threshold) and a lockout. Then the
worker's consumer group: members, lag, partitions not committing. Everything is read from
PostgreSQL and Kafka; nothing calls Autotask.

The lag is attributed to connections from the callouts' ``connection`` header, reading at most
:data:`LAG_READ_LIMIT` waiting callouts: beyond, the counts say "at least". The aiokafka and
asyncpg loggers are silent, as for every command (``-v`` lets them speak): a broker away is one line
of the screen, not a stream of connection errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from cli.deadletters import DeadLetter, marked, read_dead_letters, replays
from cli.store import open_store
from cli.text import or_dash, when
from cli.verdict import (
    EXIT_CODES,
    Options,
    assess,
    budget_text,
    counts_text,
    verdict,
)
from services.provisioner import store as provisioner_store
from services.sync_worker.settings import WorkerSettings
from services.webhook_gateway import spool
from shared.apibudget import store as budget_store
from shared.connections import store as rows
from shared.connections.catalogue import environment_connection
from shared.db import DbSession, guarded, session
from shared.entities import MIRROR_SCHEMA, find_rest_name
from shared.errors import ConfigError, DatabaseError, KafkaError
from shared.kafka import client_config
from shared.kafka.admin import GroupInspector, GroupLag
from shared.kafka.consumer import Record
from shared.messages.callout import HEADER_CONNECTION, header_map
from shared.messages.topics import Topics
from shared.reconcile import runs, unresolved
from shared.runtime.commandline import EXIT_INTERRUPTED
from shared.runtime.runner import aiter_until, until_stopped
from shared.scope import applied as applied_scopes
from shared.scope.boundary import boundary
from shared.settings import (
    AutotaskSettings,
    configured_value,
    env_name,
    load_settings,
    parse_duration,
)

T = TypeVar("T")

WORKER_GROUP: str = WorkerSettings.model_fields["consumer_group"].default
CLIENT_ID = "autotask-sync-status"

LAG_READ_LIMIT = 5_000
"""Waiting callouts read at most to attribute the lag to connections (a few MB)."""
LAG_READ_WITHIN = timedelta(seconds=10)
"""...and for at most this long."""
COMMIT_WATCH = timedelta(seconds=15)
"""Default ``--commit-watch``: longer than the worker's widest coalescing window
(``AUTOTASK_SYNC_WINDOW_HIGH``, 10 s) plus its commit interval (1 s), so a worker working
through a backlog is seen committing."""
COMMIT_POLL = timedelta(seconds=1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connection", metavar="NAME", help="only this connection")
    parser.add_argument(
        "--json", action="store_true", help="print JSON (for scripts): verdict, reasons, details"
    )
    parser.add_argument(
        "--consumer-group",
        default=configured_value("consumer_group") or WORKER_GROUP,
        help=f"the worker's consumer group (default {env_name('consumer_group')}, else "
        f"{WORKER_GROUP})",
    )
    parser.add_argument(
        "--watch",
        metavar="SECONDS",
        type=_interval,
        help="show the screen again every SECONDS (5, 30s, 2m) until Ctrl-C (with --json: a "
        "JSON document a line); the exit code is the last screen's",
    )
    parser.add_argument(
        "--commit-watch",
        metavar="SECONDS",
        type=_duration,
        default=COMMIT_WATCH,
        help="how long to watch the committed offsets of a group whose callouts wait longer "
        f"than {env_name('stall_unready_after')} before calling it not committing (default "
        f"{COMMIT_WATCH.total_seconds():g} s; 0: by their age alone)",
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(AutotaskSettings)
    options = Options(
        only=args.connection,
        group=args.consumer_group,
        commit_watch=args.commit_watch,
        stall_after=settings.stall_unready_after,
        share=settings.api_share,
    )
    if args.watch is not None:
        return asyncio.run(_watch(settings, options, every=args.watch, as_json=args.json))
    status = asyncio.run(collect(settings, options))
    print(_dumps(status, indent=2) if args.json else render(status))
    return EXIT_CODES[status["verdict"]]


async def _watch(
    settings: AutotaskSettings, options: Options, *, every: timedelta, as_json: bool
) -> int:
    """The screen every ``every`` until SIGINT or SIGTERM; a screen being read when one
    arrives is abandoned. The exit code is the last screen's (130 before the first)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    code = EXIT_INTERRUPTED
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    async for _ in aiter_until(stop, every):
        reading = await until_stopped(collect(settings, options), stop)
        if reading.cancelled():
            break
        status = reading.result()
        code = EXIT_CODES[status["verdict"]]
        if as_json:
            print(_dumps(status), flush=True)
        else:
            footer = f"(again every {every.total_seconds():g} s; Ctrl-C ends)"
            print(f"{clear}{render(status)}\n{footer}\n", flush=True)
    return code


# --- reading ------------------------------------------------------------------------------------
async def collect(settings: AutotaskSettings, options: Options) -> dict[str, Any]:
    """Everything the screen shows, as data, led by the verdict and its reasons. PostgreSQL and
    Kafka are read side by side; one that cannot be read is a reason, and the other is shown."""
    topics = Topics(prefix=settings.topic_prefix)
    database, kafka = await asyncio.gather(
        _read_database(settings, topics, options), _read_kafka(settings, topics, options)
    )
    details = _combine(database, kafka, options)
    reasons = assess(details, options)
    return {"verdict": verdict(reasons), "reasons": [asdict(r) for r in reasons], **details}


async def _read_database(
    settings: AutotaskSettings, topics: Topics, options: Options
) -> dict[str, Any]:
    """The connections' state and the dead-letter replays, or ``{"error": ...}``."""
    try:
        async with open_store(settings) as store, session(store.pool, "read the status") as db:
            enabled = await _connections(db, settings)
            if options.only is not None:
                if options.only not in enabled:
                    raise ConfigError(
                        f"no connection named {options.only!r} (`autotask-sync connections list`)"
                    )
                enabled = {options.only: enabled[options.only]}
            connections = {
                name: {
                    "enabled": on,
                    **await _connection(db, name, options),
                    "scope": await _scope(db, settings, name),
                }
                for name, on in enabled.items()
            }
            known = await _read(replays(db, topics.callouts_dlq), {})
    except DatabaseError as exc:
        return {"error": _one_line(exc)}
    return {"connections": connections, "replays": known}


async def _read_kafka(
    settings: AutotaskSettings, topics: Topics, options: Options
) -> dict[str, Any]:
    """The worker's group (members, lag, callouts waiting, partitions not committing) and the
    dead letters, or ``{"error": ...}``."""
    kafka = client_config(settings)
    try:
        async with GroupInspector(
            kafka, options.group, topics.callouts, client_id=CLIENT_ID
        ) as inspector:
            lag = await inspector.lag()
            waiting = await inspector.waiting(lag, limit=LAG_READ_LIMIT, within=LAG_READ_WITHIN)
            stuck = await _not_committing(inspector, lag, waiting, options)
        letters = await read_dead_letters(kafka, topics, client_id=CLIENT_ID)
    except KafkaError as exc:
        return {"error": _one_line(exc)}
    return {"lag": lag, "waiting": waiting, "not_committing": stuck, "letters": letters}


async def _not_committing(
    inspector: GroupInspector, lag: GroupLag, waiting: Sequence[Record], options: Options
) -> dict[int, datetime]:
    """The partitions where the group is not committing, with when their oldest waiting callout
    arrived: it has waited longer than ``STALL_UNREADY_AFTER`` (the workers' own readiness
    bound) and the partition's committed offset stays where it is while watched for
    ``--commit-watch``. Offsets are read every second and a partition that moves is cleared at
    once: a worker working through a backlog costs a second or two, a stuck one the full watch.

    Why watch: a commit carries no time, and each worker's own stall clock (its ``/readyz``)
    lives in its pod, out of a command's reach; and the age of the oldest waiting callout alone
    proves nothing (a worker catching up after an outage is far behind, and committing)."""
    if lag.members == 0:
        return {}
    now = datetime.now(UTC)
    oldest: dict[int, datetime] = {}
    for record in waiting:
        oldest.setdefault(record.partition, datetime.fromtimestamp(record.timestamp / 1000, UTC))
    suspects = {p: at for p, at in oldest.items() if now - at >= options.stall_after}
    before = {p.partition: p.committed for p in lag.partitions}
    deadline = time.monotonic() + options.commit_watch.total_seconds()
    while suspects and (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(COMMIT_POLL.total_seconds(), left))
        committed = await inspector.committed()
        suspects = {p: at for p, at in suspects.items() if committed.get(p) == before[p]}
    return suspects


async def _connections(db: DbSession, settings: AutotaskSettings) -> dict[str, bool]:
    """Each connection (the environment's first) and whether it is enabled."""
    enabled = {row.name: row.enabled for row in await rows.fetch_all(db)}
    environment = environment_connection(settings)
    return enabled if environment is None else {environment.name: True, **enabled}


async def _read(read: Awaitable[T], empty: T) -> T:
    """A store's read; a table an older schema lacks reads as ``empty`` rather than failing
    the screen."""
    try:
        return await read
    except DatabaseError as exc:
        if exc.sqlstate == DatabaseError.UNDEFINED_TABLE:
            return empty
        raise


async def _scope(db: DbSession, settings: AutotaskSettings, name: str) -> dict[str, Any] | None:
    """Whether the mirror follows the connection's scope, or which entities are still being
    brought to it (a scope change in progress, ``shared/reconcile/rescope.py``)."""
    environment = environment_connection(settings)
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


async def _connection(db: DbSession, name: str, options: Options) -> dict[str, Any]:
    now = datetime.now(UTC)
    hooks = await _read(provisioner_store.live_registrations(db, of_connection=name), [])
    record = await _read(provisioner_store.fetch_record(db, name), None)
    spooled = await _read(spool.stats(db, connection=name), spool.SpoolStats(0, None))
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
        "sweeps": await _sweeps(db, name),
        "repaired_last_24h": await _read(
            runs.repaired_since(db, name, now - timedelta(hours=24)), 0
        ),
        "unresolved_ids": {entity: n for (_, entity), n in sorted(unresolved_ids.items())},
        "api_budget": _budget(usage.get(name), now, options.share),
        "lockout": _lockout(health.get(name), now),
    }


async def _sweeps(db: DbSession, name: str) -> list[dict[str, Any]]:
    """Each entity's newest run, its last success (any mode) and the modes whose last run
    failed (the ``sync_status`` view: the last run and last success per mode)."""
    latest = await _read(runs.latest_per_entity(db, name), [])
    modes = await _read(
        guarded(
            db.fetch(
                "SELECT entity, mode, last_run_status, last_run_finished_at, "  # noqa: S608 - constant
                f"last_success_finished_at FROM {MIRROR_SCHEMA}.sync_status "
                "WHERE connection = $1",
                name,
            ),
            f"read the sweep history of {name!r}",
        ),
        [],
    )
    sweeps = []
    for run in latest:
        mine = [m for m in modes if m["entity"] == run.entity]
        successes = [m["last_success_finished_at"] for m in mine if m["last_success_finished_at"]]
        if run.status == "succeeded" and run.finished_at is not None:
            successes.append(run.finished_at)  # newer than the view when it is not noted there
        sweeps.append(
            {
                "entity": run.entity,
                "mode": run.mode,
                "status": run.status,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "repaired": run.counts.repaired,
                "error": run.error,
                "last_success_at": max(successes, default=None),
                "failed": [
                    {"mode": m["mode"], "at": m["last_run_finished_at"]}
                    for m in sorted(mine, key=lambda m: m["mode"])
                    if m["last_run_status"] == "failed"
                ],
            }
        )
    return sweeps


def _budget(
    usage: budget_store.UsageRow | None, now: datetime, share: float
) -> dict[str, Any] | None:
    """The connection's hourly budget, and its use as the throttling sees it
    (``BudgetTracker.pressure``: the larger of the tenant's use of its threshold and this
    deployment's use of its share)."""
    if usage is None:
        return None
    read_at = None if usage.reading_age is None else now - timedelta(seconds=usage.reading_age)
    facts: dict[str, Any] = {
        "threshold": usage.threshold,
        "tenant_calls": usage.tenant_calls,
        "timeframe_minutes": usage.timeframe_minutes,
        "read_at": read_at,
        "project_calls_last_hour": usage.project_calls,
        "share_calls": None,
        "used": None,
    }
    if usage.threshold:
        share_calls = max(1, int(share * usage.threshold))
        tenant = (usage.tenant_calls or 0) + usage.calls_since_reading
        facts["share_calls"] = share_calls
        facts["used"] = round(max(tenant / usage.threshold, usage.project_calls / share_calls), 3)
    return facts


def _lockout(health: budget_store.HealthRow | None, now: datetime) -> dict[str, Any] | None:
    if health is None or health.remaining <= 0:
        return None
    return {
        "failures": health.failures,
        "locked_until": now + timedelta(seconds=health.remaining),
        "failure_reason": health.reason,
        "failed_at": health.failed_at,
    }


def _combine(
    database: Mapping[str, Any], kafka: Mapping[str, Any], options: Options
) -> dict[str, Any]:
    """The screen's data from what PostgreSQL and Kafka gave: the lag and the dead letters
    of each connection beside its state."""
    letters = marked(kafka.get("letters", []), database.get("replays", {}))
    details: dict[str, Any] = {
        "at": datetime.now(UTC),
        "postgresql": {"error": database["error"]} if "error" in database else {"ok": True},
        "kafka": {"error": kafka["error"]} if "error" in kafka else {"ok": True},
        "connections": database.get("connections", {}),
        "consumer_lag": _lag(kafka, options),
        "dead_letters": _dead_letters(kafka, letters, replays_known="error" not in database),
    }
    lag, dead = details["consumer_lag"], details["dead_letters"]
    for name, entry in details["connections"].items():
        entry["lag"] = (
            None
            if "error" in lag
            else {"waiting": lag["by_connection"].get(name, 0), "at_least": lag["at_least"]}
        )
        entry["dead_letters"] = (
            None
            if "error" in dead
            else {
                "pending": dead["by_connection"].get(name, {}),
                "replayed": dead["replayed_by_connection"].get(name, 0),
            }
        )
    return details


UNREADABLE = "Kafka cannot be read (see kafka.error)"


def _lag(kafka: Mapping[str, Any], options: Options) -> dict[str, Any]:
    if "error" in kafka:
        return {"group": options.group, "error": UNREADABLE}
    lag: GroupLag = kafka["lag"]
    waiting: Sequence[Record] = kafka["waiting"]
    by_connection = Counter(header_map(r.headers).get(HEADER_CONNECTION, "") for r in waiting)
    return {
        "group": lag.group,
        "topic": lag.topic,
        "topic_exists": bool(lag.partitions),
        "members": lag.members,
        "total": lag.total,
        "partitions": {p.partition: p.lag for p in lag.partitions},
        "by_connection": dict(by_connection),
        "at_least": len(waiting) < lag.total,
        "read": len(waiting),
        "not_committing": kafka["not_committing"],
        "commit_watch_seconds": options.commit_watch.total_seconds(),
    }


def _dead_letters(
    kafka: Mapping[str, Any], letters: Sequence[DeadLetter], *, replays_known: bool
) -> dict[str, Any]:
    if "error" in kafka:
        return {"error": UNREADABLE}
    pending: dict[str, Counter[str]] = {}
    replayed: Counter[str] = Counter()
    for letter in letters:
        if letter.pending:
            pending.setdefault(letter.connection, Counter())[letter.error_class or "?"] += 1
        else:
            replayed[letter.connection] += 1
    return {
        "pending": sum(sum(c.values()) for c in pending.values()),
        "replayed": sum(replayed.values()),
        "replays_known": replays_known,
        "by_connection": {name: dict(c) for name, c in pending.items()},
        "replayed_by_connection": dict(replayed),
    }


# --- text ---------------------------------------------------------------------------------------
def render(status: Mapping[str, Any]) -> str:
    """The screen: the verdict, its reasons, then each connection and the worker's group."""
    now = status["at"]
    lines = [status["verdict"]]
    lines += [f"  {r['severity']}: {r['text']}" for r in status["reasons"]]
    lines.append("")
    if "error" in status["postgresql"]:
        lines.append("connections: unknown (PostgreSQL cannot be read)")
    for name, c in status["connections"].items():
        lines += _render_connection(name, c, now)
    lines += _render_group(status["consumer_lag"])
    dead = status["dead_letters"]
    if "error" in dead:
        lines.append("dead letters: unknown (Kafka cannot be read)")
    else:
        known = "" if dead["replays_known"] else " (replays unknown: PostgreSQL cannot be read)"
        lines.append(
            f"dead letters: {dead['pending']:,} pending, {dead['replayed']:,} replayed{known}"
        )
    return "\n".join(lines)


def _render_connection(name: str, c: Mapping[str, Any], now: datetime) -> list[str]:
    if not c["enabled"]:
        return [f"connection {name} (disabled: not synced, not judged)"]
    lines = [f"connection {name}"]
    if c["lockout"]:
        lock = c["lockout"]
        lines.append(
            f"  LOCKED OUT until {when(lock['locked_until'], now)}: {lock['failure_reason']} "
            f"({lock['failures']} rejected login(s))"
        )
    lines.append("  webhooks:")
    if not c["webhooks"]:
        lines.append("    none registered")
    for hook in c["webhooks"]:
        lines.append(
            f"    {hook['entity']:<20} {hook['state']:<12} webhook "
            f"{or_dash(hook['autotask_webhook_id']):<10} last callout "
            f"{when(hook['last_callout_at'], now)}; last deactivation "
            f"{when(hook['last_deactivated_at'], now)}"
        )
    p = c["provisioner"]
    if p:
        held = f"; HELD since {when(p['held_at'], now)}: {p['held_reason']}" if p["held_at"] else ""
        error = f" ({p['last_error']})" if p["last_error"] else ""
        lines.append(
            f"  provisioner: last pass {when(p['last_pass_at'], now)}: {p['last_outcome']}, "
            f"{p['last_steps']} step(s){error}{held}"
        )
    spooled = c["spool"]
    lines.append(
        f"  gateway spool: {spooled['rows']} callout(s) waiting (oldest "
        f"{when(spooled['oldest'], now)})"
    )
    lines.append(f"  {_scope_text(c.get('scope'), now)}")
    lines.append(f"  waiting for the worker: {_lag_text(c['lag'])}")
    lines.append(f"  sweeps (repaired in the last 24 h: {c['repaired_last_24h']:,}):")
    for sweep in c["sweeps"]:
        error = f": {sweep['error']}" if sweep["error"] else ""
        lines.append(
            f"    {sweep['entity']:<20} {sweep['mode']:<12} {sweep['status']:<10} "
            f"{when(sweep['finished_at'] or sweep['started_at'], now)}, repaired "
            f"{sweep['repaired']}{error}; last success {when(sweep['last_success_at'], now)}"
        )
    ids = ", ".join(f"{e} {n}" for e, n in sorted(c["unresolved_ids"].items())) or "none"
    lines.append(f"  unresolved ids (left for the sweep): {ids}")
    lines.append(f"  dead letters: {_dead_text(c['dead_letters'])}")
    budget = c["api_budget"]
    lines.append(f"  API budget: {budget_text(budget, now) if budget else 'no calls recorded'}")
    return lines


def _scope_text(scope: Mapping[str, Any] | None, now: datetime) -> str:
    if scope is None:
        return "scope: -"
    if scope["pending"]:
        entities = ", ".join(
            f"{p['entity']} ({'running' if p['running'] else 'waiting'})" for p in scope["pending"]
        )
        return f"scope: change in progress: {entities}"
    return f"scope: the mirror follows it (last applied {when(scope['last_applied_at'], now)})"


def _lag_text(lag: Mapping[str, Any] | None) -> str:
    if lag is None:
        return "unknown (Kafka cannot be read)"
    return f"{'at least ' if lag['at_least'] else ''}{lag['waiting']:,} callout(s)"


def _dead_text(dead: Mapping[str, Any] | None) -> str:
    if dead is None:
        return "unknown (Kafka cannot be read)"
    pending = dead["pending"]
    text = f"{sum(pending.values()):,} pending" + (f" ({counts_text(pending)})" if pending else "")
    return f"{text}, {dead['replayed']:,} replayed"


def _render_group(lag: Mapping[str, Any]) -> list[str]:
    if "error" in lag:
        return [f"consumer group {lag['group']}: unknown (Kafka cannot be read)"]
    if not lag["topic_exists"]:
        return [f"consumer group {lag['group']}: topic {lag['topic']} does not exist"]
    busy = ", ".join(f"{p}: {n:,}" for p, n in sorted(lag["partitions"].items()) if n)
    lines = [
        f"consumer group {lag['group']} on {lag['topic']}: {lag['members']} member(s), "
        f"{lag['total']:,} callout(s) waiting" + (f" (partition {busy})" if busy else "")
    ]
    if lag["not_committing"]:
        stuck = ", ".join(
            f"{p} (oldest waiting since {when(at)})"
            for p, at in sorted(lag["not_committing"].items())
        )
        lines.append(f"  not committing: partition {stuck}")
    return lines


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _dumps(status: Mapping[str, Any], *, indent: int | None = None) -> str:
    return json.dumps(status, indent=indent, default=_json_value)


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _duration(text: str) -> timedelta:
    value = parse_duration(text)
    if not isinstance(value, timedelta):
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds (5) or a duration (30s, 2m)")
    return value


def _interval(text: str) -> timedelta:
    value = _duration(text)
    if value <= timedelta(0):
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of seconds")
    return value
