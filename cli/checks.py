"""Connection checks people run: can this connection talk to Autotask, and how well?

:func:`check` discovers the zone, authenticates, and reports what a person setting up a
connection needs: the zone host, the API user, how many rows of each entity the connection
syncs the user sees, the tenant's API usage and this deployment's share of it, and whether the
user may read and create every webhook the connection would get. Every permission the sync
needs and the API user lacks is listed, each with where to grant it; any other failure is
reported as its cause and the fix. :func:`check_scope` verifies a sync scope's ids against the
tenant's picklists and companies. Used by ``test-connection`` and ``connections add|edit|test``.

The calls are few and cheap: the zone lookup, one query for the API user, one ``count`` per
synced entity, one usage reading, two per webhook entity (a ``count`` of its webhooks and a
create probe with an empty body, which Autotask refuses either for permission or for the missing
fields) and, for a scope with filters, one field-information read per filtered picklist and one
query for the listed companies. The default scope makes 13 besides the zone lookup (7 synced
entities, 2 webhook entities); the report says how many were made.

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
from typing import Any, Literal

from yarl import URL

from cli.tenant_lookup import (
    SCOPE_PICKLISTS,
    Picklist,
    PicklistField,
    read_picklist,
    scope_values,
)
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
from shared.entities import EntitySpec, by_rest_name
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
DEFAULT_TIMEOUT = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Levers:
    """Where the person who ran a check changes each setting of the connection, as a fix line
    names it: the environment's variables, or the options of a ``connections`` command."""

    credentials: str
    """How to give the username, secret and integration code anew (a clause)."""
    username: str
    zone_url: str
    zone_lookup_url: str
    scope: str


ENVIRONMENT = Levers(
    credentials="set AUTOTASK_SYNC_AUTOTASK_USERNAME, AUTOTASK_SYNC_AUTOTASK_SECRET and "
    "AUTOTASK_SYNC_AUTOTASK_INTEGRATION_CODE",
    username="AUTOTASK_SYNC_AUTOTASK_USERNAME",
    zone_url="AUTOTASK_SYNC_AUTOTASK_ZONE_URL",
    zone_lookup_url="AUTOTASK_SYNC_AUTOTASK_ZONE_LOOKUP_URL",
    scope="AUTOTASK_SYNC_AUTOTASK_SCOPE",
)
"""The environment connection's (``test-connection``)."""
ADDING = Levers(
    credentials="give them again to `autotask-sync connections add` (--username; the secret "
    "and integration code at its prompt, or with --stdin or --secret-env and "
    "--integration-code-env)",
    username="--username",
    zone_url="--zone-url URL",
    zone_lookup_url="--zone-lookup-url URL",
    scope="--scope or --scope-file",
)
"""A connection ``connections add`` is about to store."""


def stored(name: str) -> Levers:
    """A stored connection's: the options of ``autotask-sync connections edit NAME``."""
    edit = f"`autotask-sync connections edit {name}"
    return Levers(
        credentials=f"store them with {edit} --username USER --new-secret "
        "--new-integration-code` (the secrets at its prompt, or with --stdin)",
        username=f"{edit} --username USER`",
        zone_url=f"{edit} --zone-url URL`",
        zone_lookup_url=f"{edit} --zone-lookup-url URL`",
        scope=f"{edit} --scope-file FILE`",
    )


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a step talks to: Autotask's zone lookup, or the tenant's zone (configured, or named
    by the lookup)."""

    url: str
    role: Literal["zone lookup", "zone"]
    configured: bool = True

    @property
    def host(self) -> str:
        return URL(self.url).host or self.url


_NETWORK = "(DNS, proxy, firewall, TLS certificates)"
_NETWORK_FIX = f"check network access from here to Autotask {_NETWORK}"
FIXES: list[tuple[type[SyncError], str]] = [
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
    (AutotaskConnectionError, _NETWORK_FIX),
    (ConfigError, "fix the configuration named above (see docs/configuration.md)"),
]
"""The fixes that do not depend on where the connection is configured."""

READ_PERMISSION = "query (view) permission"
WEBHOOK_PERMISSION = "'Can create WebHooks' with a maximum webhook count that covers them"
# Where each synced entity's permission sits in a security level (its section and object).
_SECTIONS = {
    "Companies": "section CRM, object Organizations",
    "Contacts": "section CRM, object Contacts",
    "ConfigurationItems": "section CRM, object Configuration Items",
    "Tickets": "section Service Desk, object Tickets",
    "TicketNotes": "section Service Desk, object Tickets (their notes)",
    "Resources": "section Admin, object Resources/Users (HR)",
    "Contracts": "section Contracts, object Contracts",
}
_WEBHOOK_SECTION = "section Other, the webhook permissions"


@dataclass
class Report:
    """What the check found; printed as text or JSON. Holds no secrets."""

    connection: str
    ok: bool = False
    zone: dict[str, Any] = field(default_factory=dict)
    api_user: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int | None] = field(default_factory=dict)
    """Rows the API user sees, per entity the connection syncs (None: it may not read them)."""
    usage: dict[str, Any] = field(default_factory=dict)
    webhooks: dict[str, Any] = field(default_factory=dict)
    """Per entity the connection would get a webhook for: its root, whether the user may read
    and create it, and why."""
    missing_permissions: list[dict[str, str]] = field(default_factory=list)
    """Every permission the sync needs and the API user lacks: entity, permission, where to
    grant it, and Autotask's answer."""
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
    levers: Levers = ENVIRONMENT,
) -> Report:
    """Run every step against Autotask, ``scope``'s ids last; stop at the first that fails,
    except that missing permissions are all collected before the check fails on them.

    ``scope`` says which entities are read and which webhooks are checked (None: the default
    scope). ``share`` is the deployment's ``AUTOTASK_SYNC_API_SHARE``; ``database_url`` its
    database, for the shared budget and pause (unreachable: the report says so and the check
    goes on). ``levers`` says how the connection's settings are changed, for the fix lines.
    """
    async with _budget_records(database_url) as records:
        report = await _check(
            connection,
            scope=scope or SyncScope(),
            time_limit=time_limit,
            share=share,
            levers=levers,
        )
        await _shared_state(report, connection.name, records)
    return report


async def _check(
    connection: Connection,
    *,
    scope: SyncScope,
    time_limit: timedelta,
    share: float,
    levers: Levers,
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
    endpoint = (
        Endpoint(connection.zone_url, "zone")
        if connection.zone_url
        else Endpoint(connection.zone_lookup_url, "zone lookup")
    )
    async with AutotaskClient(connection, config=config) as client:
        try:
            root = await client.rest_root()
            endpoint = Endpoint(root, "zone", configured=not client.zone.discovered)
            info = client.zone.info
            report.zone = {
                "host": URL(root).host,
                "url": root,
                "name": info.zone_name if info else None,
                "discovered": client.zone.discovered,
            }
            step = "authentication"
            report.api_user = await _api_user(client, connection.username)
            step = "counting the synced entities"
            await _count_synced(client, scope, report)
            step = "reading API usage"
            usage = await client.threshold_information()
            report.usage |= {
                "requests": usage.current_timeframe_request_count,
                "limit": usage.external_request_threshold,
                "window_minutes": usage.request_threshold_timeframe,
                "used_ratio": round(usage.used_ratio, 4),
                "project_limit": client.budget.allowance,
            }
            step = "webhook permissions"
            await _check_webhooks(client, scope, report)
            if report.missing_permissions:
                report.error = _missing_permissions_error(report.missing_permissions, levers)
                return report
            step = "sync scope"
            problems = await check_scope(client, scope)
            report.scope = {"valid": not problems, "problems": problems}
            if problems:
                report.error = {
                    "step": step,
                    "type": "ConfigError",
                    "cause": "; ".join(problems),
                    "fix": f"correct the ids in the connection's scope ({levers.scope}); the "
                    "valid choices are listed above",
                }
                return report
        except SyncError as exc:
            report.error = explain(step, exc, levers, endpoint=endpoint)
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
    made = int(report.usage.get("calls_by_this_check", 0) or 0)
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


async def _count_synced(client: AutotaskClient, scope: SyncScope, report: Report) -> None:
    """One ``count`` per entity the connection syncs; a refusal is noted and the rest go on."""
    for spec in scope.synced():
        entity = spec.rest_name
        try:
            report.counts[entity] = await client.count(entity, priority=_NOW)
        except PermissionDeniedError as exc:
            report.counts[entity] = None
            report.missing_permissions.append(
                _missing(entity, READ_PERMISSION, _SECTIONS.get(entity), exc)
            )


def _webhook_specs(scope: SyncScope) -> list[EntitySpec]:
    """The entities a connection with ``scope`` gets webhooks for, as the provisioner decides
    with its default settings: the scope's ``webhooks.entities`` when set, else the synced
    entities the registry gives a webhook by default."""
    if scope.webhooks.entities is not None:
        return [by_rest_name(name) for name in scope.webhooks.entities]
    return [spec for spec in scope.synced() if spec.has_webhooks and spec.webhook_by_default]


async def _check_webhooks(client: AutotaskClient, scope: SyncScope, report: Report) -> None:
    """Whether the API user may read and create each webhook the connection would get."""
    entities: dict[str, Any] = {}
    for spec in _webhook_specs(scope):
        root = spec.webhook_root
        assert root is not None  # _webhook_specs gives entities with webhooks only
        can_read = await _can_read_webhooks(client, root, report)
        can_create, reason = await _can_create_webhooks(client, root, report)
        entities[spec.rest_name] = {
            "root": root,
            "can_read": can_read,
            "can_create": can_create,
            "reason": reason,
        }
    report.webhooks = {
        "entities": entities,
        "can_create": all(e["can_read"] and e["can_create"] for e in entities.values()),
    }


async def _can_read_webhooks(client: AutotaskClient, root: str, report: Report) -> bool:
    """The provisioner lists a root's webhooks to compare them with what it wants."""
    try:
        await client.count(root, priority=_NOW)
    except PermissionDeniedError as exc:
        report.missing_permissions.append(_missing(root, READ_PERMISSION, _WEBHOOK_SECTION, exc))
        return False
    return True


async def _can_create_webhooks(
    client: AutotaskClient, root: str, report: Report
) -> tuple[bool, str]:
    """Whether the API user may create webhooks on ``root``, without leaving anything behind.

    entityInformation would answer for the entity's create permission, but not (in every
    tenant) for the separate "Can create WebHooks" grant, so a create is probed with an empty body:
    Autotask refuses it either for permission (no) or for the missing webhook URL (yes).
    """
    try:
        created = await client.create(root, {}, priority=_NOW)
    except PermissionDeniedError as exc:
        report.missing_permissions.append(_missing(root, WEBHOOK_PERMISSION, _WEBHOOK_SECTION, exc))
        return False, str(exc)
    except InvalidQueryError:
        return True, "allowed (a probe was refused only for its empty body)"
    except AutotaskServerError as exc:
        # Permission is checked first in every answer seen; an unclear refusal of an empty
        # body is not a denial.
        return True, f"probably allowed (the probe got an unclear answer: {exc})"
    # Never expected (an empty webhook is invalid), but if it happened, undo it.
    await client.delete(root, created, priority=_NOW)
    return True, "allowed"


def _missing(
    entity: str, permission: str, section: str | None, exc: PermissionDeniedError
) -> dict[str, str]:
    where = "Admin > Account Settings & Users > Security Levels > the API user's level"
    return {
        "entity": entity,
        "permission": permission,
        "grant": f"{where}, {section}" if section else where,
        "answer": str(exc),
    }


def _missing_permissions_error(missing: list[dict[str, str]], levers: Levers) -> dict[str, str]:
    listed = "; ".join(f"{m['permission']} on {m['entity']}" for m in missing)
    return {
        "step": "permissions",
        "type": "PermissionDeniedError",
        "cause": f"{_lacks(missing)}: {listed}",
        "fix": "grant each permission above on the API user's security level (or use an API "
        "user whose level has them), or stop syncing the entity: take it out of the scope's "
        f'"entities", a webhook root out of "webhooks.entities" ({levers.scope}); then run the '
        "test again",
    }


def _lacks(missing: list[dict[str, str]]) -> str:
    many = f"{len(missing)} permissions" if len(missing) > 1 else "a permission"
    return f"the API user's security level lacks {many} the sync needs"


def explain(
    step: str, exc: SyncError, levers: Levers = ENVIRONMENT, *, endpoint: Endpoint | None = None
) -> dict[str, str]:
    """The failing step, the error and the fix, for a report. A failure to get any answer
    from ``endpoint`` (what ``step`` talked to) is reported as reaching its host, whatever the
    step: only an answer (a 401, a 403) says something about the credentials."""
    if unreachable(exc) and endpoint is not None:
        step = f"reaching the {endpoint.role} host {endpoint.host}"
        fix = _reach_fix(endpoint, levers)
    elif unreachable(exc):
        fix = _NETWORK_FIX
    elif isinstance(exc, AuthenticationError):
        fix = (
            f"{levers.credentials}: the API-only user's username, its secret and its API "
            "tracking identifier (Admin > Resources > the API user); if the user shows "
            "'Locked', unlock it"
        )
    elif isinstance(exc, ZoneLookupError) and exc.retriable:
        fix = (
            "run it again later (Autotask's zone lookup is busy or failing), or give the "
            f"tenant's REST URL to skip discovery ({levers.zone_url})"
        )
    elif isinstance(exc, ZoneLookupError):
        fix = (
            f"correct the username ({levers.username}) or the zone lookup URL "
            f"({levers.zone_lookup_url}), or give the tenant's REST URL to skip discovery "
            f"({levers.zone_url})"
        )
    else:
        fix = next((text for cls, text in FIXES if isinstance(exc, cls)), "see the cause above")
    return {"step": step, "type": type(exc).__name__, "cause": str(exc), "fix": fix}


def unreachable(exc: BaseException | None) -> bool:
    """True when no answer came at all: the host name did not resolve, the connection was
    refused, TLS failed or the call timed out (retries running out of time included). Any
    answer, a 401 or a 500 alike, is something else."""
    while isinstance(exc, DeadlineExceededError):
        exc = exc.__cause__
    return (
        isinstance(exc, AutotaskConnectionError | ZoneLookupError)
        and exc.status is None
        and exc.retriable
    )


def _reach_fix(endpoint: Endpoint, levers: Levers) -> str:
    reach = f"check that this machine reaches {endpoint.host} {_NETWORK}"
    if endpoint.role == "zone lookup":
        return (
            f"{reach} and that {endpoint.url} is Autotask's zone lookup "
            f"({levers.zone_lookup_url}), or give the tenant's REST URL to skip discovery "
            f"({levers.zone_url})"
        )
    if endpoint.configured:
        return f"{reach} and that {endpoint.url} is the tenant's REST URL ({levers.zone_url})"
    return f"{reach}: Autotask's zone lookup named {endpoint.url} for this API user"


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
    if report.counts:
        lines.append(f"  rows:        {_counts_text(report.counts)}")
    usage = report.usage
    if "requests" in usage:
        lines.append(
            f"  API usage:   {usage['requests']} / {usage['limit']} requests this hour "
            f"({usage['used_ratio']:.1%})"
        )
        lines.append(f"  API share:   {_share_text(usage)}")
    if "calls_by_this_check" in usage:
        counted = " (counted in its use)" if usage.get("project_requests") is not None else ""
        lines.append(f"  API calls:   {usage['calls_by_this_check']} made by this check{counted}")
    if report.pause:
        lines.append(f"  paused:      {_pause_text(report.pause)}")
    if report.webhooks:
        lines.append(f"  webhooks:    {_webhooks_text(report.webhooks['entities'])}")
    if report.scope:
        lines.append(f"  sync scope:  {'valid' if report.scope['valid'] else 'INVALID'}")
    if report.error:
        lines.append(f"FAILED at {report.error['step']}")
        missing = report.missing_permissions
        if missing:
            lines.append(f"  cause: {_lacks(missing)}:")
            lines += [
                f"    {m['entity']}: {m['permission']}; grant it in {m['grant']}" for m in missing
            ]
        else:
            lines.append(f"  cause: {report.error['cause']}")
        lines.append(f"  fix:   {report.error['fix']}")
    else:
        lines.append("OK: the connection works")
    return "\n".join(lines)


def _counts_text(counts: dict[str, int | None]) -> str:
    return ", ".join(
        f"{entity} {'NOT READABLE' if number is None else f'{number:,}'}"
        for entity, number in counts.items()
    )


def _webhooks_text(entities: dict[str, Any]) -> str:
    if not entities:
        return "none for this connection (its scope's webhooks.entities is empty)"
    allowed = [e["root"] for e in entities.values() if e["can_read"] and e["can_create"]]
    refused = [e["root"] for e in entities.values() if e["root"] not in allowed]
    if not refused:
        return f"can be created ({', '.join(allowed)})"
    text = f"CANNOT be created ({', '.join(refused)})"
    return text + (f"; can be created ({', '.join(allowed)})" if allowed else "")


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
async def check_scope(client: AutotaskClient, scope: SyncScope) -> list[str]:
    """Problems with ``scope`` against the tenant: ids that are not in the picklists (named with
    the valid choices) and company ids that do not exist. Empty when the scope is valid."""
    problems: list[str] = []
    picklists: dict[PicklistField, Picklist | None] = {}
    for attribute, of in SCOPE_PICKLISTS.items():
        wanted = scope_values(scope, attribute)
        if not wanted:
            continue
        if of not in picklists:
            try:
                picklists[of] = await read_picklist(client, of)
            except ConfigError as exc:
                picklists[of] = None
                problems.append(f"{attribute}: {exc}; remove {attribute}")
        picklist = picklists[of]
        if picklist is None:
            continue
        unknown = [value for value in wanted if value not in picklist.choices]
        if unknown:
            problems.append(
                f"{attribute}: {', '.join(map(str, unknown))} "
                f"{'is not one of the' if len(unknown) == 1 else 'are not'} {of.noun}; "
                f"{picklist.listed()}"
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
