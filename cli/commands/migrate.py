"""``autotask-sync migrate``: apply pending database migrations (also run as a Kubernetes Job)."""

from __future__ import annotations

import argparse
import asyncio

from shared.db import create_pool, database_dsn, session
from shared.db.migrate import apply_migrations, discover
from shared.settings import BaseServiceSettings, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--list", action="store_true", help="list the migration files and exit")


def run(args: argparse.Namespace) -> int:
    if args.list:
        for migration in discover():
            print(f"{migration.version:04d} {migration.name}")
        return 0
    settings = load_settings(BaseServiceSettings)
    applied = asyncio.run(_migrate(database_dsn(settings)))
    print(f"applied {len(applied)} migration(s)" if applied else "database is up to date")
    return 0


async def _migrate(dsn: str) -> list[str]:
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        async with session(pool, "apply the migrations") as db:
            return [f"{m.version:04d}_{m.name}" for m in await apply_migrations(db)]
    finally:
        await pool.close()
