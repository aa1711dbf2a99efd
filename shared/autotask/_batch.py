"""Fetch many entities by id with few calls.

One ``GET`` per changed id would spend the tenant's hourly budget fast; an ``in`` query returns
up to 500 rows per call. Ids are de-duplicated and split into chunks (200 by default; Autotask's
own workflows use 200, django-autotask 400, and ``in`` members may count toward the 500-condition
ceiling), the chunks run concurrently under the connection's limiter, and ids that did not come
back are reported, not guessed about: absence is not deletion (architecture.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

from shared.autotask._limiter import Priority
from shared.autotask._models import BatchResult, Entity, Page
from shared.autotask._query import MAX_PAGE_SIZE, F, Query
from shared.autotask._targets import Target

PageSource = Callable[..., AsyncIterator[Page]]


def chunked(ids: Sequence[int], size: int) -> list[list[int]]:
    """``ids`` in order, in lists of at most ``size``."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


async def fetch_by_ids(
    query_pages: PageSource,
    entity: Target,
    ids: Iterable[int],
    *,
    include_fields: Sequence[str] = (),
    chunk_size: int = 200,
    priority: Priority | None = None,
) -> BatchResult:
    """Rows for ``ids`` keyed by id, the ids not returned, and the calls it took.

    ``query_pages`` is :meth:`AutotaskClient.query_pages`. If any chunk fails, the others are
    cancelled and the error is raised: a partial answer would read as "missing".
    """
    if not 1 <= chunk_size <= MAX_PAGE_SIZE:
        raise ValueError(f"chunk_size must be between 1 and {MAX_PAGE_SIZE}")
    wanted = list(dict.fromkeys(int(i) for i in ids))
    wanted_set = set(wanted)
    found: dict[int, Entity] = {}
    calls = 0

    async def one(chunk: list[int]) -> None:
        nonlocal calls
        query = Query.where(F("id").in_(chunk)).limit(len(chunk))
        if include_fields:
            query = query.include(*dict.fromkeys(("id", *include_fields)))
        async for page in query_pages(entity, query, priority=priority):
            calls += 1
            for item in page.items:
                item_id = item.get("id")
                if isinstance(item_id, int) and item_id in wanted_set:
                    found[item_id] = item

    tasks = [asyncio.create_task(one(chunk)) for chunk in chunked(wanted, chunk_size)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    missing = [i for i in wanted if i not in found]
    return BatchResult(found=found, missing=missing, calls=calls)


__all__ = ["chunked", "fetch_by_ids"]
