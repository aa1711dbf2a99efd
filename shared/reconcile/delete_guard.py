"""What a delete detection may delete: a pure decision (architecture.md, "Delivery semantics" 5).

Absence is not deletion. A row the mirror holds but a read did not return is only a
*candidate*; it may be deleted when

1. the read was complete: every page of the id walk came back (a failure on any page means the
   walk proves nothing, so nothing is deleted);
2. the share of live rows that would go stays within the policy (a mass disappearance, such as
   an API user who lost permissions or a tenant answering half its rows, is refused and
   reported instead of acted on);
3. a direct ``in`` query for the candidates does not return them (returned means not deleted).

Nothing here does I/O; :mod:`shared.reconcile.delete_sweep` reads, confirms and applies.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeletePolicy:
    """The mass-delete guard."""

    max_share: float = 0.2
    """Largest share of the live rows one detection may delete."""
    min_rows: int = 5
    """Deleting fewer rows than this is never a mass delete (one delete in a mirror of three
    is a third of it)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why nothing may be deleted."""

    reason: str
    candidates: int
    live: int

    @property
    def share(self) -> float:
        return self.candidates / self.live if self.live else 1.0


def candidates(*, live: Iterable[int], seen: Collection[int]) -> frozenset[int]:
    """Live mirror ids the read did not return."""
    return frozenset(i for i in live if i not in seen)


def check(
    *, complete: bool, live: int, candidates: int, policy: DeletePolicy, what: str = "rows"
) -> Refusal | None:
    """None when ``candidates`` of ``live`` rows may be deleted, else why not."""
    if not complete:
        return Refusal(
            f"the read of the {what} was not complete: nothing is deleted after a partial read",
            candidates,
            live,
        )
    if candidates < max(1, policy.min_rows):
        return None
    if live <= 0 or candidates / live > policy.max_share:
        share = f"{candidates / live:.0%}" if live else "all"
        return Refusal(
            f"{candidates} of {live} live {what} ({share}) are missing from Autotask, more than "
            f"the {policy.max_share:.0%} the mass-delete guard allows: nothing was deleted. "
            "Check the API user's security level and the tenant; if the deletions are real, "
            "run `autotask-sync sweep --ids --max-delete-share 1.0` (or raise "
            "AUTOTASK_SYNC_MASS_DELETE_SHARE)",
            candidates,
            live,
        )
    return None


def confirmed(*, candidates: Iterable[int], still_there: Collection[int]) -> frozenset[int]:
    """The candidates the confirming ``in`` query did not return: these are deleted."""
    return frozenset(i for i in candidates if i not in still_there)


__all__ = ["DeletePolicy", "Refusal", "candidates", "check", "confirmed"]
