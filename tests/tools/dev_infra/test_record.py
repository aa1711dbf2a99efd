"""The stack record: one written by an earlier version still names its servers."""

from __future__ import annotations

import json
from pathlib import Path

from tools.dev_infra.record import Server, StackRecord
from tools.dev_infra.stack import StackEnv


def test_a_record_in_the_first_layout_names_each_server(tmp_path: Path) -> None:
    first_layout = {
        "env": {
            "DATABASE_URL": "postgresql://postgres@127.0.0.1:54321/autotask_sync",
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:39092",
        },
        "processes": {
            "postgres_pid": 4101,
            "kafka_pid": 4102,
            "data_dirs": ["/tmp/autotask-sync-pg-aaaa1111", "/tmp/autotask-sync-kafka-bbbb2222"],
            "container_ids": [],
        },
        "sources": {"postgres": "local binaries", "kafka": "local jars"},
    }
    path = tmp_path / "state.json"
    path.write_text(json.dumps(first_layout))
    record = StackRecord.load(path)
    assert record == StackRecord(
        StackEnv(
            database_url="postgresql://postgres@127.0.0.1:54321/autotask_sync",
            kafka_bootstrap_servers="127.0.0.1:39092",
        ),
        (
            Server("postgres", "local binaries", "127.0.0.1", 54321, 4101,
                   Path("/tmp/autotask-sync-pg-aaaa1111")),
            Server("kafka", "local jars", "127.0.0.1", 39092, 4102,
                   Path("/tmp/autotask-sync-kafka-bbbb2222")),
        ),
    )  # fmt: skip


def test_a_record_reads_back_as_it_was_saved(tmp_path: Path) -> None:
    record = StackRecord(
        StackEnv(database_url="postgresql://u@db.example:5432/x", kafka_bootstrap_servers="k:9092"),
        (
            Server("postgres", "environment", "db.example", 5432),
            Server("kafka", "local jars", "127.0.0.1", 39092, 42, tmp_path / "kafka"),
        ),
        ("container",),
    )
    record.save(tmp_path / "state.json")
    assert StackRecord.load(tmp_path / "state.json") == record
    assert StackRecord.load(tmp_path / "none.json") is None
