"""A downstream reader of the mirror, made the way docs/consumers.md tells operators to."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.helpers.roles import mirror_reader


@pytest.fixture
async def reader_dsn(migrated_database: str) -> AsyncIterator[str]:
    """The DSN of a login role granted ``autotask_reader`` on the migrated database."""
    async with mirror_reader(migrated_database) as dsn:
        yield dsn
