"""``autotask-sync spool``: the callouts waiting in the gateway's spool, and those Kafka refused.

    spool list [--connection C] [--rejects] [--json]
    spool show ID [--body] [--json]
    spool retry ID
    spool drop ID [--yes]

The gateway spools a callout it answered while Kafka did not take it; its drainer moves the rows
to Kafka by itself. A row Kafka refuses for good (too large, its topic refused) goes to the
dead-letter topic, or, when that refuses it too, to ``spool_rejects`` (alert
``AutotaskSyncSpoolRejects``). This command shows both tables: ``retry`` puts a reject back in
the spool, behind everything there (or lets a spooled row's attempts start again), once the cause
is fixed (a topic created, the producer's or the topic's size limit raised); ``drop`` deletes a
row for good (the sweeps repair the change it carried). A spooled row and a reject never share an
id. Bodies hold customer data: ``show`` prints one only with ``--body``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

from cli.store import open_store
from services.webhook_gateway import spool
from shared.db import session
from shared.errors import ConfigError
from shared.settings import AutotaskSettings, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="spooled callouts and rejects, oldest first")
    listing.add_argument("--connection", metavar="NAME", help="only this connection's")
    listing.add_argument("--rejects", action="store_true", help="only the rejects")
    listing.add_argument("--json", action="store_true", help="one JSON object a line")
    show = actions.add_parser("show", help="one row: metadata and headers (the body on request)")
    show.add_argument("id", help="the id `spool list` shows")
    show.add_argument("--body", action="store_true", help="print the body too (customer data)")
    show.add_argument("--json", action="store_true", help="print JSON")
    retry = actions.add_parser(
        "retry", help="send it again: a reject back to the spool, a spooled row's attempts reset"
    )
    retry.add_argument("id", help="the id `spool list` shows")
    drop = actions.add_parser("drop", help="delete a spooled row or a reject for good")
    drop.add_argument("id", help="the id `spool list` shows")
    drop.add_argument("--yes", action="store_true", help="do not ask")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(AutotaskSettings)
    if args.action != "list":
        args.id = _row_id(args.id)
    if args.action == "drop" and not args.yes:
        return asyncio.run(_drop_asking(args.id, settings))
    handlers = {"list": _list, "show": _show, "retry": _retry, "drop": _drop}
    return asyncio.run(handlers[args.action](args, settings))


async def _list(args: argparse.Namespace, settings: AutotaskSettings) -> int:
    async with open_store(settings) as store, session(store.pool, "read the spool") as db:
        entries = await spool.entries(db, connection=args.connection, rejects_only=args.rejects)
    if args.json:
        for entry in entries:
            print(json.dumps(_summary(entry)))
        return 0
    if not entries:
        print("no rejects" if args.rejects else "the spool is empty, and nothing was rejected")
        return 0
    now = datetime.now(UTC)
    for entry in entries:
        state = "rejected" if entry.rejected else "spooled"
        why = entry.reason if entry.rejected else entry.last_error
        print(
            f"{entry.id}  {state}  {entry.connection}  {entry.topic}  {_text(entry.key)}  "
            f"{entry.size} bytes  {entry.attempts} attempt(s)  {_age(now, entry.received_at)} "
            f"old{f'  {why}' if why else ''}"
        )
    rejects = sum(entry.rejected for entry in entries)
    print(f"{len(entries) - rejects} spooled, {rejects} rejected")
    return 0


async def _show(args: argparse.Namespace, settings: AutotaskSettings) -> int:
    async with open_store(settings) as store, session(store.pool, "read the spool") as db:
        entry = await _require(db, args.id)
        body = await spool.body(db, args.id) if args.body else None
    shown = _summary(entry)
    shown["headers"] = [[name, _text(value)] for name, value in entry.headers]
    if body is not None:
        shown["body"] = _text(body)
    if args.json:
        print(json.dumps(shown, indent=2))
        return 0
    for name, value in shown.items():
        if name in {"headers", "body"}:
            continue
        print(f"{name + ':':<16} {'-' if value is None else value}")
    print("headers:")
    for name, value in shown["headers"]:
        print(f"  {name}: {value}")
    if body is not None:
        print("body:")
        print(shown["body"])
    return 0


async def _retry(args: argparse.Namespace, settings: AutotaskSettings) -> int:
    async with open_store(settings) as store, session(store.pool, "retry a message") as db:
        entry = await _require(db, args.id)
        new_id = await spool.retry(db, args.id)
    if new_id is None:  # gone in between (drained, dropped)
        raise ConfigError(f"spool row {args.id} is gone; `autotask-sync spool list` shows the rest")
    if entry.rejected:
        print(f"reject {args.id} is back in the spool as {new_id}; the drainer sends it next")
    else:
        print(f"spool row {args.id}: attempts reset; the drainer keeps sending it")
    return 0


async def _drop(args: argparse.Namespace, settings: AutotaskSettings) -> int:
    async with open_store(settings) as store, session(store.pool, "drop a message") as db:
        entry = await _require(db, args.id)
        if not await spool.drop(db, args.id):
            raise ConfigError(f"spool row {args.id} is gone already")
    state = "reject" if entry.rejected else "spooled row"
    print(
        f"dropped {state} {args.id} ({entry.connection}, {_text(entry.key)}); a sweep repairs "
        "the change it carried"
    )
    return 0


async def _drop_asking(row_id: int, settings: AutotaskSettings) -> int:
    async with open_store(settings) as store, session(store.pool, "read the spool") as db:
        entry = await _require(db, row_id)
    state = "reject" if entry.rejected else "spooled row"
    print(
        f"drop {state} {row_id} ({entry.connection}, {entry.topic}, {_text(entry.key)}, "
        f"{entry.size} bytes) for good? [y/N] ",
        end="",
        flush=True,
    )
    answer = sys.stdin.readline().strip().lower()
    if answer not in {"y", "yes"}:
        print("not dropped")
        return 1
    return await _drop(argparse.Namespace(id=row_id), settings)


def _row_id(given: str) -> int:
    try:
        return int(given)
    except ValueError:
        raise ConfigError(
            f"{given!r} is not a spool id: give the number `autotask-sync spool list` shows"
        ) from None


async def _require(db: Any, row_id: int) -> spool.SpoolEntry:
    entry = await spool.find(db, row_id)
    if entry is None:
        raise ConfigError(
            f"no spooled message or reject has id {row_id}; `autotask-sync spool list` shows them"
        )
    return entry


def _summary(entry: spool.SpoolEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "state": "rejected" if entry.rejected else "spooled",
        "connection": entry.connection,
        "registration": entry.registration_id,
        "topic": entry.topic,
        "key": _text(entry.key),
        "bytes": entry.size,
        "attempts": entry.attempts,
        "last_error": entry.last_error,
        "reason": entry.reason,
        "received_at": entry.received_at.isoformat(),
        "rejected_at": entry.rejected_at.isoformat() if entry.rejected_at else None,
        "age_seconds": round((datetime.now(UTC) - entry.received_at).total_seconds()),
    }


def _text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


def _age(now: datetime, then: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
