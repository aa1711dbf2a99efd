"""Connection checks people run: can this connection talk to Autotask, and how well?

:func:`check` discovers the zone, authenticates, and reports what a person setting up a
connection needs: the zone host, the API user, how many companies and tickets it sees, the
tenant's API usage and this deployment's share of it, and whether the user may create webhooks.
Any failure is reported as its cause and the fix. :func:`check_scope` verifies a sync scope's ids
against the tenant's picklists and companies. Used by ``test-connection`` and
``connections add|edit|test``.

With the deployment's database (``database_url``) the report also shows what every process
together used of the share in the rolling hour, and whether calls are paused after rejected
credentials; a passing check lifts that pause for every process (it is how a person says the
credentials are fixed). The check's own calls are made directly, pause or not, and counted
into the shared budget afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from yarl import URL

from shared.apibudget import store as shared_budget
from shared.autotask import (
    DEFAULT_SHARE,
    AutotaskClient,
    BudgetConfig,
    ClientConfig,
    Connection,
    F,
    LimiterConfig,
    Priority,
    Query,
    RetryPolicy,
)
from shared.db import DedicatedSession, connect
from shared.errors import (
    AuthenticationError,
    AutotaskConnectionError,
    AutotaskServerError,
    ConfigError,
    DeadlineExceededError,
    InvalidQueryError,
    PermissionDeniedError,
    RateLimitError,
    SyncError,
    ZoneLookupError,
)
from shared.scope.rules import SyncScope

_NOW = Priority.INTERACTIVE
WEBHOOK_ROOT = "TicketWebhooks"
DEFAULT_TIMEOUT = timedelta(seconds=60)

FIXES: list[tuple[type[SyncError], str]] = [
    (
        AuthenticationError,
        "set AUTOTASK_SYNC_AUTOTASK_USERNAME, AUTOTASK_SYNC_AUTOTASK_SECRET and "
        "AUTOTASK_SYNC_AUTOTASK_INTEGRATION_CODE to the API-only user's username, its secret and "
        "its API tracking identifier (Admin > Resources > the API user); if the user shows "
        "'Locked', unlock it",
    ),
    (
        ZoneLookupError,
        "check AUTOTASK_SYNC_AUTOTASK_USERNAME (the API-only user's username), or set "
        "AUTOTASK_SYNC_AUTOTASK_ZONE_URL to the tenant's REST URL to skip discovery",
    ),
    (
        PermissionDeniedError,
        "give the API user's security level the permission named above (Admin > Security "
        "Levels), or use an API user whose level has it",
    ),
    (
        RateLimitError,
        "wait and run it again: the tenant's hourly budget or thread limit is used up, "
        "possibly by another integration (Admin > API usage)",
    ),
    (
        DeadlineExceededError,
        "run it again later, or raise --timeout; Autotask is refusing calls for load",
    ),
    (
        AutotaskConnectionError,
        "check network access from here to the zone host (proxy, firewall, DNS)",
    ),
    (ConfigError, "fix the configuration named above (see docs/configuration.md)"),
]
SCOPE_FIX = (
    "correct the ids in the connection's scope (`autotask-sync connections edit NAME "
    "--scope-file FILE`); the valid choices are listed above"
)
WEBHOOK_FIX = (
    "edit the API user's security level: enable 'Can create WebHooks' and set a maximum "
    "webhook count of at least 1 (Admin > Security Levels)"
)


@dataclass
class Report:
    """What the check found; printed as text or JSON. Holds no secrets."""

    connection: str
    ok: bool = False
    zone: dict[str, Any] = field(default_factory=dict)
    api_user: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    webhooks: dict[str, Any] = field(default_factory=dict)
    scope: dict[str, Any] = field(default_factory=dict)
    pause: dict[str, Any] = field(default_factory=dict)
    """Calls paused after rejected credentials (empty: none), and whether the check lifted it."""
    error: dict[str, str] | None = None


async def check(
    connection: Connection,
    *,
    scope: SyncScope | None = None,
    time_limit: timedelta = DEFAULT_TIMEOUT,
    share: float = DEFAULT_SHARE,
    database_url: str | None = None,
) -> Report:
    """Run every step against Autotask, ``scope``'s ids last; stop at the first that fails.

    ``share`` is the deployment's ``AUTOTASK_SYNC_API_SHARE``; ``database_url`` its database,
    for the shared budget and pause (unreachable: the report says so and the check goes on).
    """
    async with _budget_records(database_url) as records:
        report = await _check(connection, scope=scope, time_limit=time_limit, share=share)
        await _shared_state(report, connection.name, records)
    return report


async def _check(
    connection: Connection, *, scope: SyncScope | None, time_limit: timedelta, share: float
) -> Report:
    config = ClientConfig(
        request_timeout=min(timedelta(seconds=30), time_limit),
        retry=RetryPolicy(max_attempts=3, base_delay=timedelta(seconds=1), deadline=time_limit),
        # Usage is read explicitly below; the tracker would spend a second call on it.
        limiter=LimiterConfig(budget=BudgetConfig(enabled=False, share=share)),
    )
    report = Report(connection=connection.name)
    report.usage["share"] = share
    step = "zone discovery"
    async with AutotaskClient(connection, config=config) as client:
        try:
            root = await client.rest_root()
            info = client.zone.info
            report.zone = {
                "host": URL(root).host,
                "url": root,
                "name": info.zone_name if info else None,
                "discovered": client.zone.discovered,
            }
            step = "authentication"
            report.api_user = await _api_user(client, connection.username)
            step = "counting companies and tickets"
            for entity in ("Companies", "Tickets"):
                report.counts[entity] = await client.count(entity, priority=_NOW)
            step = "reading API usage"
            usage = await client.threshold_information()
            report.usage |= {
                "requests": usage.current_timeframe_request_count,
                "limit": usage.external_request_threshold,
                "window_minutes": usage.request_threshold_timeframe,
                "used_ratio": round(usage.used_ratio, 4),
                "project_limit": client.budget.allowance,
            }
            step = "webhook permission"
            report.webhooks = await _webhooks(client)
            if not report.webhooks.get("can_create"):
                report.error = {
                    "step": step,
                    "type": "PermissionDeniedError",
                    "cause": "the API user cannot create webhooks: "
                    f"{report.webhooks.get('reason')}",
                    "fix": WEBHOOK_FIX,
                }
                return report
            if scope is not None:
                step = "sync scope"
                problems = await check_scope(client, scope)
                report.scope = {"valid": not problems, "problems": problems}
                if problems:
                    report.error = {
                        "step": step,
                        "type": "ConfigError",
                        "cause": "; ".join(problems),
                        "fix": SCOPE_FIX,
                    }
                    return report
        except SyncError as exc:
            report.error = explain(step, exc)
            return report
        finally:
            report.usage["calls_by_this_check"] = client.budget.view.project_calls
    report.ok = True
    return report


@contextlib.asynccontextmanager
async def _budget_records(database_url: str | None) -> AsyncIterator[DedicatedSession | None]:
    """A session on the deployment's database, or None when there is none to reach."""
    db = None
    if database_url:
        with contextlib.suppress(SyncError):
            db = await connect(database_url, connect_timeout=timedelta(seconds=2))
    try:
        yield db
    finally:
        if db is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(db.close(), 5)


async def _shared_state(report: Report, name: str, db: DedicatedSession | None) -> None:
    """This deployment's use of its share and the pause, from the shared budget (if any)."""
    made = int(report.usage.pop("calls_by_this_check", 0) or 0)
    if db is None:
        report.usage["project_requests"] = None
        return
    try:
        if made:
            await shared_budget.add_calls(db, connection=name, calls=made)
        usage = await shared_budget.read_usage(db, [name])
        report.usage["project_requests"] = usage[name].project_calls if name in usage else 0
        health = (await shared_budget.read_health(db, [name])).get(name)
        if health is not None:
            report.pause = {
                "reason": health.reason,
                "failures": health.failures,
                "remaining_seconds": max(0, round(health.remaining)),
                "cleared": False,
            }
            if report.ok:
                await shared_budget.clear_health(db, connection=name)
                report.pause["cleared"] = True
    except SyncError:
        # The budget tables may not exist yet (migrate) or the database went away meanwhile.
        report.usage["project_requests"] = None


async def _api_user(client: AutotaskClient, username: str) -> dict[str, Any]:
    query = Query.where(F("userName").eq(username))
    try:
        rows = await client.query_all("Resources", query, priority=_NOW)
    except PermissionDeniedError:
        rows = []  # refused for permission, so the login itself worked
    if not rows:
        # Authenticated, but the level may hide Resources; still a working connection.
        return {"username": username, "visible": False}
    row = rows[0]
    name = " ".join(str(row[k]) for k in ("firstName", "lastName") if row.get(k)).strip()
    return {
        "username": username,
        "visible": True,
        "resource_id": row.get("id"),
        "name": name or None,
        "email": row.get("email"),
    }


async def _webhooks(client: AutotaskClient) -> dict[str, Any]:
    """Whether the API user may create webhooks, without leaving anything behind.

    entityInformation answers for the entity's create permission, but not (in every tenant)
    for the separate "Can create WebHooks" grant, so a create is probed with an empty body:
    Autotask refuses it either for permission (no) or for the missing webhook URL (yes).
    """

    def verdict(can: bool, reason: str) -> dict[str, Any]:
        return {"entity": WEBHOOK_ROOT, "can_create": can, "reason": reason}

    try:
        info = await client.entity_information(WEBHOOK_ROOT)
    except PermissionDeniedError as exc:
        return verdict(False, str(exc))
    access = info.user_access_for_create
    if not info.can_create or access is False or str(access).strip().lower() == "none":
        return verdict(False, f"entityInformation of {WEBHOOK_ROOT} denies create to the user")
    try:
        created = await client.create(WEBHOOK_ROOT, {}, priority=_NOW)
    except PermissionDeniedError as exc:
        return verdict(False, str(exc))
    except InvalidQueryError:
        return verdict(True, "allowed (a probe was refused only for its empty body)")
    except AutotaskServerError as exc:
        # Permission is checked first in every answer seen; an unclear refusal of an empty
        # body is not a denial, and entityInformation already said yes.
        return verdict(True, f"probably allowed (the probe got an unclear answer: {exc})")
    # Never expected (an empty webhook is invalid), but if it happened, undo it.
    await client.delete(WEBHOOK_ROOT, created, priority=_NOW)
    return verdict(True, "allowed")


def explain(step: str, exc: SyncError) -> dict[str, str]:
    """The failing step, the error and the fix, for a report."""
    fix = next((text for cls, text in FIXES if isinstance(exc, cls)), "see the cause above")
    if isinstance(exc, ZoneLookupError) and exc.retriable:
        # The lookup never got an answer: the username is not the problem yet.
        fix = (
            "check network access from here to the zone lookup host (proxy, firewall, DNS), "
            "or set AUTOTASK_SYNC_AUTOTASK_ZONE_URL to the tenant's REST URL to skip discovery"
        )
    return {"step": step, "type": type(exc).__name__, "cause": str(exc), "fix": fix}


def render_text(report: Report) -> str:
    lines = [f"Autotask connection {report.connection!r}"]
    if report.zone:
        how = "discovered" if report.zone.get("discovered") else "configured"
        lines.append(f"  zone:        {report.zone['host']} ({report.zone['url']}, {how})")
    if report.api_user:
        user = report.api_user
        if user.get("visible"):
            lines.append(
                f"  API user:    {user.get('name') or user['username']} <{user.get('email')}>"
                f" (resource {user.get('resource_id')})"
            )
        else:
            lines.append(f"  API user:    {user['username']} (authenticated; not visible)")
    for entity, number in report.counts.items():
        lines.append(f"  {entity.lower() + ':':<12} {number}")
    usage = report.usage
    if "requests" in usage:
        lines.append(
            f"  API usage:   {usage['requests']} / {usage['limit']} requests this hour "
            f"({usage['used_ratio']:.1%})"
        )
        lines.append(f"  API share:   {_share_text(usage)}")
    if report.pause:
        lines.append(f"  paused:      {_pause_text(report.pause)}")
    if report.webhooks:
        verdict = "can be created" if report.webhooks["can_create"] else "CANNOT be created"
        lines.append(f"  webhooks:    {verdict} ({report.webhooks['entity']})")
    if report.scope:
        lines.append(f"  sync scope:  {'valid' if report.scope['valid'] else 'INVALID'}")
    if report.error:
        lines += [
            f"FAILED at {report.error['step']}",
            f"  cause: {report.error['cause']}",
            f"  fix:   {report.error['fix']}",
        ]
    else:
        lines.append("OK: the connection works")
    return "\n".join(lines)


def _share_text(usage: dict[str, Any]) -> str:
    allowed = usage.get("project_limit")
    text = f"this deployment may use {usage['share']:.0%} of it ({allowed} requests per hour)"
    used = usage.get("project_requests")
    if used is None:
        return text + "; its use is not known here (the deployment's database is not reachable)"
    ratio = f" ({used / allowed:.1%})" if allowed else ""
    return text + f"; all its processes used {used} in the last hour{ratio}"


def _pause_text(pause: dict[str, Any]) -> str:
    why = f"Autotask rejected the credentials ({pause['reason']}; {pause['failures']} in a row)"
    if pause.get("cleared"):
        return f"calls were paused after {why}; lifted now that the test passed"
    remaining = pause.get("remaining_seconds", 0)
    if remaining > 0:
        return f"calls are paused for another {remaining} s after {why}"
    return f"calls were paused after {why}; one process may try again now"


def render_json(report: Report) -> str:
    return json.dumps(asdict(report), indent=2, sort_keys=True)


# --- sync scope -------------------------------------------------------------------------------
# (scope attribute, entity, picklist field, what people call the values)
_PICKLIST_RULES: tuple[tuple[str, str, str, str], ...] = (
    ("tickets.include_queues", "Tickets", "queueID", "queues"),
    ("tickets.exclude_queues", "Tickets", "queueID", "queues"),
    ("tickets.include_categories", "Tickets", "ticketCategory", "ticket categories"),
    ("tickets.exclude_categories", "Tickets", "ticketCategory", "ticket categories"),
    ("tickets.include_statuses", "Tickets", "status", "ticket statuses"),
    ("tickets.exclude_statuses", "Tickets", "status", "ticket statuses"),
    ("companies.company_types", "Companies", "companyType", "company types"),
)
_SHOWN_CHOICES = 20


async def check_scope(client: AutotaskClient, scope: SyncScope) -> list[str]:
    """Problems with ``scope`` against the tenant: ids that are not in the picklists (named with
    the valid choices) and company ids that do not exist. Empty when the scope is valid."""
    problems: list[str] = []
    picklists: dict[tuple[str, str], dict[str, str] | None] = {}
    for attribute, entity, field_name, noun in _PICKLIST_RULES:
        group, name = attribute.split(".")
        wanted = getattr(getattr(scope, group), name)
        if not wanted:
            continue
        if (entity, field_name) not in picklists:
            fields = {f.name: f for f in await client.field_info(entity)}
            info = fields.get(field_name)
            picklists[entity, field_name] = info.picklist() if info and info.is_pick_list else None
        choices = picklists[entity, field_name]
        if choices is None:
            problems.append(
                f"{attribute}: the tenant reports no {field_name} picklist on {entity}, so "
                f"{noun} cannot be filtered; remove {attribute}"
            )
            continue
        unknown = [value for value in wanted if str(value) not in choices]
        if unknown:
            valid = ", ".join(
                f"{v} ({label})" for v, label in list(choices.items())[:_SHOWN_CHOICES]
            )
            more = len(choices) - _SHOWN_CHOICES
            problems.append(
                f"{attribute}: {', '.join(map(str, unknown))} "
                f"{'is not one of the' if len(unknown) == 1 else 'are not'} {noun}; valid "
                f"{noun}: {valid}{f' and {more} more' if more > 0 else ''}"
            )
    if scope.companies.company_ids:
        found = await client.fetch_by_ids(
            "Companies", scope.companies.company_ids, include_fields=("id",), priority=_NOW
        )
        if found.missing:
            problems.append(
                f"companies.company_ids: no company has id {', '.join(map(str, found.missing))} "
                "(or the API user cannot see it)"
            )
    return problems
