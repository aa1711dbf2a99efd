"""``autotask-sync test-connection``: can this process talk to Autotask, and how well?

Checks the connection configured by ``AUTOTASK_SYNC_AUTOTASK_*`` (``--connection`` renames it),
or, when no username is configured there, the stored connection ``--connection NAME``; without
either, it names the stored connections and ``autotask-sync connections test NAME``. Prints the
zone host, the API user, the rows of every entity the connection's scope syncs, usage (the
tenant's, and this deployment's share of it), the calls the check made, and whether the webhooks
the connection would get can be read and created. Every permission the API user lacks is listed
with where to grant it; any failure is printed as its cause and the fix, and the exit status is
non-zero (1). When it passes, a pause of the connection's calls after rejected credentials is
lifted for every process. Secrets are read from environment variables only, never from argv (it
shows up in ``ps`` and shell history).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from datetime import timedelta
from typing import Any

from pydantic import SecretStr

from cli.checks import ENVIRONMENT, Levers, Report, check, explain, render_json, render_text, stored
from cli.store import open_store
from shared.autotask import Connection
from shared.connections import store as rows
from shared.db import connect, database_dsn, session
from shared.errors import ConfigError, SyncError
from shared.scope.rules import SyncScope
from shared.settings import AutotaskSettings, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connection",
        metavar="NAME",
        help="the environment connection's name; or, when AUTOTASK_SYNC_AUTOTASK_USERNAME is "
        "not set, the stored connection to test (see `autotask-sync connections`)",
    )
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
    """Build the connection from env + flags (or the store) and check it; configuration errors
    are reported like any other failed step."""
    time_limit = timedelta(seconds=args.timeout)
    levers: Levers = ENVIRONMENT
    try:
        settings = load_settings(AutotaskSettings, **_overrides(args))
        if not settings.has_environment_connection and not args.connection:
            names = await _stored_names(settings)
            if names:
                return _only_stored(settings.connection, names)
        if settings.has_environment_connection or not args.connection:
            connection = Connection.from_settings(settings)
            scope = SyncScope.parse(settings.autotask_scope or None)
        else:
            levers = stored(args.connection)
            connection, scope = await _stored(settings, args.connection)
    except SyncError as exc:
        report = Report(connection=args.connection or "default")
        report.error = explain("configuration", exc, levers)
        return report
    return await check(
        connection,
        scope=scope,
        time_limit=time_limit,
        share=settings.api_share,
        database_url=database_dsn(settings),
        levers=levers,
    )


_LISTED = 10
"""Stored connections named in the failure; ``connections list`` shows the rest."""


async def _stored_names(settings: AutotaskSettings) -> list[str]:
    """The stored connections' names; none when the database is not configured or reachable
    (the check then fails on the missing environment settings, as it would without one)."""
    dsn = database_dsn(settings)
    if not dsn:
        return []
    with contextlib.suppress(SyncError):
        db = await connect(dsn, connect_timeout=timedelta(seconds=2))
        try:
            return [row.name for row in await rows.fetch_all(db)]
        finally:
            await db.close()
    return []


def _only_stored(name: str, stored_names: list[str]) -> Report:
    """The failure of a multi-tenant set-up's ``test-connection`` without ``--connection``:
    there is no environment connection to test, so it names the commands that test the stored
    ones."""
    commands = [f"`autotask-sync connections test {n}`" for n in stored_names[:_LISTED]]
    more = len(stored_names) - _LISTED
    if more > 0:
        commands.append(f"and {more} more (`autotask-sync connections list`)")
    report = Report(connection=name)
    report.error = {
        "step": "configuration",
        "type": "ConfigError",
        "cause": "no connection is configured in the environment (AUTOTASK_SYNC_AUTOTASK_USERNAME "
        f"is not set); this deployment's {len(stored_names)} connection(s) are stored: "
        + ", ".join(stored_names[:_LISTED]),
        "fix": "test a stored connection by its name: " + ", ".join(commands),
    }
    return report


async def _stored(settings: AutotaskSettings, name: str) -> tuple[Connection, SyncScope]:
    async with open_store(settings) as store, session(store.pool, "read the connection") as db:
        row = await rows.fetch_one(db, name)
    if row is None:
        raise ConfigError(
            f"no stored connection {name!r} (list them with `autotask-sync connections list`), "
            "and AUTOTASK_SYNC_AUTOTASK_USERNAME is not set"
        )
    connection = row.open(store.box(), default_zone_lookup_url=settings.autotask_zone_lookup_url)
    return connection, row.sync_scope()


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
