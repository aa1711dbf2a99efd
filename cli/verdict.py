"""The on-call verdict: which conditions of what ``autotask-sync status`` reads make a deployment
``degraded`` or ``down`` (exit codes 1 and 2; ``healthy``, 0, without any). Pure rules over the
screen's data, so each can be tested without servers.

The table (also in docs/architecture.md, "Operations"):

========  ========================================================================================
down      PostgreSQL or Kafka cannot be read (one line each, never a library's exception); the
          callouts topic does not exist; no consumer in the worker's group while callouts wait;
          every webhook of an enabled connection inactive (no callout arrives)
degraded  no consumer in the worker's group, nothing waiting yet; the group *not committing*
          (members, callouts waiting longer than ``STALL_UNREADY_AFTER`` and committed offsets that
          do not move while watched for ``--commit-watch``); a connection locked out after
          rejected credentials; an entity whose last sweep (of a mode) failed; dead letters pending
          (replayed ones do not count); callouts in the gateway's spool for longer than
          ``STALL_UNREADY_AFTER``; the API budget where sweeps pause (90%: the tenant's or this
          deployment's share); the provisioner's last pass failed; some webhooks inactive, or none
          registered (unless the connection's webhooks are held after a teardown)
neither   a scope change in progress; ids left for the sweep; lag the worker is committing its way
          through; anything about a disabled connection
========  ========================================================================================

"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from cli.text import distance, when
from shared.autotask import LimiterConfig, Priority
from shared.registrations import RegistrationState
from shared.settings import env_name

Verdict = Literal["healthy", "degraded", "down"]
Severity = Literal["degraded", "down"]
EXIT_CODES: dict[str, int] = {"healthy": 0, "degraded": 1, "down": 2}
BUDGET_HIGH = LimiterConfig().throttle(Priority.SWEEP).pause_at
"""The budget use (0..1) from which sweeps pause: degraded from there."""


@dataclass(frozen=True, slots=True)
class Options:
    """What one screen is about, and the bounds its judgements use."""

    only: str | None
    group: str
    commit_watch: timedelta
    stall_after: timedelta
    """``STALL_UNREADY_AFTER``: the services' own bound for work waiting with nothing done."""
    share: float
    """``AUTOTASK_SYNC_API_SHARE``: this deployment's share of the tenant's hourly threshold."""


@dataclass(frozen=True, slots=True)
class Reason:
    """Why the verdict is not ``healthy``: one condition of the table in the module docstring."""

    severity: Severity
    condition: str
    """A stable name for scripts: ``kafka_unreachable``, ``no_consumer``, ``locked_out``..."""
    text: str
    connection: str | None = None


def verdict(reasons: Sequence[Reason]) -> Verdict:
    """The worst severity among ``reasons``; ``healthy`` without any."""
    severities = {reason.severity for reason in reasons}
    return "down" if "down" in severities else "degraded" if severities else "healthy"


def assess(details: Mapping[str, Any], options: Options) -> list[Reason]:
    """The reasons the screen's data gives, by the table in the module docstring."""
    reasons = [*_infrastructure(details), *_consumer(details["consumer_lag"], options)]
    for name, connection in details["connections"].items():
        if connection["enabled"]:
            reasons += _connection_reasons(name, connection, details["at"], options)
    return reasons + _stray_dead_letters(details, options)


def _infrastructure(details: Mapping[str, Any]) -> list[Reason]:
    reasons = []
    if "error" in details["postgresql"]:
        text = f"PostgreSQL: {details['postgresql']['error']}"
        reasons.append(Reason("down", "postgresql_unreachable", text))
    if "error" in details["kafka"]:
        reasons.append(Reason("down", "kafka_unreachable", f"Kafka: {details['kafka']['error']}"))
    return reasons


def _consumer(lag: Mapping[str, Any], options: Options) -> list[Reason]:
    if "error" in lag:
        return []  # Kafka unreachable says it
    group, topic = lag["group"], lag["topic"]
    if not lag["topic_exists"]:
        text = f"topic {topic} does not exist: create it with `autotask-sync topics ensure`"
        return [Reason("down", "callouts_topic_missing", text)]
    if lag["members"] == 0:
        start = f"start the sync worker (its {env_name('consumer_group')} must be {group})"
        if lag["total"]:
            text = f"no consumer in group {group}: {lag['total']:,} callout(s) wait on {topic}"
            return [Reason("down", "no_consumer", f"{text}; {start}")]
        text = f"no consumer in group {group}: the next callout will wait; {start}"
        return [Reason("degraded", "no_consumer", text)]
    stuck: Mapping[int, datetime] = lag["not_committing"]
    if stuck:
        partitions = ", ".join(str(p) for p in sorted(stuck))
        text = (
            f"group {group} is not committing: callouts have waited on partition(s) {partitions} "
            f"since {when(min(stuck.values()))} and its committed offsets did not move in "
            f"{options.commit_watch.total_seconds():g} s; read the workers' logs, restart them"
        )
        return [Reason("degraded", "not_committing", text)]
    return []


def _connection_reasons(
    name: str, c: Mapping[str, Any], now: datetime, options: Options
) -> list[Reason]:
    def degraded(condition: str, text: str) -> Reason:
        return Reason("degraded", condition, f"{name}: {text}", name)

    reasons = _webhook_reasons(name, c)
    lock = c["lockout"]
    if lock:
        reasons.append(
            degraded(
                "locked_out",
                f"locked out until {when(lock['locked_until'], now)} after "
                f"{lock['failures']} rejected login(s): {lock['failure_reason']}; fix the "
                f"credentials, then `autotask-sync connections test {name}`",
            )
        )
    provisioner = c["provisioner"]
    if provisioner and provisioner["last_outcome"] == "failed" and not provisioner["held_at"]:
        reasons.append(
            degraded(
                "provisioning_failed",
                f"the provisioner's last pass failed {when(provisioner['last_pass_at'], now)}: "
                f"{provisioner['last_error']}",
            )
        )
    failed = [
        f"{s['entity']} ({f['mode']}, {distance(f['at'], now) if f['at'] else 'not finished'})"
        for s in c["sweeps"]
        for f in s["failed"]
    ]
    if failed:
        reasons.append(degraded("sweep_failed", f"last sweep failed: {', '.join(failed)}"))
    dead = (c["dead_letters"] or {}).get("pending", {})
    if dead:
        reasons.append(
            degraded(
                "dead_letters_pending",
                f"{sum(dead.values()):,} dead letter(s) pending ({counts_text(dead)}): "
                f"`autotask-sync dlq list --pending --connection {name}`, fix the cause, then "
                "`dlq replay`",
            )
        )
    spooled = c["spool"]
    if spooled["rows"] and now - spooled["oldest"] >= options.stall_after:
        reasons.append(
            degraded(
                "spool_waiting",
                f"{spooled['rows']:,} callout(s) wait in the gateway's spool, the oldest since "
                f"{when(spooled['oldest'], now)}: Kafka takes none of them "
                "(`autotask-sync spool list`)",
            )
        )
    budget = c["api_budget"]
    if budget and budget["used"] is not None and budget["used"] >= BUDGET_HIGH:
        reasons.append(
            degraded(
                "budget_high",
                f"API budget {budget['used']:.0%} used ({budget_text(budget)}): sweeps pause "
                f"from {BUDGET_HIGH:.0%}, webhook work at 100%",
            )
        )
    return reasons


def _webhook_reasons(name: str, c: Mapping[str, Any]) -> list[Reason]:
    """No callout arrives when every webhook is inactive (down); some, or none registered,
    leave entities to the sweeps alone (degraded). Webhooks held after a teardown are meant."""
    provisioner = c["provisioner"]
    if provisioner and provisioner["held_at"]:
        return []
    hooks = c["webhooks"]
    inactive = [h for h in hooks if h["state"] != RegistrationState.ACTIVE]
    listed = ", ".join(f"{h['entity']} {h['state']}" for h in inactive)
    look = f"`autotask-sync provision status --connection {name}`"
    if not hooks:
        text = f"{name}: no webhook registered: `autotask-sync provision apply --connection {name}`"
        return [Reason("degraded", "no_webhooks", text, name)]
    if len(inactive) == len(hooks):
        text = f"{name}: every webhook is inactive ({listed}): no callout arrives; {look}"
        return [Reason("down", "webhooks_inactive", text, name)]
    if inactive:
        text = f"{name}: webhook(s) not active ({listed}); {look}"
        return [Reason("degraded", "webhook_inactive", text, name)]
    return []


def _stray_dead_letters(details: Mapping[str, Any], options: Options) -> list[Reason]:
    """Dead letters pending for a connection that is not configured (removed, or none)."""
    dead = details["dead_letters"]
    if options.only is not None or "error" in dead or "error" in details["postgresql"]:
        return []
    return [
        Reason(
            "degraded",
            "dead_letters_pending",
            f"{name or 'no connection'}: {sum(counts.values()):,} dead letter(s) pending "
            f"({counts_text(counts)}) for a connection that is not configured "
            "(`autotask-sync dlq list --pending`)",
            name or None,
        )
        for name, counts in sorted(dead["by_connection"].items())
        if name not in details["connections"]
    ]


def counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{key} {n:,}" for key, n in sorted(counts.items()))


def budget_text(budget: Mapping[str, Any], now: datetime | None = None) -> str:
    mine = f"this deployment {budget['project_calls_last_hour']:,} call(s) in the last hour"
    if not budget["threshold"]:
        return f"{mine}; tenant use not read yet"
    read = f" (read {when(budget['read_at'], now)})" if now is not None else ""
    return (
        f"{mine} of its share {budget['share_calls']:,}; tenant {budget['tenant_calls'] or 0:,} "
        f"of {budget['threshold']:,} this hour{read}"
    )
