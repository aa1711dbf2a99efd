"""The worker's scope judge lives in :mod:`shared.scoping`, so sweeps apply the same rule."""

from shared.scoping import judge

__all__ = ["judge"]
