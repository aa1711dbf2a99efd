"""How long the change topics keep tombstones: a setting, checked at start, declared on every
change topic and on no other."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.entities import REGISTRY
from shared.errors import ConfigError
from shared.messages.topics import Topics
from shared.settings import BaseServiceSettings, load_settings


def test_the_change_topics_keep_tombstones_as_long_as_configured():
    topics = Topics(tombstone_retention=timedelta(days=3))
    declared = {spec.name: spec.config for spec in topics.declarations()}
    changes = {topics.changes(entity) for entity in REGISTRY}
    assert {name: config.get("delete.retention.ms") for name, config in declared.items()} == {
        name: "259200000" if name in changes else None for name in declared
    }
    default = {spec.name: spec.config for spec in Topics().declarations()}
    assert default[Topics().changes(REGISTRY[0])]["delete.retention.ms"] == "86400000"


def test_the_setting_takes_durations_and_refuses_what_is_surely_a_mistake(monkeypatch):
    monkeypatch.setenv("AUTOTASK_SYNC_TOMBSTONE_RETENTION", "72h")
    assert load_settings(BaseServiceSettings).tombstone_retention == timedelta(days=3)
    monkeypatch.setenv("AUTOTASK_SYNC_TOMBSTONE_RETENTION", "24")  # seconds, not hours
    with pytest.raises(ConfigError, match="AUTOTASK_SYNC_TOMBSTONE_RETENTION"):
        load_settings(BaseServiceSettings)
