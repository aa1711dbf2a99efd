"""``autotask-sync connections``: the Autotask tenants this deployment serves.

    connections add NAME --username U [--zone-url URL] [--scope JSON | --scope-file F] [--force]
    connections list | show NAME | test NAME
    connections edit NAME [--username U] [--new-secret] [--new-integration-code]
                          [--scope JSON | --scope-file F]
    connections enable NAME | disable NAME | remove NAME [--teardown]
    connections rekey | generate-key

Secrets (the API user's secret and the integration code) are read from a prompt, from standard
input (``--stdin``: the secret on the first line, the integration code on the second) or from
environment variables (``--secret-env VAR``, ``--integration-code-env VAR``), never from argv,
which shows up in ``ps`` and shell history. ``list`` and ``show`` say whether a secret is set and
never print it. ``add`` (and ``edit`` when credentials or scope change) runs the connection test
first and stores nothing that fails it, unless ``--force``. A passing test (``test``, or the one
``add`` and ``edit`` run) lifts a pause of the connection's calls after rejected credentials,
for every process of the deployment.

Connection names are the slugs used in Kafka keys, table rows and metric labels; they cannot be
renamed (add a new connection and remove the old one).

The sync scope (``--scope`` / ``--scope-file``) may name companies in ``companies.company_ids``
and picklist labels (queues, ticket categories and statuses, company types) where ids are
stored: the names are looked up in the tenant (exactly, ignoring case; a name that matches
nothing or several is refused, listing the candidates), the stored scope holds the ids, and
``add`` and ``edit`` print it with each id's name.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import getpass
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

from pydantic import SecretStr

from cli.checks import Report, check, explain, render_json, render_text
from cli.store import Store, open_store
from cli.tenant_lookup import CLIENT_CONFIG, ResolvedScope, names_in, resolve_scope, without_names
from shared.apibudget import client_config_for
from shared.apibudget import store as shared_budget
from shared.autotask import AutotaskClient, Connection
from shared.connections import store as rows
from shared.db import database_dsn, session
from shared.errors import AutotaskError, ConfigError, SyncError
from shared.scope.rules import SyncScope
from shared.secrets import KEYS_VARIABLE, SecretBox
from shared.settings import AutotaskSettings, load_settings

_HOW_TO_GIVE_SECRETS = (
    "use --secret-env VAR / --integration-code-env VAR, pipe them with --stdin (secret on the "
    "first line, integration code on the second), or run in a terminal to be prompted"
)


class _RefuseSecretArgument(argparse.Action):
    """A secret given as an argument is refused with the reason, not just "unrecognized"."""

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> NoReturn:
        parser.error(
            f"{self.option_strings[0]}: secrets are never accepted as arguments (they show up in "
            f"ps and shell history); {_HOW_TO_GIVE_SECRETS}"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="store a new connection (tested first)")
    add.add_argument("name", help="lower-case slug, e.g. acme (cannot be renamed later)")
    add.add_argument("--username", required=True, help="the API-only user's username")
    _connection_options(add)
    _secret_options(add)
    add.add_argument("--disabled", action="store_true", help="store it disabled")
    add.add_argument(
        "--force", action="store_true", help="store it even if the connection test fails"
    )

    actions.add_parser("list", help="the stored connections (no secrets)").add_argument(
        "--json", action="store_true"
    )
    show = actions.add_parser("show", help="one connection in detail (no secrets)")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")

    edit = actions.add_parser("edit", help="change a stored connection")
    edit.add_argument("name")
    edit.add_argument("--username", help="a new username")
    _connection_options(edit)
    _secret_options(edit)
    edit.add_argument("--new-secret", action="store_true", help="replace the API secret")
    edit.add_argument(
        "--new-integration-code", action="store_true", help="replace the integration code"
    )
    edit.add_argument("--force", action="store_true", help="save even if the test fails")

    test = actions.add_parser("test", help="run the connection test, scope included")
    test.add_argument("name")
    test.add_argument("--json", action="store_true")
    test.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")

    for action, text in (
        ("enable", "serve it again"),
        ("disable", "stop serving it (running processes drop it within seconds)"),
    ):
        actions.add_parser(action, help=text).add_argument("name")
    remove = actions.add_parser(
        "remove", help="delete it (refused while it has live webhook registrations)"
    )
    remove.add_argument("name")
    remove.add_argument(
        "--teardown",
        action="store_true",
        help="first delete its webhooks in Autotask and retire their registrations "
        "(`autotask-sync provision teardown`)",
    )

    actions.add_parser(
        "rekey", help=f"re-encrypt every stored secret under the first key of {KEYS_VARIABLE}"
    )
    actions.add_parser("generate-key", help=f"print a new key for {KEYS_VARIABLE}")


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--zone-url", help="the tenant's REST root; skips zone discovery")
    parser.add_argument(
        "--zone-lookup-url", help="where zone discovery asks (default: the deployment's)"
    )
    parser.add_argument("--impersonation-resource-id", type=int, metavar="ID")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--scope",
        metavar="JSON",
        help="sync scope as JSON; company names and picklist labels may stand for ids "
        "(docs/configuration.md)",
    )
    scope.add_argument("--scope-file", metavar="FILE", type=Path, help="sync scope from a file")


def _secret_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--secret-env", metavar="VAR", help="read the API secret from VAR")
    parser.add_argument(
        "--integration-code-env", metavar="VAR", help="read the integration code from VAR"
    )
    parser.add_argument("--stdin", action="store_true", help="read the secrets from standard input")
    for refused in ("--secret", "--integration-code", "--password"):
        parser.add_argument(
            refused, nargs="?", action=_RefuseSecretArgument, help=argparse.SUPPRESS
        )


def run(args: argparse.Namespace) -> int:
    if args.action == "generate-key":
        print(SecretBox.generate_key())
        return 0
    settings = load_settings(AutotaskSettings)
    return asyncio.run(_ACTIONS[args.action](args, settings))


# --- actions ----------------------------------------------------------------------------------
async def _add(args: argparse.Namespace, settings: AutotaskSettings) -> int:
    name = rows.check_name(args.name)
    document = _scope_document(args)
    async with open_store(settings) as store:
        box = store.box()  # before anything else: no key, nothing to store with
        async with session(store.pool, "look for the connection") as db:
            if await rows.fetch_one(db, name) is not None:
                raise ConfigError(
                    f"connection {name!r} already exists; change it with `autotask-sync "
                    "connections edit`, or choose another name"
                )
        secrets = _SecretReader(args)
        new = rows.NewConnection(
            name=name,
            username=_username(args.username),
            secret=secrets.read("the API user's secret", args.secret_env),
            integration_code=secrets.read("the integration code", args.integration_code_env),
            zone_url=args.zone_url,
            zone_lookup_url=args.zone_lookup_url,
            impersonation_resource_id=args.impersonation_resource_id,
            enabled=not args.disabled,
        )
        connection = _connection(new, settings)
        resolved = None
        if document is not None:
            resolved = await _resolved_scope(connection, document, store, verb="stored")
            if resolved is None:
                return 1
            new = dataclasses.replace(new, scope=resolved.scope)
        if not await _passes(connection, new.scope, settings, force=args.force, verb="stored"):
            return 1
        async with session(store.pool, "store the connection") as db:
            await rows.insert(db, new, box)
    state = "disabled" if args.disabled else "enabled; running processes serve it within seconds"
    print(f"added connection {name!r} ({state})")
    _print_scope(resolved)
    return 0


async def _list(args: argparse.Namespace, settings: AutotaskSettings) -> int:
    async with open_store(settings) as store, session(store.pool, "list the connections") as db:
        stored = await rows.fetch_all(db)
    listed = [_summary(row) for row in stored]
    if settings.has_environment_connection:
        listed.insert(0, _environment_summary(settings))
    if args.json:
        print(json.dumps(listed, indent=2, default=str))
        return 0
    if not listed:
        print("no connections: add one with `autotask-sync connections add NAME --username U`")
        return 0
    header = ("NAME", "SOURCE", "ENABLED", "USERNAME", "ZONE", "SECRETS", "SCOPE")
    table = [header] + [
        (
            c["name"],
            c["source"],
            "yes" if c["enabled"] else "no",
            c["username"],
            c["zone_url"] or "discovered",
            "set" if c["secret_set"] and c["integration_code_set"] else "MISSING",
            c["scope_summary"],
        )
        for c in listed
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


async def _show(args: argparse.Namespace, settings: AutotaskSettings) -> int:
    async with open_store(settings) as store, session(store.pool, "read the connection") as db:
        row = await _require(db, args.name)
        live = await rows.live_registrations(db, row.name)
    details = {**_summary(row), "scope": dict(row.scope), "live_webhook_registrations": live}
    if args.json:
        print(json.dumps(details, indent=2, default=str))
        return 0
    for key, value in details.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else value
        print(f"{key + ':':<28} {shown}")
    return 0


async def _edit(args: argparse.Namespace, settings: AutotaskSettings) -> int:
    async with open_store(settings) as store:
        box = store.box()
        async with session(store.pool, "read the connection") as db:
            row = await _require(db, args.name)
        current = row.open(box, default_zone_lookup_url=settings.autotask_zone_lookup_url)
        secrets = _SecretReader(args)
        secret = (
            secrets.read("the new API secret", args.secret_env)
            if args.new_secret or args.secret_env
            else None
        )
        code = (
            secrets.read("the new integration code", args.integration_code_env)
            if args.new_integration_code or args.integration_code_env
            else None
        )
        document = _scope_document(args)
        changes: dict[str, Any] = {
            "username": _username(args.username) if args.username else None,
            "secret": secret,
            "integration_code": code,
            "zone_url": args.zone_url,
            "zone_lookup_url": args.zone_lookup_url,
            "impersonation_resource_id": args.impersonation_resource_id,
            "scope": document,
        }
        if all(value is None for value in changes.values()):
            raise ConfigError("nothing to change: name at least one option (see --help)")
        overrides = {k: v for k, v in changes.items() if v is not None and k != "scope"}
        try:
            edited = Connection.model_validate({**dict(current), **overrides})
        except ValueError as exc:
            raise ConfigError(f"invalid connection settings: {exc}") from None
        resolved = None
        if document is not None:
            resolved = await _resolved_scope(edited, document, store, verb="saved")
            if resolved is None:
                return 1
            changes["scope"] = resolved.scope
        scope = resolved.scope if resolved else row.sync_scope()
        if not await _passes(edited, scope, settings, force=args.force, verb="saved"):
            return 1
        async with session(store.pool, "save the connection") as db:
            await rows.update(db, row.name, box=box, **changes)
    print(f"updated connection {row.name!r}; running processes pick it up within seconds")
    _print_scope(resolved)
    if resolved is not None and resolved.scope != row.sync_scope():
        print(
            "the sweeps bring the mirror to the new scope by themselves; "
            "`autotask-sync status` shows it until they are done"
        )
    return 0


async def _test(args: argparse.Namespace, settings: AutotaskSettings) -> int:
    if settings.has_environment_connection and args.name == settings.connection:
        connection = Connection.from_settings(settings)
        scope = SyncScope.parse(settings.autotask_scope or None)
    else:
        async with open_store(settings) as store:
            async with session(store.pool, "read the connection") as db:
                row = await _require(db, args.name)
            connection = row.open(
                store.box(), default_zone_lookup_url=settings.autotask_zone_lookup_url
            )
            scope = row.sync_scope()
    report = await check(
        connection,
        scope=scope,
        time_limit=timedelta(seconds=args.timeout),
        share=settings.api_share,
        database_url=database_dsn(settings),
    )
    print(render_json(report) if args.json else render_text(report))
    return 0 if report.ok else 1


async def _set_enabled(name: str, settings: AutotaskSettings, *, enabled: bool) -> int:
    async with open_store(settings) as store, session(store.pool, "save the connection") as db:
        row = await _require(db, name)
        await rows.update(db, row.name, enabled=enabled)
    if enabled:
        print(f"enabled connection {row.name!r}; running processes serve it within seconds")
    else:
        print(f"disabled connection {row.name!r}; running processes stop serving it within seconds")
    return 0


async def _enable(args: argparse.Namespace, settings: AutotaskSettings) -> int:
    return await _set_enabled(args.name, settings, enabled=True)


async def _disable(args: argparse.Namespace, settings: AutotaskSettings) -> int:
    return await _set_enabled(args.name, settings, enabled=False)


async def _remove(args: argparse.Namespace, settings: AutotaskSettings) -> int:
    if args.teardown:
        from cli.commands.provision import teardown_connection  # loads the provisioner

        torn = await teardown_connection(args.name)
        if not torn.ok:
            print(
                f"not removed: the teardown of {args.name!r} failed: {torn.error}",
                file=sys.stderr,
            )
            return 1
        print(f"removed the webhooks of {args.name!r} and retired their registrations")
    async with open_store(settings) as store, session(store.pool, "remove the connection") as db:
        row = await _require(db, args.name)
        async with db.transaction():
            live = await rows.live_registrations(db, row.name)
            if live:
                raise ConfigError(
                    f"connection {row.name!r} still has {live} live webhook registration(s): "
                    "Autotask would keep calling for it; remove its webhooks first with "
                    f"`autotask-sync provision teardown --connection {row.name}`"
                )
            await rows.delete(db, row.name)
    print(f"removed connection {row.name!r}")
    return 0


async def _rekey(_args: argparse.Namespace, settings: AutotaskSettings) -> int:
    async with open_store(settings) as store:
        box = store.box()
        async with session(store.pool, "re-encrypt the stored secrets") as db:
            counts = await rows.rekey(db, box)
    extra = (
        f"; the other {box.key_count - 1} key(s) in {KEYS_VARIABLE} can now be removed"
        if box.key_count > 1
        else ""
    )
    print(
        f"re-encrypted the secrets of {counts['connections']} connection(s) and "
        f"{counts['webhook_registrations']} webhook registration(s) under the first key{extra}"
    )
    return 0


_ACTIONS = {
    "add": _add,
    "list": _list,
    "show": _show,
    "edit": _edit,
    "test": _test,
    "enable": _enable,
    "disable": _disable,
    "remove": _remove,
    "rekey": _rekey,
}


# --- helpers ----------------------------------------------------------------------------------
class _SecretReader:
    """Reads secrets from environment variables, standard input or a prompt (never argv)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._stdin_lines: list[str] | None = None
        self._use_stdin = bool(args.stdin)

    def read(self, what: str, variable: str | None) -> SecretStr:
        if variable:
            value = os.environ.get(variable, "")
            if not value:
                raise ConfigError(f"{what}: environment variable {variable} is not set or empty")
            return SecretStr(value)
        if self._use_stdin:
            if self._stdin_lines is None:
                self._stdin_lines = [line.strip() for line in sys.stdin.read().splitlines()]
                self._stdin_lines = [line for line in self._stdin_lines if line]
            if not self._stdin_lines:
                raise ConfigError(
                    f"{what}: standard input has no more lines; {_HOW_TO_GIVE_SECRETS}"
                )
            return SecretStr(self._stdin_lines.pop(0))
        if sys.stdin.isatty():
            value = getpass.getpass(f"{what[0].upper()}{what[1:]}: ")
            if value:
                return SecretStr(value)
        raise ConfigError(f"{what} was not given; {_HOW_TO_GIVE_SECRETS}")


def _username(value: str) -> str:
    username = value.strip()
    if not username:
        raise ConfigError("--username is empty: give the API-only user's username")
    return username


def _scope_document(args: argparse.Namespace) -> dict[str, Any] | None:
    """The scope given with --scope or --scope-file, its shape checked (names are looked up in
    the tenant later); None when neither is given."""
    if args.scope is not None:
        text = args.scope
    elif args.scope_file is not None:
        try:
            text = args.scope_file.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read --scope-file {args.scope_file}: {exc}") from None
    else:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        SyncScope.parse(text)  # not a JSON object: the scope's own error says what is wrong
        raise ConfigError("invalid sync scope: give a JSON object")
    SyncScope.parse(without_names(document))
    return document


async def _resolved_scope(
    connection: Connection, document: dict[str, Any], store: Store, *, verb: str
) -> ResolvedScope | None:
    """The scope ``document`` describes, its names looked up in the tenant (ConfigError for a
    name that matches nothing or several). None, with the failure printed, when Autotask cannot
    be asked and names need it; ids alone then go to the connection test, which reports it.

    The calls are made directly (like the connection test's, not paused after rejected
    credentials: the credentials may be new) and counted into the shared budget afterwards."""
    async with AutotaskClient(
        connection, config=client_config_for(store.settings, CLIENT_CONFIG)
    ) as client:
        try:
            return await resolve_scope(client, document)
        except AutotaskError as exc:
            if not names_in(document):
                return ResolvedScope(scope=SyncScope.parse(document))
            failure = explain("looking up the names in the sync scope", exc)
            print(
                f"FAILED at {failure['step']}\n  cause: {failure['cause']}\n"
                f"  fix:   {failure['fix']}\n"
                f"not {verb}: the names could not be looked up (ids need no lookup)",
                file=sys.stderr,
            )
            return None
        finally:
            await _count_calls(store, connection.name, client.budget.view.project_calls)


async def _count_calls(store: Store, name: str, calls: int) -> None:
    if calls:
        # Counting is best effort: the budget tables may not exist yet (migrate).
        with contextlib.suppress(SyncError):
            async with session(store.pool, "count the API calls") as db:
                await shared_budget.add_calls(db, connection=name, calls=calls)


def _print_scope(resolved: ResolvedScope | None) -> None:
    if resolved is not None:
        print("sync scope:")
        for line in resolved.lines():
            print(f"  {line}")


def _connection(new: rows.NewConnection, settings: AutotaskSettings) -> Connection:
    try:
        return Connection(
            name=new.name,
            username=new.username,
            secret=new.secret,
            integration_code=new.integration_code,
            zone_url=new.zone_url,
            zone_lookup_url=new.zone_lookup_url or settings.autotask_zone_lookup_url,
            impersonation_resource_id=new.impersonation_resource_id,
        )
    except ValueError as exc:
        raise ConfigError(f"invalid connection settings: {exc}") from None


async def _passes(
    connection: Connection, scope: SyncScope, settings: AutotaskSettings, *, force: bool, verb: str
) -> bool:
    """Run the connection test; print the report when it fails. True when it may be stored."""
    report: Report = await check(
        connection,
        scope=scope,
        share=settings.api_share,
        database_url=database_dsn(settings),
    )
    if report.ok:
        return True
    print(render_text(report), file=sys.stderr)
    if force:
        print(f"--force: {verb} although the connection test failed", file=sys.stderr)
        return True
    print(f"not {verb}: the connection test failed (--force {verb} it anyway)", file=sys.stderr)
    return False


async def _require(db: Any, name: str) -> rows.StoredConnection:
    row = await rows.fetch_one(db, name)
    if row is None:
        raise ConfigError(
            f"no stored connection {name!r}; `autotask-sync connections list` shows them"
        )
    return row


def _summary(row: rows.StoredConnection) -> dict[str, Any]:
    return {
        "name": row.name,
        "source": "database",
        "enabled": row.enabled,
        "username": row.username,
        "zone_url": row.zone_url,
        "zone_lookup_url": row.zone_lookup_url,
        "impersonation_resource_id": row.impersonation_resource_id,
        "secret_set": bool(row.secret_encrypted),
        "integration_code_set": bool(row.integration_code_encrypted),
        "scope_summary": _describe(row.sync_scope()),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _environment_summary(settings: AutotaskSettings) -> dict[str, Any]:
    return {
        "name": settings.connection,
        "source": "environment",
        "enabled": True,
        "username": settings.autotask_username,
        "zone_url": settings.autotask_zone_url,
        "zone_lookup_url": settings.autotask_zone_lookup_url,
        "impersonation_resource_id": settings.autotask_impersonation_resource_id,
        "secret_set": bool(settings.autotask_secret.get_secret_value()),
        "integration_code_set": bool(settings.autotask_integration_code.get_secret_value()),
        "scope_summary": _describe(SyncScope.parse(settings.autotask_scope or None)),
        "created_at": None,
        "updated_at": None,
    }


def _describe(scope: SyncScope) -> str:
    parts = []
    if scope.entities is not None:
        parts.append("entities " + ",".join(scope.entities))
    for group in SyncScope.filter_sections():
        filters = {k: v for k, v in getattr(scope, group).model_dump().items() if v}
        if filters:
            parts.append(f"{group} " + " ".join(f"{k}={len(v)}" for k, v in filters.items()))
    return "; ".join(parts) or "everything"


__all__ = ["add_arguments", "run"]
