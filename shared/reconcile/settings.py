"""Settings of the sweeps, shared by every process that runs them (the reconciler service, the
worker's in-process scheduler, the ``autotask-sync sweep|backfill|resync`` commands).

docs/configuration.md ("Reconciliation") lists them with their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, TypeAdapter, field_validator
from pydantic_settings import NoDecode

from shared.entities import EntitySpec, find_rest_name
from shared.reconcile.delete_guard import DeletePolicy
from shared.settings import AutotaskSettings, Duration, Within

_DURATION: TypeAdapter[timedelta] = TypeAdapter(Duration)


def _intervals(value: Any) -> Any:
    """``"Resources=1h, Contracts=30m"`` from the environment; mappings pass through."""
    if isinstance(value, str):
        pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError("expected Entity=duration pairs, comma-separated")
        return {name.strip(): _DURATION.validate_python(d.strip()) for name, d in pairs}
    return value


SweepInterval = Annotated[Duration, Within("5s", "24h")]
"""An incremental sweep interval: each sweep costs API calls, so not more often than this."""
Intervals = Annotated[dict[str, SweepInterval], NoDecode, BeforeValidator(_intervals)]


@dataclass(frozen=True, slots=True)
class SweepPolicy:
    """How runs behave, from the settings (the engine reads this, never the environment)."""

    overlap: timedelta = timedelta(minutes=2)
    page_size: int = 500
    deletes: DeletePolicy = field(default_factory=DeletePolicy)
    request_window: timedelta = timedelta(minutes=2)
    lock_wait: timedelta = timedelta(minutes=10)
    progress_every: int = 20
    """Pages between two progress log lines."""


class SweepSettings(AutotaskSettings):
    """What the sweeps need besides the connection settings."""

    sweep_interval: SweepInterval = Field(
        default=timedelta(minutes=5),
        description="Incremental sweep of each connection and entity this often.",
    )
    sweep_intervals: Intervals = Field(
        default_factory=dict,
        description="Per-entity overrides of SWEEP_INTERVAL: 'Resources=1h,Contracts=30m'.",
    )
    sweep_overlap: Annotated[Duration, Within("1s", "24h")] = Field(
        default=timedelta(minutes=2),
        description="Incremental sweeps re-read this far behind the watermark (Autotask stamps "
        "land slightly out of order).",
    )
    sweep_page_size: int = Field(default=500, ge=1, le=500, description="Rows per query page.")
    id_sweep_interval: Annotated[Duration, Within("1m", "168h")] = Field(
        default=timedelta(hours=1),
        description="Id-only sweep (delete detection) of entities without a delete log: a "
        "dropped Delete callout of one is found within this interval; each sweep costs about "
        "ceil(rows/500) calls per entity (docs/architecture.md, Reconciliation).",
    )
    metadata_interval: Annotated[Duration, Within("1m", "168h")] = Field(
        default=timedelta(hours=6), description="Refresh of picklists and UDF definitions."
    )
    mass_delete_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Refuse a delete detection that would delete more than this share of an "
        "entity's live rows.",
    )
    mass_delete_min: int = Field(
        default=5,
        ge=0,
        description="...unless it deletes fewer rows than this (small mirrors lose a large "
        "share to one delete).",
    )
    backfill_on_first_load: bool = Field(
        default=True,
        description="Backfill an entity the first time a connection syncs it (else sweeps "
        "start from now).",
    )
    sweep_concurrency: int = Field(
        default=2, ge=1, description="Runs at once per process (each holds one lock)."
    )
    sweep_check_interval: Annotated[Duration, Within("100ms", "10m")] = Field(
        default=timedelta(seconds=15), description="How often the scheduler looks for due work."
    )
    sweep_request_window: Annotated[Duration, Within("1s", "24h")] = Field(
        default=timedelta(minutes=2),
        description="The same request (connection, entity, mode) made again within this runs "
        "once (MSPortal's rule).",
    )
    sweep_lock_wait: Annotated[Duration, Within("1s", "24h")] = Field(
        default=timedelta(minutes=10),
        description="How long a command waits for a running sweep of the same entity.",
    )
    control_group: str = Field(
        default="autotask-sync-reconciler",
        description="Consumer group reading SweepRequested from the control topic (shared by "
        "the reconciler and the workers' schedulers, so each request is handled once).",
    )

    @field_validator("sweep_intervals")
    @classmethod
    def _known_entities(cls, value: dict[str, timedelta]) -> dict[str, timedelta]:
        out = {}
        for name, interval in value.items():
            spec = find_rest_name(name)
            if spec is None:
                raise ValueError(f"unknown entity {name!r}")
            out[spec.rest_name] = interval
        return out

    def interval(self, entity: EntitySpec) -> timedelta:
        """The incremental sweep interval of ``entity``."""
        return self.sweep_intervals.get(entity.rest_name, self.sweep_interval)

    def policy(self) -> SweepPolicy:
        return SweepPolicy(
            overlap=self.sweep_overlap,
            page_size=self.sweep_page_size,
            deletes=DeletePolicy(max_share=self.mass_delete_share, min_rows=self.mass_delete_min),
            request_window=self.sweep_request_window,
            lock_wait=self.sweep_lock_wait,
        )


__all__ = ["SweepPolicy", "SweepSettings"]
