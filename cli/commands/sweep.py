"""``autotask-sync sweep``: the quick sync, a full re-read, or the id sweep, now.

    autotask-sync sweep [--connection C] [--entity E ...] [--full | --ids | --due]
                        [--max-delete-share X]

Without ``--entity`` every entity the connection syncs is swept, in registry order; without
``--connection`` the only connection served is meant. The quick sync reads what changed since
the watermark (plus delete logs and ids the worker could not fetch); ``--full`` re-reads every
row and repairs what differs, deleting (guarded, confirmed) rows Autotask no longer has;
``--ids`` runs the id sweep (delete detection). ``--due`` runs what the schedule says is due for
every connection and exits: the CronJob form. The same request made again within two minutes
runs once. Exit status: 0 when every run succeeded or was a duplicate, 1 otherwise.

This module also holds what the reconciliation commands share (``backfill``, ``resync``,
``refresh-metadata``): they read the same environment as the services, need PostgreSQL and
Kafka (change events), and show a progress bar on a terminal, progress lines otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tqdm import tqdm

from cli.store import open_producer
from shared.connections.catalogue import ConnectionCatalogue, ServedConnection
from shared.db import Pool, create_pool, database_dsn
from shared.entities import REGISTRY, EntitySpec, find_rest_name
from shared.errors import ConfigError
from shared.logging import lines_written_by
from shared.messages.topics import Topics
from shared.reconcile.due import METADATA_ENTITY, Job, Mode
from shared.reconcile.jobs import Options, Reconciler, Result
from shared.reconcile.progress import Rate
from shared.reconcile.scheduler import Scheduler, schedule_from
from shared.reconcile.settings import SweepSettings
from shared.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--full", action="store_true", help="re-read every row and repair")
    how.add_argument("--ids", action="store_true", help="id sweep: detect deleted rows")
    how.add_argument(
        "--due", action="store_true", help="run what the schedule says is due, then exit"
    )
    add_delete_share_argument(parser)


def run(args: argparse.Namespace) -> int:
    if args.due:
        return asyncio.run(_due())
    mode: Mode = "full" if args.full else "ids" if args.ids else "incremental"
    return run_command(args, mode)


async def _due() -> int:
    settings = load_settings(SweepSettings)
    async with reconciliation(settings) as (reconciler, catalogue, pool):
        scheduler = Scheduler(
            reconciler=reconciler,
            catalogue=catalogue,
            pool=pool,
            schedule=schedule_from(settings),
            concurrency=settings.sweep_concurrency,
        )
        started = await scheduler.tick()
        while scheduler.running:
            await asyncio.wait(list(scheduler.running.values()))
        results = list(scheduler.results)
    for result in results:
        print(describe(result))
    if not started:
        print("nothing is due")
    return 0 if all(r.outcome in ("succeeded", "skipped", "not_due") for r in results) else 1


# --- what the reconciliation commands share --------------------------------------------------
def add_target_arguments(parser: argparse.ArgumentParser, *, entity_required: bool = False) -> None:
    parser.add_argument(
        "--connection", metavar="C", help="the connection (default: the only one served)"
    )
    default = "required" if entity_required else "default: every entity the connection syncs"
    parser.add_argument(
        "--entity",
        metavar="E",
        action="append",
        required=entity_required,
        help=f"REST name, e.g. Tickets (repeatable; {default})",
    )


def add_delete_share_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-delete-share",
        type=float,
        metavar="X",
        help="allow deleting up to this share of the live rows in this run (0..1; default "
        "AUTOTASK_SYNC_MASS_DELETE_SHARE)",
    )


def run_command(args: argparse.Namespace, mode: Mode, *, restart: bool = False) -> int:
    """Run ``mode`` for the connection and entities ``args`` name; print one line per run."""
    settings = load_settings(SweepSettings)
    share = getattr(args, "max_delete_share", None)
    if share is not None and not 0 <= share <= 1:
        raise ConfigError("--max-delete-share must be between 0 and 1")
    return asyncio.run(_run(settings, args.connection, args.entity or [], mode, share, restart))


async def _run(
    settings: SweepSettings,
    connection: str | None,
    entities: Sequence[str],
    mode: Mode,
    share: float | None,
    restart: bool,
) -> int:
    requested_at = datetime.now(UTC)
    failed = False
    async with reconciliation(settings) as (reconciler, catalogue, _pool):
        served = pick_connection(catalogue, connection)
        for spec in pick_entities(served, entities):
            job = Job(served.name, spec.rest_name, mode, "cli", requested_at=requested_at)
            result = await reconciler.run(
                job,
                Options(
                    wait=settings.sweep_lock_wait,
                    progress=terminal_progress(f"{mode} {spec.rest_name}"),
                    max_delete_share=share,
                    restart=restart,
                    on_wait=lambda message: print(message, file=sys.stderr),
                ),
            )
            print(describe(result))
            failed |= result.outcome not in ("succeeded", "skipped")
    return 1 if failed else 0


@asynccontextmanager
async def reconciliation(
    settings: SweepSettings,
) -> AsyncIterator[tuple[Reconciler, ConnectionCatalogue, Pool]]:
    """The pool, the Kafka producer and the connections a command's runs need."""
    topics = Topics(prefix=settings.topic_prefix)
    dsn = database_dsn(settings)
    # Every change topic a run may publish to, and the control topic (BackfillFinished).
    needs = [topics.control, *(topics.changes(e) for e in REGISTRY)]
    async with open_producer(settings, needs=needs) as producer:
        pool = await create_pool(dsn, min_size=1, max_size=4)
        try:
            async with ConnectionCatalogue.from_settings(settings) as catalogue:
                reconciler = Reconciler(
                    catalogue=catalogue,
                    pool=pool,
                    producer=producer,
                    topics=topics,
                    dsn=dsn,
                    policy=settings.policy(),
                    value_format=settings.change_value_format,
                )
                yield reconciler, catalogue, pool
        finally:
            await pool.close()


def pick_connection(catalogue: ConnectionCatalogue, name: str | None) -> ServedConnection:
    if name is not None:
        return catalogue.get(name)
    names = catalogue.names()
    if len(names) == 1:
        return catalogue.get(names[0])
    raise ConfigError(
        "name the connection with --connection "
        + (f"(served: {', '.join(names)})" if names else "(none is configured: set "
           "AUTOTASK_SYNC_AUTOTASK_USERNAME or add one with `autotask-sync connections add`)")
    )  # fmt: skip


def pick_entities(served: ServedConnection, names: Sequence[str]) -> list[EntitySpec]:
    if not names:
        return served.scope.synced()
    specs = []
    for name in names:
        spec = find_rest_name(name)
        if spec is None:
            choices = ", ".join(s.rest_name for s in served.scope.synced())
            raise ConfigError(f"unknown entity {name!r} (choose from {choices})")
        specs.append(spec)
    return specs


def describe(result: Result) -> str:
    """One line a person reads."""
    job, run = result.job, result.run
    what = "metadata" if job.entity == METADATA_ENTITY else f"{job.mode} of {job.entity}"
    head = f"{what} for {job.connection!r}"
    if result.outcome == "skipped":
        return f"{head}: skipped: {result.message}"
    if result.outcome == "locked":
        return f"{head}: not run: {result.message}"
    if result.outcome == "not_due":
        return f"{head}: not run: another process just did it"
    if run is None:
        return f"{head}: {result.outcome}: {result.message}"
    c = run.counts
    seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0.0
    line = (
        f"{head}: {run.status} in {seconds:.1f} s (run {run.id}): {c.pages} pages, "
        f"{c.api_calls} API calls, {c.fetched} fetched, {c.created} created, {c.updated} "
        f"updated, {c.unchanged} unchanged, {c.out_of_scope} out of scope, {c.deleted} deleted, "
        f"{c.repaired} repaired"
    )
    if run.error:
        line += f"\n  {run.error}"
    return line


@dataclass
class LineProgress:
    """Progress lines on stderr every ``every`` pages (not a terminal: logs, CI, pipes)."""

    label: str
    every: int = 20
    rate: Rate | None = None

    def started(self, *, what: str, total: int | None) -> None:
        self.rate = Rate(total=total)
        print(f"{self.label}: reading {what}" + (f" ({total:,} rows)" if total else ""),
              file=sys.stderr)  # fmt: skip

    def advanced(self, *, rows: int, pages: int) -> None:
        assert self.rate is not None
        before = self.rate.pages // self.every
        self.rate.add(rows, pages)
        if self.rate.pages // self.every > before:
            self._line()

    def finished(self) -> None:
        if self.rate is not None and self.rate.pages:
            self._line()

    def _line(self) -> None:
        assert self.rate is not None
        rate = self.rate
        total = f" / {rate.total:,}" if rate.total else ""
        eta = f", ETA {rate.eta.total_seconds():.0f} s" if rate.eta is not None else ""
        print(f"{self.label}: {rate.done:,}{total} rows, {rate.per_second:,.0f} rows/s{eta}",
              file=sys.stderr)  # fmt: skip


class BarProgress:
    """A tqdm bar on the terminal: done / total (from ``count``), rate, ETA. While it is shown,
    log lines are printed above it, never into it."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._bar: tqdm[Any] | None = None
        self._shown = ExitStack()

    def started(self, *, what: str, total: int | None) -> None:
        self._bar = tqdm(total=total, desc=self._label, unit=" rows", unit_scale=True,
                         file=sys.stderr, dynamic_ncols=True)  # fmt: skip
        self._shown.enter_context(lines_written_by(self._above))

    def advanced(self, *, rows: int, pages: int) -> None:
        if self._bar is not None:
            self._bar.update(rows)

    def finished(self) -> None:
        self._shown.close()
        if self._bar is not None:
            self._bar.close()

    def _above(self, line: str) -> None:
        tqdm.write(line, file=sys.stderr)


def terminal_progress(label: str) -> BarProgress | LineProgress:
    return BarProgress(label) if sys.stderr.isatty() else LineProgress(label)
