"""What the operator commands open: the settings, the database pool and the secret box.

Commands read the same environment as the services (``DATABASE_URL``,
``AUTOTASK_SYNC_SECRET_KEYS``...), so a command run in a pod's shell sees what the pod sees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from shared.db import Pool, create_pool, database_dsn
from shared.secrets import SecretBox
from shared.settings import AutotaskSettings


@dataclass(frozen=True, slots=True)
class Store:
    """A small pool and the settings it came from; the box is built when first needed."""

    pool: Pool
    settings: AutotaskSettings

    def box(self) -> SecretBox:
        """The secret box; ConfigError naming AUTOTASK_SYNC_SECRET_KEYS when it is not set."""
        return SecretBox.from_setting(self.settings.secret_keys)


@asynccontextmanager
async def open_store(settings: AutotaskSettings) -> AsyncIterator[Store]:
    """Open a pool of two sessions for one command; closed when the command ends."""
    pool = await create_pool(database_dsn(settings), min_size=1, max_size=2)
    try:
        yield Store(pool=pool, settings=settings)
    finally:
        await pool.close()
