"""Kafka topic declarations: names, partitions and configuration, created explicitly.

Names are defaults built from a prefix (``autotask``); the callout, control and dead-letter topics
and one compacted change topic per registry entity, i.e. per mirror table, whether a connection
syncs it by default or only when its scope asks (architecture.md, "Kafka topics").

A change topic is compacted: the latest event per key stays forever. A removal ends with a
tombstone (null value), which compaction keeps ``tombstone_retention`` (the change topics'
``delete.retention.ms``, ``AUTOTASK_SYNC_TOMBSTONE_RETENTION``) before the key disappears: a
consumer further behind than that, or slower to read the topic from the start, can miss the
removal and keep the row (docs/configuration.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.entities import REGISTRY, EntitySpec

DAY_MS = 24 * 60 * 60 * 1000
DEFAULT_TOMBSTONE_RETENTION = timedelta(days=1)
_MILLISECOND = timedelta(milliseconds=1)
STRIMZI_API_VERSION = "kafka.strimzi.io/v1beta2"
"""The ``KafkaTopic`` resources' API version (deploy/k8s/kafka-topics/)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic as it should exist on the cluster."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    replication_factor: int = -1  # -1: the broker's default.replication.factor

    def kafka_topic(self, *, cluster: str, replicas: int | None = None) -> dict[str, Any]:
        """This topic as a Strimzi ``KafkaTopic`` resource of the Kafka cluster ``cluster``
        (``replicas`` unset: left to the overlay that patches it in)."""
        spec: dict[str, Any] = {"topicName": self.name, "partitions": self.partitions}
        if replicas is not None:
            spec["replicas"] = replicas
        spec["config"] = dict(self.config)
        return {
            "apiVersion": STRIMZI_API_VERSION,
            "kind": "KafkaTopic",
            "metadata": {
                # Resource names are DNS subdomains; the topic's own name goes in topicName.
                "name": re.sub(r"[^a-z0-9-]", "-", self.name.lower()),
                "labels": {"strimzi.io/cluster": cluster},
            },
            "spec": spec,
        }


@dataclass(frozen=True, slots=True)
class Topics:
    """The project's topic names for one deployment (prefix and partition counts applied)."""

    prefix: str = "autotask"
    partitions: int = 12
    tombstone_retention: timedelta = DEFAULT_TOMBSTONE_RETENTION
    """``delete.retention.ms`` of the change topics."""

    @property
    def callouts(self) -> str:
        return f"{self.prefix}.callouts.v1"

    @property
    def callouts_dlq(self) -> str:
        return f"{self.prefix}.callouts.dlq.v1"

    @property
    def control(self) -> str:
        return f"{self.prefix}.control.v1"

    def changes(self, entity: EntitySpec) -> str:
        """The compacted change topic of ``entity``, e.g. ``autotask.tickets.v1``."""
        return f"{self.prefix}.{entity.topic_suffix}.v1"

    def declarations(self, entities: list[EntitySpec] | None = None) -> list[TopicSpec]:
        """Every topic the services need, with its configuration."""
        entities = list(REGISTRY) if entities is None else entities
        specs = [
            # Raw callouts, kept a week so they can be replayed after a bad deploy.
            TopicSpec(
                self.callouts,
                self.partitions,
                {"retention.ms": str(7 * DAY_MS), "cleanup.policy": "delete"},
            ),
            TopicSpec(
                self.callouts_dlq,
                self.partitions,
                {"retention.ms": str(30 * DAY_MS), "cleanup.policy": "delete"},
            ),
            TopicSpec(
                self.control, 3, {"retention.ms": str(7 * DAY_MS), "cleanup.policy": "delete"}
            ),
        ]
        for entity in entities:
            specs.append(
                TopicSpec(
                    self.changes(entity),
                    self.partitions,
                    # Compacted: the latest state per key forever; tombstones kept long enough
                    # for consumers that are behind to still see removals.
                    {
                        "cleanup.policy": "compact",
                        "delete.retention.ms": str(self.tombstone_retention // _MILLISECOND),
                        "min.compaction.lag.ms": str(60 * 60 * 1000),
                    },
                )
            )
        return specs
