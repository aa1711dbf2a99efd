"""PostgreSQL and Kafka in containers through testcontainers, for machines with a Docker engine."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import InfrastructureError

KAFKA_IMAGE = "apache/kafka:4.2.1"
POSTGRES_IMAGE = "postgres:15"


def docker_available() -> bool:
    """True when a Docker engine answers (not merely when the client is installed)."""
    if os.environ.get("AUTOTASK_SYNC_NO_DOCKER"):
        return False
    if not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        return False
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        probe = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@dataclass
class Containers:
    """Containers started for one stack; ``stop`` removes them."""

    started: list[Any]

    def stop(self) -> None:
        for container in reversed(self.started):
            container.stop()


def start_postgres_container(containers: Containers) -> str:
    try:
        from testcontainers.postgres import PostgresContainer
    except ImportError as exc:  # pragma: no cover - the docker extra is not installed
        raise InfrastructureError(
            "testcontainers is not installed: `uv sync --extra docker`"
        ) from exc
    container = PostgresContainer(
        POSTGRES_IMAGE,
        username="postgres",
        password="postgres",  # noqa: S106 - throwaway container on loopback
        dbname="autotask_sync",
        driver=None,
    )
    container.start()
    containers.started.append(container)
    return str(container.get_connection_url())


def start_kafka_container(containers: Containers) -> str:
    try:
        from testcontainers.kafka import KafkaContainer
    except ImportError as exc:  # pragma: no cover
        raise InfrastructureError(
            "testcontainers is not installed: `uv sync --extra docker`"
        ) from exc
    container = KafkaContainer(KAFKA_IMAGE).with_kraft()
    container.start()
    containers.started.append(container)
    return str(container.get_bootstrap_server())
