"""``autotask-sync connections``: the Autotask tenants this deployment serves.

    connections add NAME --username U [--zone-url URL] [--scope JSON | --scope-file F] [--force]
    connections list | show NAME | test NAME
    connections edit NAME [--username U] [--new-secret] [--new-integration-code]
                          [--scope JSON | --scope-file F]
    connections enable NAME | disable NAME | remove NAME [--teardown] [--purge]
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

``remove`` deletes the connection's row and says what data it leaves behind; ``remove --purge``
(offboarding, a data-deletion request) deletes that data too, tombstoning every mirrored record
on the change topics first (:mod:`shared.connections.purge`), and finishes the job when run
again after an interruption or after a plain ``remove``. Both refuse while the connection has
live webhook registrations, unless ``--teardown``.

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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from pydantic import SecretStr

from cli.checks import (
    ADDING,
    ENVIRONMENT,
    Levers,
    Report,
    check,
    explain,
    render_json,
    render_text,
    stored,
)
from cli.store import Store, open_producer, open_store
from cli.tenant_lookup import CLIENT_CONFIG, ResolvedScope, names_in, resolve_scope, without_names
from cli.text import iso, or_dash, yes_no
from shared.apibudget import client_config_for
from shared.apibudget import store as shared_budget
from shared.autotask import AutotaskClient, Connection
from shared.connections import purge
from shared.connections import store as rows
from shared.db import DbSession, database_dsn, session
from shared.entities import REGISTRY
from shared.errors import AutotaskError, ConfigError, SyncError
from shared.messages.topics import Topics
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
    remove.add_argument(
        "--purge",
        action="store_true",
        help="also delete all its data: its mirror rows (each tombstoned on its change topic "
        "first) and every state row; finishes an interrupted purge, or the data a plain "
        "remove left",
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
            resolved = await _resolved_scope(connection, document, store, _ADDING)
            if resolved is None:
                return 1
            new = dataclasses.replace(new, scope=resolved.scope)
        if not await _passes(connection, new.scope, settings, force=args.force, how=_ADDING):
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
        print(f"{key + ':':<28} {_shown(value)}")
    return 0


def _shown(value: Any) -> str:
    """A value of ``show`` as people read it: yes/no, ISO times, ``-`` for none."""
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, datetime):
        return iso(value)
    return json.dumps(value) if isinstance(value, dict | list) else or_dash(value)


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
            resolved = await _resolved_scope(edited, document, store, _editing(row.name))
            if resolved is None:
                return 1
            changes["scope"] = resolved.scope
        scope = resolved.scope if resolved else row.sync_scope()
        if not await _passes(edited, scope, settings, force=args.force, how=_editing(row.name)):
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
    levers = ENVIRONMENT
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
            levers = stored(row.name)
    report = await check(
        connection,
        scope=scope,
        time_limit=timedelta(seconds=args.timeout),
        share=settings.api_share,
        database_url=database_dsn(settings),
        levers=levers,
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
    if args.purge and settings.has_environment_connection and args.name == settings.connection:
        raise ConfigError(
            f"connection {args.name!r} is configured by AUTOTASK_SYNC_AUTOTASK_* here: the "
            "processes configured with it would sync it again; take it out of their "
            "environment first, then purge its data from a shell without it"
        )
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
    if args.purge:
        return await _purge(args.name, settings)
    async with open_store(settings) as store, session(store.pool, "remove the connection") as db:
        row = await rows.fetch_one(db, args.name)
        if row is None:
            raise ConfigError(_not_stored(args.name, await purge.leftovers(db, args.name)))
        async with db.transaction():
            await _refuse_while_live(db, row.name)
            await rows.delete(db, row.name)
        left = await purge.leftovers(db, row.name)
    print(f"removed connection {row.name!r}")
    if left:
        print(
            f"its data stays: {_leftovers_text(left)}; delete it (tombstoning its records on "
            f"the change topics) with `autotask-sync connections remove {row.name} --purge`"
        )
    return 0


async def _purge(name: str, settings: AutotaskSettings) -> int:
    """``remove NAME --purge``: the connection's data, then the connection
    (:mod:`shared.connections.purge`); what is left of it when it was removed already."""
    async with open_store(settings) as store:
        async with session(store.pool, "look at the connection") as db:
            row = await rows.fetch_one(db, name)
            await _refuse_while_live(db, name)
            left = await purge.leftovers(db, name)
        if row is None and not left:
            print(f"nothing left of connection {name!r} to purge: 0 rows deleted, 0 tombstones")
            return 0
        done: list[purge.TableRows] = []
        topics = Topics(prefix=settings.topic_prefix)
        changes = [topics.changes(spec) for spec in REGISTRY]
        async with open_producer(settings, needs=changes) as producer:
            if row is None:
                print(f"connection {name!r} was removed already; purging the data it left")
            else:
                print(
                    f"purging connection {name!r}: disabled now (running processes stop syncing "
                    "it within seconds), removed once its data is gone"
                )
            print(
                f"to delete: {left.mirror_rows:,} mirror rows in {len(left.mirror)} tables, each "
                f"after its tombstone on the change topic, and {left.state_rows:,} state rows in "
                f"{len(left.state)} tables"
            )
            async for table in purge.purge(
                store.pool, producer, topics, name, value_format=settings.change_value_format
            ):
                done.append(table)
                print(f"  {_purged_text(table)}")
        async with session(store.pool, "look for rows written meanwhile") as db:
            late = await purge.leftovers(db, name)
    mirror = sum(t.rows for t in done if t.topic)
    state = sum(t.rows for t in done if not t.topic)
    tombstones = sum(t.tombstones for t in done)
    print(
        f"purged connection {name!r}: {mirror:,} mirror and {state:,} state rows deleted, "
        f"{tombstones:,} tombstones published"
    )
    if late:
        print(
            f"but a process still syncing it wrote {_leftovers_text(late)} meanwhile: run "
            f"`autotask-sync connections remove {name} --purge` again in a minute",
            file=sys.stderr,
        )
        return 1
    return 0


async def _refuse_while_live(db: DbSession, name: str) -> None:
    live = await rows.live_registrations(db, name)
    if live:
        raise ConfigError(
            f"connection {name!r} still has {live} live webhook registration(s): Autotask would "
            "keep calling for it; remove its webhooks first with `autotask-sync provision "
            f"teardown --connection {name}`, or pass --teardown"
        )


def _not_stored(name: str, left: purge.Leftovers) -> str:
    """Why ``remove NAME`` finds nothing to remove, and what to do with data left behind."""
    if not left:
        return f"no stored connection {name!r}; `autotask-sync connections list` shows them"
    return (
        f"no stored connection {name!r}, but its data is still here: {_leftovers_text(left)}; "
        f"delete it with `autotask-sync connections remove {name} --purge`"
    )


def _leftovers_text(left: purge.Leftovers) -> str:
    """``120 mirror rows (autotask.tickets 100, ...) and 7 state rows (sync_runs 7)``."""
    parts = [
        f"{total:,} {kind} rows ({', '.join(f'{t.table} {t.rows:,}' for t in tables)})"
        for kind, total, tables in (
            ("mirror", left.mirror_rows, left.mirror),
            ("state", left.state_rows, left.state),
        )
        if tables
    ]
    return " and ".join(parts)


def _purged_text(table: purge.TableRows) -> str:
    line = f"{table.table}: {table.rows:,} row(s) deleted"
    if table.topic:
        line += f", {table.tombstones:,} tombstone(s) on {table.topic}"
    return line


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
    connection: Connection, document: dict[str, Any], store: Store, how: _Saving
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
            failure = explain("looking up the names in the sync scope", exc, how.levers)
            print(
                f"FAILED at {failure['step']}\n  cause: {failure['cause']}\n"
                f"  fix:   {failure['fix']}\n"
                f"not {how.done}: the names could not be looked up (ids need no lookup)",
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


@dataclasses.dataclass(frozen=True, slots=True)
class _Saving:
    """What ``add`` or ``edit`` does with a connection once tested, as its messages say it
    ("not stored", "pass --force to store it anyway"), and how its fix lines name the
    connection's settings."""

    done: str
    do: str
    levers: Levers


_ADDING = _Saving(done="stored", do="store", levers=ADDING)


def _editing(name: str) -> _Saving:
    return _Saving(done="saved", do="save", levers=stored(name))


async def _passes(
    connection: Connection,
    scope: SyncScope,
    settings: AutotaskSettings,
    *,
    force: bool,
    how: _Saving,
) -> bool:
    """Run the connection test; print the report when it fails. True when it may be stored."""
    report: Report = await check(
        connection,
        scope=scope,
        share=settings.api_share,
        database_url=database_dsn(settings),
        levers=how.levers,
    )
    if report.ok:
        return True
    print(render_text(report), file=sys.stderr)
    if force:
        print(f"--force: {how.done} although the connection test failed", file=sys.stderr)
        return True
    print(
        f"not {how.done}: the connection test failed; pass --force to {how.do} it anyway",
        file=sys.stderr,
    )
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
        "scope_summary": row.sync_scope().summary(),
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
        "scope_summary": SyncScope.parse(settings.autotask_scope or None).summary(),
        "created_at": None,
        "updated_at": None,
    }


__all__ = ["add_arguments", "run"]
