"""``autotask-sync companies``: the tenant's companies, to choose what a connection syncs.

    autotask-sync companies list [--connection C] [--search TEXT] [--type T] [--json]

``list`` reads the companies of the connection's tenant from Autotask: id, name, company type
(its label and value) and whether it is active, sorted by name. ``--search`` keeps the names
that contain TEXT and ``--type`` one company type (a label such as ``Customer``, or its value);
Autotask does the filtering, 500 rows a call, at interactive priority within the connection's
API budget. The ids, or the exact names, go into ``companies.company_ids`` of the connection's
sync scope (``autotask-sync connections edit NAME --scope ...``).

The connection is the environment one (``AUTOTASK_SYNC_AUTOTASK_*``) or a stored one, disabled
ones included (choose a scope before enabling it); without ``--connection``, the environment one
or else the only one stored. A failed Autotask call is printed as its cause and the fix (exit
status 1). Standard output holds only the listing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from typing import Any, NoReturn

from cli.checks import explain
from cli.store import open_store
from cli.tenant_lookup import (
    CLIENT_CONFIG,
    COMPANY_TYPE,
    Company,
    Picklist,
    list_companies,
    read_picklist,
)
from cli.text import yes_no
from shared.apibudget import command_client
from shared.autotask import AutotaskClient, Connection
from shared.connections import store as rows
from shared.connections.catalogue import environment_connection
from shared.db import session
from shared.errors import AutotaskError, ConfigError
from shared.settings import AutotaskSettings, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the tenant's companies, by name")
    listing.add_argument(
        "--connection",
        metavar="C",
        help="the connection (default: the environment one, or else the only one stored)",
    )
    listing.add_argument("--search", metavar="TEXT", help="only names that contain TEXT")
    listing.add_argument(
        "--type", metavar="T", help="only this company type: its label (Customer) or value"
    )
    listing.add_argument("--json", action="store_true", help="print a JSON array (for scripts)")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(AutotaskSettings)
    return asyncio.run(_list(args, settings))


async def _list(args: argparse.Namespace, settings: AutotaskSettings) -> int:
    connection = await pick_connection(settings, args.connection)
    step = "reading the company types"
    async with command_client(settings, connection, CLIENT_CONFIG) as client:
        try:
            types = await _company_types(client, required=bool(args.type))
            wanted = _type_value(types, args.type) if args.type else None
            step = "reading the companies"
            companies = await list_companies(client, search=args.search, company_type=wanted)
        except AutotaskError as exc:
            failure = explain(step, exc)
            print(
                f"FAILED at {failure['step']} of {connection.name!r}\n"
                f"  cause: {failure['cause']}\n  fix:   {failure['fix']}",
                file=sys.stderr,
            )
            return 1
    if args.json:
        print(json.dumps([_document(c, types) for c in companies], indent=2))
        return 0
    if not companies:
        print(f"no companies{_filters_text(args)} in the tenant of {connection.name!r}")
        return 0
    table = [("ID", "NAME", "TYPE", "ACTIVE")] + [
        (str(c.id), c.name, _type_text(c, types), yes_no(c.active)) for c in companies
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print(line.rstrip())
    return 0


async def _company_types(client: AutotaskClient, *, required: bool) -> Picklist:
    """The tenant's company types; none (labels unknown) if it has no such picklist and no
    --type needs one."""
    try:
        return await read_picklist(client, COMPANY_TYPE)
    except ConfigError:
        if required:
            raise
        return Picklist(of=COMPANY_TYPE, choices={})


def _type_value(types: Picklist, given: str) -> int:
    try:
        return types.resolve(given)
    except ConfigError as exc:
        raise ConfigError(f"--type: {exc}") from None


def _document(company: Company, types: Picklist) -> dict[str, Any]:
    return {**asdict(company), "type_label": types.label(company.type)}


def _type_text(company: Company, types: Picklist) -> str:
    if company.type is None:
        return "-"
    return f"{types.label(company.type) or 'unknown'} ({company.type})"


def _filters_text(args: argparse.Namespace) -> str:
    parts = []
    if args.search:
        parts.append(f"whose name contains {args.search!r}")
    if args.type:
        parts.append(f"of type {args.type!r}")
    return (" " + " and ".join(parts)) if parts else ""


# --- the connection ---------------------------------------------------------------------------
async def pick_connection(settings: AutotaskSettings, name: str | None) -> Connection:
    """The connection ``name``: the environment one or a stored one, enabled or not. Without a
    name, the environment one, or else the only one stored. ConfigError naming the known ones
    when there is no such connection."""
    environment = environment_connection(settings)
    if environment is not None and name in (None, environment.name):
        return environment.connection
    async with open_store(settings) as store:
        async with session(store.pool, "read the stored connections") as db:
            stored = await rows.fetch_all(db)
        if environment is not None:  # the environment one wins (see the catalogue)
            stored = [r for r in stored if r.name != environment.name]
        if name is None and len(stored) == 1:
            name = stored[0].name
        row = next((r for r in stored if r.name == name), None)
        if row is None:
            known = ([environment.name] if environment else []) + [
                r.name if r.enabled else f"{r.name} (disabled)" for r in stored
            ]
            return _unknown(name, known)
        return row.open(store.box(), default_zone_lookup_url=settings.autotask_zone_lookup_url)


def _unknown(name: str | None, known: list[str]) -> NoReturn:
    if not known:
        raise ConfigError(
            "no connection is configured: set AUTOTASK_SYNC_AUTOTASK_USERNAME (and its secret "
            "and integration code), or add one with `autotask-sync connections add` (stored in "
            "DATABASE_URL)"
        )
    if name is None:
        raise ConfigError(f"name the connection with --connection (known: {', '.join(known)})")
    raise ConfigError(
        f"no connection {name!r} (known: {', '.join(known)}); `autotask-sync connections list` "
        "shows the stored ones"
    )


__all__ = ["add_arguments", "pick_connection", "run"]
