"""``autotask-sync test-connection``: can this process talk to Autotask, and how well?

Discovers the zone, authenticates, and reports what a person setting up a connection needs:
the zone host, the API user, how many companies and tickets it sees, the tenant's API usage,
and whether the user may create webhooks. Any failure is printed as its cause and the fix, and
the exit status is non-zero (1). Secrets are read from environment variables only, never from
argv (it shows up in ``ps`` and shell history).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import SecretStr
from yarl import URL

from shared.autotask import (
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
from shared.settings import AutotaskSettings, load_settings

_NOW = Priority.INTERACTIVE
WEBHOOK_ROOT = "TicketWebhooks"

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
    error: dict[str, str] | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connection", help="connection name (slug) used in metrics and logs")
    parser.add_argument("--username", help="API-only user's username (overrides the env)")
    parser.add_argument(
        "--secret-env",
        metavar="VAR",
        help="read the secret from environment variable VAR instead of "
        "AUTOTASK_SYNC_AUTOTASK_SECRET (secrets are never accepted as arguments)",
    )
    parser.add_argument(
        "--integration-code-env",
        metavar="VAR",
        help="read the integration code from VAR instead of "
        "AUTOTASK_SYNC_AUTOTASK_INTEGRATION_CODE",
    )
    parser.add_argument("--zone-url", help="REST root; skips zone discovery")
    parser.add_argument("--zone-lookup-url", help="where zone discovery asks")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="give up after this many seconds (60)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    report = asyncio.run(check_from_args(args))
    print(render_json(report) if args.json else render_text(report))
    return 0 if report.ok else 1


async def check_from_args(args: argparse.Namespace) -> Report:
    """Build the connection from env + flags and check it; configuration errors are reported."""
    try:
        connection = Connection.from_settings(load_settings(AutotaskSettings, **_overrides(args)))
    except ConfigError as exc:
        report = Report(connection=args.connection or "default")
        report.error = _explain("configuration", exc)
        return report
    return await check(connection, deadline=args.timeout)


async def check(connection: Connection, *, deadline: float = 60.0) -> Report:
    """Run every step against Autotask; stop at the first that fails."""
    config = ClientConfig(
        request_timeout=min(30.0, deadline),
        retry=RetryPolicy(max_attempts=3, base_delay=1.0, deadline=deadline),
        # Usage is read explicitly below; the tracker would spend a second call on it.
        limiter=LimiterConfig(budget=BudgetConfig(enabled=False)),
    )
    report = Report(connection=connection.name)
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
            report.usage = {
                "requests": usage.current_timeframe_request_count,
                "limit": usage.external_request_threshold,
                "window_minutes": usage.request_threshold_timeframe,
                "used_ratio": round(usage.used_ratio, 4),
            }
            step = "webhook permission"
            report.webhooks = await _webhooks(client)
        except SyncError as exc:
            report.error = _explain(step, exc)
            return report
    if not report.webhooks.get("can_create"):
        report.error = {
            "step": "webhook permission",
            "type": "PermissionDeniedError",
            "cause": f"the API user cannot create webhooks: {report.webhooks.get('reason')}",
            "fix": WEBHOOK_FIX,
        }
        return report
    report.ok = True
    return report


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


def _explain(step: str, exc: SyncError) -> dict[str, str]:
    fix = next((text for cls, text in FIXES if isinstance(exc, cls)), "see the cause above")
    if isinstance(exc, ZoneLookupError) and exc.retriable:
        # The lookup never got an answer: the username is not the problem yet.
        fix = (
            "check network access from here to the zone lookup host (proxy, firewall, DNS), "
            "or set AUTOTASK_SYNC_AUTOTASK_ZONE_URL to the tenant's REST URL to skip discovery"
        )
    return {"step": step, "type": type(exc).__name__, "cause": str(exc), "fix": fix}


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for flag, key in (
        ("connection", "connection"),
        ("username", "autotask_username"),
        ("zone_url", "autotask_zone_url"),
        ("zone_lookup_url", "autotask_zone_lookup_url"),
    ):
        value = getattr(args, flag, None)
        if value:
            overrides[key] = value
    for flag, key in (
        ("secret_env", "autotask_secret"),
        ("integration_code_env", "autotask_integration_code"),
    ):
        variable = getattr(args, flag, None)
        if variable:
            value = os.environ.get(variable)
            if not value:
                option = "--" + flag.replace("_", "-")
                raise ConfigError(f"environment variable {variable} (named by {option}) is not set")
            overrides[key] = SecretStr(value)
    return overrides


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
    if report.usage:
        usage = report.usage
        lines.append(
            f"  API usage:   {usage['requests']} / {usage['limit']} requests this hour "
            f"({usage['used_ratio']:.1%})"
        )
    if report.webhooks:
        verdict = "can be created" if report.webhooks["can_create"] else "CANNOT be created"
        lines.append(f"  webhooks:    {verdict} ({report.webhooks['entity']})")
    if report.error:
        lines += [
            f"FAILED at {report.error['step']}",
            f"  cause: {report.error['cause']}",
            f"  fix:   {report.error['fix']}",
        ]
    else:
        lines.append("OK: the connection works")
    return "\n".join(lines)


def render_json(report: Report) -> str:
    return json.dumps(asdict(report), indent=2, sort_keys=True)
