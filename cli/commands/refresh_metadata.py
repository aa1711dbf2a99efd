"""``autotask-sync refresh-metadata``: read the PSA's picklists and UDF definitions now.

    autotask-sync refresh-metadata [--connection C]

MSPortal's "Sync PSA Data": statuses, queues, priorities, issue types, company types... of every
entity the connection syncs, with labels and active flags, into ``psa_picklists`` and
``psa_udf_definitions`` (the ``autotask.<table>_live`` and ``_labeled`` views show the labels
beside the mirror's columns). Without ``--connection`` every connection served is refreshed.
Exit status: 0 when every refresh succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from cli.commands.sweep import describe, reconciliation
from shared.reconcile.due import METADATA_ENTITY, Job
from shared.reconcile.jobs import Options
from shared.reconcile.settings import SweepSettings
from shared.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connection", metavar="C", help="only this connection")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(SweepSettings)
    return asyncio.run(_refresh(settings, args.connection))


async def _refresh(settings: SweepSettings, connection: str | None) -> int:
    requested_at = datetime.now(UTC)
    failed = False
    async with reconciliation(settings) as (reconciler, catalogue, _pool):
        names = [catalogue.get(connection).name] if connection else catalogue.names()
        if not names:
            print("no connection is served: nothing to refresh")
        for name in names:
            job = Job(name, METADATA_ENTITY, "metadata", "cli", requested_at=requested_at)
            result = await reconciler.run(job, Options(wait=settings.sweep_lock_wait))
            print(describe(result))
            failed |= result.outcome not in ("succeeded", "skipped")
    return 1 if failed else 0
