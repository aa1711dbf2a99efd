"""``autotask-sync dlq list|replay [--connection C] [--since WHEN]``: the dead letters.

``list`` shows what failed and why (error class, message, attempts, when); ``replay`` puts the
selected messages back on the topic they came from, with their original key and headers, after
the cause was fixed (a permission granted, a connection re-added). Replaying is safe to repeat:
the worker's writes are idempotent. ``--since`` takes a time (``2026-12-01T08:00:00Z``) or an age
(``2h``: the last two hours). Message bodies are never printed: they may hold customer data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.errors import ConfigError
from shared.kafka import (
    OutgoingMessage,
    client_config,
    make_producer,
    produce_many,
    start_client,
)
from shared.kafka.consumer import Record
from shared.kafka.reader import read_to_end
from shared.messages.callout import HEADER_CONNECTION, header_map, parse_instant
from shared.messages.deadletter import (
    HEADER_ATTEMPTS,
    HEADER_ERROR_CLASS,
    HEADER_ERROR_MESSAGE,
    HEADER_FIRST_FAILED_AT,
    HEADER_ORIGINAL_TOPIC,
    original_headers,
)
from shared.messages.topics import Topics
from shared.settings import BaseServiceSettings, load_settings, parse_duration


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "replay"])
    parser.add_argument("--connection", metavar="NAME", help="only this connection's")
    parser.add_argument(
        "--since", metavar="WHEN", help="only those failed since a time (ISO 8601) or an age (2h)"
    )
    parser.add_argument("--json", action="store_true", help="list as JSON lines")
    parser.add_argument(
        "--dry-run", action="store_true", help="replay: say what would be replayed, send nothing"
    )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead letter's facts (no body)."""

    partition: int
    offset: int
    key: str
    connection: str
    error_class: str
    error_message: str
    attempts: str
    first_failed_at: str
    original_topic: str

    @classmethod
    def of(cls, record: Record, default_topic: str) -> DeadLetter:
        headers = header_map(record.headers)
        return cls(
            partition=record.partition,
            offset=record.offset,
            key=(record.key or b"").decode("utf-8", "replace"),
            connection=headers.get(HEADER_CONNECTION, ""),
            error_class=headers.get(HEADER_ERROR_CLASS, ""),
            error_message=headers.get(HEADER_ERROR_MESSAGE, ""),
            attempts=headers.get(HEADER_ATTEMPTS, ""),
            first_failed_at=headers.get(HEADER_FIRST_FAILED_AT, ""),
            original_topic=headers.get(HEADER_ORIGINAL_TOPIC, default_topic),
        )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(BaseServiceSettings)
    since = _since(args.since)
    return asyncio.run(_run(args, settings, since))


async def _run(
    args: argparse.Namespace, settings: BaseServiceSettings, since: datetime | None
) -> int:
    topics = Topics(prefix=settings.topic_prefix)
    selected: list[tuple[DeadLetter, Record]] = []
    async for record in read_to_end(
        client_config(settings), topics.callouts_dlq, client_id="autotask-sync-dlq"
    ):
        letter = DeadLetter.of(record, topics.callouts)
        if args.connection and letter.connection != args.connection:
            continue
        if since is not None and _failed_before(letter, record, since):
            continue
        selected.append((letter, record))
    if args.action == "list":
        _print(selected, as_json=args.json)
        return 0
    if args.dry_run or not selected:
        print(
            f"would replay {len(selected)} dead letter(s)" if args.dry_run else "nothing to replay"
        )
        return 0
    return await _replay(settings, selected)


async def _replay(settings: BaseServiceSettings, selected: list[tuple[DeadLetter, Record]]) -> int:
    by_topic: dict[str, list[OutgoingMessage]] = {}
    for letter, record in selected:
        by_topic.setdefault(letter.original_topic, []).append(
            OutgoingMessage(record.key, record.value, original_headers(list(record.headers or ())))
        )
    kafka = client_config(settings)
    producer = make_producer(
        kafka,
        client_id=f"{settings.kafka_client_id}-dlq-replay",
        max_request_size=settings.kafka_max_request_size,
    )
    try:
        await start_client(producer, kafka, what="start the Kafka producer")
        for topic, messages in by_topic.items():
            await produce_many(producer, topic, messages)
    finally:
        await producer.stop()
    targets = ", ".join(f"{len(m)} to {t}" for t, m in by_topic.items())
    print(f"replayed {len(selected)} dead letter(s): {targets}")
    return 0


def _print(selected: list[tuple[DeadLetter, Record]], *, as_json: bool) -> None:
    if as_json:
        for letter, _record in selected:
            print(json.dumps(_as_dict(letter)))
        return
    if not selected:
        print("no dead letters")
        return
    for letter, _record in selected:
        print(
            f"{letter.partition}:{letter.offset}  {letter.connection or '-'}  {letter.key}  "
            f"{letter.error_class} after {letter.attempts or '?'} attempt(s) since "
            f"{letter.first_failed_at or '?'}: {letter.error_message}"
        )
    print(f"{len(selected)} dead letter(s)")


def _as_dict(letter: DeadLetter) -> dict[str, object]:
    return {name: getattr(letter, name) for name in DeadLetter.__slots__}


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


def _failed_before(letter: DeadLetter, record: Record, since: datetime) -> bool:
    try:
        failed = parse_instant(letter.first_failed_at)
    except ValueError:
        failed = datetime.fromtimestamp(record.timestamp / 1000, tz=UTC)
    return failed < since
