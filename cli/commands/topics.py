"""``autotask-sync topics``: list the Kafka topics the services use, or create the missing ones.

Where topics are managed as Strimzi ``KafkaTopic`` resources, ``list`` prints what to declare;
elsewhere ``ensure`` creates them (idempotent: existing topics are left as they are).
"""

from __future__ import annotations

import argparse
import asyncio
import json

from shared.kafka import client_config, ensure_topics
from shared.logging import configure_logging
from shared.messages.topics import Topics
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


def run(args: argparse.Namespace) -> int:
    settings = load_settings(BaseServiceSettings)
    configure_logging(settings.log_level, settings.log_format)
    topics = Topics(
        prefix=settings.topic_prefix,
        partitions=args.partitions,
        tombstone_retention=settings.tombstone_retention,
    )
    specs = topics.declarations()
    if args.action == "list":
        for spec in specs:
            print(json.dumps({"name": spec.name, "partitions": spec.partitions,
                              "config": spec.config}))  # fmt: skip
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
