"""``autotask-sync dlq list|replay [--connection C] [--since WHEN] [--pending]``: dead letters.

``list`` shows what failed and why (error class, message, attempts, when) and whether it was
replayed; ``--pending`` keeps only those not replayed yet, the ones ``status`` counts. Its first
column, ``PARTITION:OFFSET``, is the letter's place on the dead-letter topic.

``replay`` puts the selected pending letters back on the topic they came from, with their
original key and headers, after the cause was fixed (a permission granted, a connection
re-added), and records the replay (cli/deadletters.py): a letter is replayed once. Replaying is
safe to repeat (the worker's writes are idempotent) but not free: each callout goes through the
worker's attempts again, spending API calls of the tenant's budget, and comes back as a new dead
letter while the cause lasts. So when the cause looks unfixed the replay is refused with the
reason, unless ``--force``: callouts of the same connection and error class dead-lettered after
its last replay, or a connection that is locked out, disabled or no longer configured. A refusal
rather than a question: the command runs in scripts and pod shells, where nobody answers.

``--since`` takes a time (``2026-12-01T08:00:00Z``) or an age (``2h``: the last two hours).
Message bodies are never printed: they may hold customer data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cli.deadletters import DeadLetter, marked, read_dead_letters, record_replays, replays
from cli.store import open_producer, open_store
from cli.text import or_dash, when
from shared.apibudget import store as budget_store
from shared.connections import store as rows
from shared.connections.catalogue import environment_connection
from shared.db import DbSession, session
from shared.errors import ConfigError
from shared.kafka import OutgoingMessage, client_config, produce_many
from shared.messages.callout import parse_instant
from shared.messages.deadletter import original_headers
from shared.messages.topics import Topics
from shared.settings import AutotaskSettings, load_settings, parse_duration

EXIT_REFUSED = 1
"""``replay`` sent nothing: the cause looks unfixed (see the module docstring)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "replay"])
    parser.add_argument("--connection", metavar="NAME", help="only this connection's")
    parser.add_argument(
        "--since", metavar="WHEN", help="only those failed since a time (ISO 8601) or an age (2h)"
    )
    parser.add_argument("--pending", action="store_true", help="list: only those not replayed yet")
    parser.add_argument("--json", action="store_true", help="list as JSON lines")
    parser.add_argument(
        "--dry-run", action="store_true", help="replay: say what would be replayed, send nothing"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replay even when the cause looks unfixed (same errors since the last replay, "
        "connection locked out, disabled or missing)",
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(AutotaskSettings)
    since = _since(args.since)
    return asyncio.run(_run(args, settings, since))


async def _run(args: argparse.Namespace, settings: AutotaskSettings, since: datetime | None) -> int:
    topics = Topics(prefix=settings.topic_prefix)
    letters = await read_dead_letters(
        client_config(settings), topics, client_id="autotask-sync-dlq"
    )
    async with open_store(settings) as store, session(store.pool, "read the dead letters") as db:
        letters = marked(letters, await replays(db, topics.callouts_dlq))
        selected = [letter for letter in letters if _wanted(letter, args, since)]
        if args.action == "list":
            _print(selected, as_json=args.json, topic=topics.callouts_dlq)
            return 0
        pending = [letter for letter in selected if letter.pending]
        skipped = len(selected) - len(pending)
        if not pending:
            print("nothing to replay" + _already(skipped))
            return 0
        causes = await _persistent_causes(db, settings, pending, letters)
    for cause in causes:
        print(f"warning: {cause}", file=sys.stderr)
    if args.dry_run:
        print(f"would replay {len(pending)} dead letter(s)" + _already(skipped))
        return 0
    if causes and not args.force:
        print(
            "nothing replayed: the cause looks unfixed; fix it first, or replay anyway with "
            "--force",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    targets = await _replay(settings, pending)
    print(f"replayed {len(pending)} dead letter(s): {targets}" + _already(skipped))
    async with open_store(settings) as store, session(store.pool, "record the replay") as db:
        oldest = min(letter.dead_lettered_at for letter in letters)
        await record_replays(db, topics.callouts_dlq, pending, oldest_on_topic=oldest)
    return 0


def _wanted(letter: DeadLetter, args: argparse.Namespace, since: datetime | None) -> bool:
    if args.connection and letter.connection != args.connection:
        return False
    if since is not None and letter.failed_at < since:
        return False
    return not (args.pending and not letter.pending)


def _already(skipped: int) -> str:
    return f" ({skipped} already replayed left out)" if skipped else ""


async def _replay(settings: AutotaskSettings, letters: Sequence[DeadLetter]) -> str:
    """Send copies of ``letters`` to their original topics; returns where they went."""
    by_topic: dict[str, list[OutgoingMessage]] = {}
    for letter in letters:
        record = letter.record
        by_topic.setdefault(letter.original_topic, []).append(
            OutgoingMessage(record.key, record.value, original_headers(list(record.headers or ())))
        )
    async with open_producer(settings, role="dlq-replay") as producer:
        for topic, messages in by_topic.items():
            await produce_many(producer, topic, messages)
    return ", ".join(f"{len(m)} to {t}" for t, m in by_topic.items())


async def _persistent_causes(
    db: DbSession,
    settings: AutotaskSettings,
    pending: Sequence[DeadLetter],
    letters: Sequence[DeadLetter],
) -> list[str]:
    """Why replaying ``pending`` now would likely dead-letter them again (empty: no sign)."""
    causes = []
    for name in sorted({letter.connection for letter in pending if letter.connection}):
        causes += _failed_again(name, letters)
        causes += await _connection_problems(db, settings, name)
    return causes


def _failed_again(name: str, letters: Sequence[DeadLetter]) -> list[str]:
    """Letters of ``name`` with an error class its last replay had, dead-lettered after it."""
    replayed = [x for x in letters if x.connection == name and x.replayed_at is not None]
    if not replayed:
        return []
    last = max(x.replayed_at for x in replayed if x.replayed_at is not None)
    classes = {x.error_class for x in replayed if x.replayed_at == last}
    again = Counter(
        x.error_class
        for x in letters
        if x.connection == name
        and x.pending
        and x.error_class in classes
        and x.dead_lettered_at > last
    )
    return [
        f"{name}: {count} {error} dead letter(s) arrived after the last replay "
        f"({when(last)}): the cause looks unfixed"
        for error, count in sorted(again.items())
    ]


async def _connection_problems(db: DbSession, settings: AutotaskSettings, name: str) -> list[str]:
    """The connection is missing, disabled or locked out: its callouts would fail again."""
    environment = environment_connection(settings)
    if environment is None or environment.name != name:
        stored = await rows.fetch_one(db, name)
        if stored is None:
            return [f"{name} is not a configured connection: add it back first"]
        if not stored.enabled:
            return [f"{name} is disabled: `autotask-sync connections enable {name}` first"]
    health = (await budget_store.read_health(db, [name])).get(name)
    if health is not None and health.remaining > 0:
        until = datetime.now(UTC) + timedelta(seconds=health.remaining)
        return [
            f"{name} is locked out until {when(until)} ({health.reason}): fix the credentials "
            f"and run `autotask-sync connections test {name}` first"
        ]
    return []


COLUMNS = ("PARTITION:OFFSET", "CONNECTION", "KEY", "ERROR", "ATTEMPTS", "FIRST FAILED", "REPLAYED")


def _print(selected: Sequence[DeadLetter], *, as_json: bool, topic: str) -> None:
    if as_json:
        for letter in selected:
            print(json.dumps(letter.facts(), default=_json_value))
        return
    if not selected:
        print("no dead letters")
        return
    table = [COLUMNS, *(_row(letter) for letter in selected)]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    for row, shown in zip(table, [None, *selected], strict=True):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
        if shown is not None and shown.error_message:
            print(f"    {shown.error_message}")
    pending = sum(1 for letter in selected if letter.pending)
    print(
        f"{len(selected)} dead letter(s): {pending} pending, {len(selected) - pending} replayed "
        f"(PARTITION:OFFSET is the letter's place on {topic})"
    )


def _row(letter: DeadLetter) -> tuple[str, ...]:
    return (
        f"{letter.partition}:{letter.offset}",
        letter.connection or "-",
        letter.key,
        letter.error_class or "-",
        or_dash(letter.attempts or None),
        when(letter.first_failed_at),
        when(letter.replayed_at) if letter.replayed_at else "no",
    )


def _json_value(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    duration = parse_duration(value)
    if isinstance(duration, timedelta):
        return datetime.now(UTC) - duration
    try:
        return parse_instant(value)
    except ValueError:
        raise ConfigError(
            f"--since {value!r}: give a time such as 2026-12-01T08:00:00Z or an age such as 2h"
        ) from None
