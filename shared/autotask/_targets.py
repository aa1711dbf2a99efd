"""What a call is addressed to: an entity (``"Tickets"``) or a child collection.

Child collections live under a parent row, ``/{Parent}/{id}/{Child}`` (autotask-api.md §3):
ticket notes under tickets, and the webhook ``Fields`` / ``ExcludedResources`` the provisioner
manages under ``{X}Webhooks``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class Child:
    """A child collection, ``/{parent}/{parent_id}/{collection}``.

    ``Child("TicketWebhooks", 12, "Fields")`` addresses webhook 12's fields.
    """

    parent: str
    parent_id: int
    collection: str

    @property
    def path(self) -> str:
        return f"{self.parent}/{self.parent_id}/{self.collection}"

    @property
    def endpoint(self) -> str:
        """Limiter key and metric label: the parent root.

        Whether Autotask counts a child call's thread against the parent or the child entity
        is undocumented; sharing the parent's slots is the reading that cannot overrun.
        """
        return self.parent

    @property
    def label(self) -> str:
        """For messages: ``TicketWebhooks/Fields`` (no id)."""
        return f"{self.parent}/{self.collection}"


Target: TypeAlias = str | Child


def path_of(target: Target) -> str:
    """URL path below ``/v1.0/``."""
    return target if isinstance(target, str) else target.path


def endpoint_of(target: Target) -> str:
    """The endpoint name used for limits and metrics."""
    return target if isinstance(target, str) else target.endpoint


def label_of(target: Target) -> str:
    """The name used in messages."""
    return target if isinstance(target, str) else target.label


__all__ = ["Child", "Target", "endpoint_of", "label_of", "path_of"]
