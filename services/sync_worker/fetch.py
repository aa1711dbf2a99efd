"""Batched fetch of the entities a unit names, with retries for the ids that did not come back.

One ``in`` query per chunk of ids (the client's ``fetch_by_ids``) at webhook priority. An id the
answer lacks is asked for again after a short back-off (Autotask's read-after-write lag: a record
just created can be invisible for a moment), and still-missing ids are reported, never taken for
deleted (architecture.md rule 5).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.autotask import AutotaskClient, Entity, Priority
from shared.entities import EntitySpec


@dataclass
class Fetched:
    """Rows by id with the time their read started, the ids still missing, the calls spent."""

    rows: dict[int, tuple[Entity, datetime]] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    calls: int = 0


async def fetch(
    client: AutotaskClient,
    entity: EntitySpec,
    ids: Sequence[int],
    *,
    retry_delays: Sequence[timedelta] = (),
) -> Fetched:
    """Read ``ids``; retry the missing ones after each of ``retry_delays``."""
    result = Fetched()
    wanted = list(dict.fromkeys(ids))
    for delay in (timedelta(0), *retry_delays):
        if not wanted:
            break
        if delay:
            await asyncio.sleep(delay.total_seconds())
        started = datetime.now(UTC)
        batch = await client.fetch_by_ids(entity.rest_name, wanted, priority=Priority.WEBHOOK)
        result.calls += batch.calls
        for entity_id, row in batch.found.items():
            result.rows[entity_id] = (row, started)
        wanted = list(batch.missing)
    result.missing = wanted
    return result


__all__ = ["Fetched", "fetch"]
