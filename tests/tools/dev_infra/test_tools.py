"""A missing Java, Maven or PostgreSQL gives an error saying what to install; a broker is never
started again on storage that was not formatted."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import InfrastructureError, MissingToolError
from tools.dev_infra import kafka, postgres
from tools.dev_infra.kafka import new_cluster_id


def test_missing_java_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError, match=r"'java'.*openjdk"):
        kafka.start_kafka(tmp_path / "k", owned_by_caller=True)


def test_missing_maven_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError, match=r"'mvn'.*maven"):
        kafka.resolve_jars(tmp_path / "cache")


def test_missing_postgres_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(postgres, "_binary_dirs", list)
    with pytest.raises(MissingToolError, match=r"'initdb'.*postgresql.*DATABASE_URL"):
        postgres.start_postgres(tmp_path / "pg", owned_by_caller=True)


def test_cluster_ids_are_valid() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_a_broker_is_not_started_again_without_its_formatted_storage(tmp_path: Path) -> None:
    with pytest.raises(InfrastructureError, match=r"no formatted Kafka storage"):
        kafka.restart_kafka(tmp_path, owned_by_caller=True)
