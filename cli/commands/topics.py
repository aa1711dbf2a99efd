"""``autotask-sync topics``: list the Kafka topics the services use, or create the missing ones.

    autotask-sync topics list [--output table|json|kafkatopic] [--cluster NAME]
    autotask-sync topics ensure [--partitions N] [--replication-factor N]

``list`` prints a table (name, partitions, configuration) by default; ``--output json`` one JSON
object per topic for scripts; ``--output kafkatopic`` the Strimzi ``KafkaTopic`` resources to
declare where Strimzi's topic operator manages topics (``kubectl apply -n <its namespace> -f -``),
the same resources as ``deploy/k8s/kafka-topics/`` for this deployment's prefix, partitions and
replication factor. Elsewhere ``ensure`` creates them (idempotent: existing topics are left as
they are).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections.abc import Sequence
from typing import Any

from shared.kafka import client_config, ensure_topics
from shared.messages.topics import Topics, TopicSpec
from shared.settings import BaseServiceSettings, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "ensure"])
    parser.add_argument("--partitions", type=int, default=12, help="partitions per topic")
    parser.add_argument(
        "--replication-factor",
        type=int,
        default=3,
        help="lowered to the broker count on smaller clusters (default 3)",
    )
    parser.add_argument(
        "--output",
        choices=["table", "json", "kafkatopic"],
        default="table",
        help="list: a table (default), JSON lines, or Strimzi KafkaTopic resources (YAML)",
    )
    parser.add_argument(
        "--cluster",
        default="kafka",
        metavar="NAME",
        help="list --output kafkatopic: the Strimzi Kafka cluster (strimzi.io/cluster label)",
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(BaseServiceSettings)
    topics = Topics(
        prefix=settings.topic_prefix,
        partitions=args.partitions,
        tombstone_retention=settings.tombstone_retention,
    )
    specs = topics.declarations()
    if args.action == "list":
        print(_listing(specs, args))
        return 0
    created = asyncio.run(
        ensure_topics(
            client_config(settings),
            specs,
            replication_factor=args.replication_factor,
            client_id=f"{settings.kafka_client_id}-admin",
        )
    )
    print(f"created {len(created)} of {len(specs)} topic(s)" + (f": {created}" if created else ""))
    return 0


def _listing(specs: Sequence[TopicSpec], args: argparse.Namespace) -> str:
    if args.output == "json":
        return "\n".join(
            json.dumps({"name": s.name, "partitions": s.partitions, "config": s.config})
            for s in specs
        )
    if args.output == "kafkatopic":
        resources = [
            s.kafka_topic(cluster=args.cluster, replicas=args.replication_factor) for s in specs
        ]
        return "---\n".join(_yaml(resource) for resource in resources).rstrip("\n")
    table = [("TOPIC", "PARTITIONS", "CONFIG")] + [
        (s.name, str(s.partitions), " ".join(f"{k}={v}" for k, v in s.config.items()))
        for s in specs
    ]
    widths = [max(len(row[i]) for row in table) for i in range(2)]
    return "\n".join(
        f"{name:<{widths[0]}}  {partitions:>{widths[1]}}  {config}".rstrip()
        for name, partitions, config in table
    )


def _yaml(value: dict[str, Any], indent: str = "") -> str:
    """Block YAML of nested mappings of strings and numbers (what a resource holds here)."""
    lines = []
    for key, item in value.items():
        if isinstance(item, dict) and item:
            lines.append(f"{indent}{key}:\n{_yaml(item, indent + '  ')}")
        else:
            lines.append(f"{indent}{key}: {_scalar(item)}\n")
    return "".join(lines)


_PLAIN = re.compile(r"[A-Za-z][\w./-]*")
_YAML_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "y", "n", "null"})


def _scalar(item: Any) -> str:
    """A string as it is when YAML reads it back as that string, JSON-quoted otherwise
    (``"604800000"`` stays a string, ``"no"`` is not false); anything else as JSON."""
    if isinstance(item, str) and _PLAIN.fullmatch(item) and item.lower() not in _YAML_WORDS:
        return item
    return json.dumps(item)
