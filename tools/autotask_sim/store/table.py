"""In-memory storage of one entity's records, kept in id order.

Query results are sorted by id and paging resumes "after the last id", so the table keeps a sorted
id list next to the id → record map; scans start with a bisect instead of a sort. Records are
replaced, never mutated in place, so a record handed out (a callout snapshot, a page being
serialised) never changes underneath its holder and nested values can be shared between records.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from tools.autotask_sim.jsontypes import Record, encode_json
from tools.autotask_sim.store.schema import EntitySchema

# Serialised records kept per table. Serialising dominates the cost of a query page, and records
# never change in place, so a cached encoding stays valid for as long as its record is current.
ENCODED_CACHE_SIZE = 50_000


class Table:
    """The records of one entity."""

    def __init__(self, schema: EntitySchema, first_id: int = 1) -> None:
        self.schema = schema
        self._rows: dict[int, Record] = {}
        self._ids: list[int] = []
        self._next_id = first_id
        # OrderedDict: evicting the oldest entry of a plain dict over and over degrades to a
        # linear scan over deleted slots; popitem(last=False) stays O(1).
        self._encoded: OrderedDict[int, tuple[Record, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._rows

    def get(self, record_id: int) -> Record | None:
        return self._rows.get(record_id)

    def allocate_id(self) -> int:
        """A fresh id, larger than every id handed out before (Autotask ids only grow)."""
        record_id = self._next_id
        self._next_id += 1
        return record_id

    def put(self, record: Record) -> None:
        """Insert or replace ``record`` (its ``id`` decides which)."""
        record_id = record["id"]
        assert isinstance(record_id, int)
        if record_id not in self._rows:
            if not self._ids or record_id > self._ids[-1]:
                self._ids.append(record_id)
            else:
                insort(self._ids, record_id)
            self._next_id = max(self._next_id, record_id + 1)
        self._rows[record_id] = record

    def load(self, records: Iterable[Record]) -> None:
        """Bulk insert (tenant generation); faster than repeated ``put``."""
        for record in records:
            record_id = record["id"]
            assert isinstance(record_id, int)
            self._rows[record_id] = record
        self._ids = sorted(self._rows)
        if self._ids:
            self._next_id = max(self._next_id, self._ids[-1] + 1)

    def remove(self, record_id: int) -> Record | None:
        record = self._rows.pop(record_id, None)
        self._encoded.pop(record_id, None)
        if record is not None:
            del self._ids[bisect_left(self._ids, record_id)]
        return record

    def ids_after(self, after: int | None) -> Iterator[int]:
        """Ids greater than ``after`` (all ids when None), ascending."""
        start = 0 if after is None else bisect_right(self._ids, after)
        ids = self._ids
        for i in range(start, len(ids)):
            yield ids[i]

    def ids_before(self, before: int | None) -> Iterator[int]:
        """Ids smaller than ``before`` (all ids when None), descending."""
        end = len(self._ids) if before is None else bisect_left(self._ids, before)
        ids = self._ids
        for i in range(end - 1, -1, -1):
            yield ids[i]

    def rows(self) -> Iterator[Record]:
        """All records in id order."""
        rows = self._rows
        return (rows[i] for i in list(self._ids))

    def encoded(self, record: Record) -> bytes:
        """``record`` as compact JSON, from the cache while the record is current."""
        record_id = record["id"]
        cached = self._encoded.get(record_id)
        if cached is not None and cached[0] is record:
            return cached[1]
        data = encode_json(record)
        if self._rows.get(record_id) is record:
            if len(self._encoded) >= ENCODED_CACHE_SIZE:
                self._encoded.popitem(last=False)
            self._encoded[record_id] = (record, data)
        return data

    def id_at(self, index: int) -> int:
        """The ``index``-th smallest id (for seeded random picks without copying)."""
        return self._ids[index]

    def ids(self) -> list[int]:
        """A copy of the ids in ascending order."""
        return list(self._ids)


__all__ = ["Table"]
