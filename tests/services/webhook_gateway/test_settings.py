"""The gateway's settings: parsed from the environment, durations as timedelta, all documented."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from services.webhook_gateway.settings import GatewaySettings
from shared.errors import ConfigError
from shared.settings import BaseServiceSettings, load_settings

DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_defaults_keep_the_answer_well_inside_autotasks_10_s() -> None:
    settings = GatewaySettings()
    # The body cap leaves room in the producer's request for the key and headers.
    assert settings.max_body_size == settings.kafka_max_request_size - 8 * 1024
    assert settings.produce_deadline + settings.spool_deadline < timedelta(seconds=10)
    assert settings.deactivation_interval == timedelta(minutes=15)


def test_values_come_from_the_environment_with_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTASK_SYNC_PRODUCE_DEADLINE", "750ms")
    monkeypatch.setenv("AUTOTASK_SYNC_DEDUP_WINDOW", "2m")
    monkeypatch.setenv("AUTOTASK_SYNC_MAX_BODY_SIZE", "65536")
    settings = load_settings(GatewaySettings)
    assert settings.produce_deadline == timedelta(milliseconds=750)
    assert settings.dedup_window == timedelta(minutes=2)
    assert settings.max_body_size == 65536


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUTOTASK_SYNC_PRODUCE_DEADLINE", "0"),
        ("AUTOTASK_SYNC_MAX_BODY_SIZE", "10"),
        ("AUTOTASK_SYNC_SPOOL_DRAIN_BATCH", "lots"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings(GatewaySettings)


def test_every_gateway_variable_is_documented_without_a_unit_in_its_name() -> None:
    documented = DOCS.read_text()
    own = set(GatewaySettings.model_fields) - set(BaseServiceSettings.model_fields)
    assert own, "the gateway has settings of its own"
    for name in sorted(own):
        assert f"`AUTOTASK_SYNC_{name.upper()}`" in documented, name
        assert not name.endswith(("_s", "_ms", "_seconds", "_bytes", "_mib")), name
