"""Where a connection's sync scope draws the line for one entity, and how a change moves it.

A connection's scope decides an entity's rows by one :class:`Boundary`: whether the entity is
synced at all, and the filter section that judges its rows (its own, e.g. ``tickets`` for
Tickets, or its parent's, e.g. ``companies`` for Contacts; :func:`shared.scope.membership
.deciding_filter`). Two scopes with the same boundary for an entity mirror the same rows of it;
when an edit moves the boundary, the mirror has to follow (:mod:`shared.reconcile.rescope`):

- a boundary that only :meth:`~Boundary.narrows` lets no new row in: the rows that left are
  found in the mirror itself, no API call needed;
- any other move may let rows in that the mirror never held: they are read from Autotask.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.entities import EntitySpec
from shared.scope.membership import deciding_filter
from shared.scope.rules import RowFilter, SyncScope


@dataclass(frozen=True, slots=True)
class Boundary:
    """Which rows of one entity a scope mirrors: none (not synced), all (``filter`` None or
    unrestricted), or those ``filter`` admits."""

    synced: bool
    filter: RowFilter | None = None

    @property
    def restricted(self) -> bool:
        """Whether some row of a synced entity stays out."""
        return self.filter is not None and self.filter.restricted

    def narrows(self, previous: Boundary) -> bool:
        """Whether every row this boundary admits, ``previous`` admitted too (so going from
        ``previous`` to this one lets no row in)."""
        if not self.synced:
            return True
        if not previous.synced:
            return False
        if not previous.restricted:
            return True
        if not self.restricted:
            return False
        assert self.filter is not None
        assert previous.filter is not None
        return self.filter.within(previous.filter)

    def same_rows(self, other: Boundary) -> bool:
        """Whether both boundaries mirror exactly the same rows."""
        if self.synced != other.synced:
            return False
        if not self.synced or not (self.restricted or other.restricted):
            return True
        return self.filter == other.filter


def boundary(entity: EntitySpec, scope: SyncScope) -> Boundary:
    """The boundary ``scope`` draws for ``entity``; ConfigError when the registry cannot say
    how the entity is judged."""
    if not scope.syncs(entity):
        return Boundary(synced=False)
    return Boundary(synced=True, filter=deciding_filter(entity, scope))


__all__ = ["Boundary", "boundary"]
