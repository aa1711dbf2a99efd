"""Settings of the reconciler (read once at start; docs/configuration.md lists them)."""

from __future__ import annotations

from shared.reconcile.settings import SweepSettings


class ReconcilerSettings(SweepSettings):
    """The reconciler's settings: the shared ones plus sweep schedules and guards
    (:class:`~shared.reconcile.settings.SweepSettings`)."""
