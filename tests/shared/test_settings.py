"""Settings are parsed once; bad values stop start-up with a message naming the variable."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.errors import ConfigError
from shared.settings import AutotaskSettings, BaseServiceSettings, load_settings


def test_defaults_and_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTASK_SYNC_CONNECTION", "acme-msp")
    monkeypatch.setenv("AUTOTASK_SYNC_SHUTDOWN_GRACE", "15")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1234")
    settings = load_settings(BaseServiceSettings)
    assert settings.connection == "acme-msp"
    assert settings.shutdown_grace == timedelta(seconds=15)
    assert settings.kafka_bootstrap_servers == "127.0.0.1:1234"
    with pytest.raises(ValueError, match="frozen"):
        settings.connection = "other"  # type: ignore[misc]


def test_prefixed_name_wins_over_platform_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://a@h/one")
    monkeypatch.setenv("AUTOTASK_SYNC_DATABASE_URL", "postgresql://a@h/two")
    settings = load_settings(BaseServiceSettings)
    assert settings.database_url.get_secret_value().endswith("/two")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("AUTOTASK_SYNC_HTTP_PORT", "eighty", "AUTOTASK_SYNC_HTTP_PORT"),
        ("AUTOTASK_SYNC_HTTP_PORT", "70000", "AUTOTASK_SYNC_HTTP_PORT"),
        ("AUTOTASK_SYNC_SHUTDOWN_GRACE", "soon", "AUTOTASK_SYNC_SHUTDOWN_GRACE"),
        ("AUTOTASK_SYNC_CONNECTION", "Not A Slug", "AUTOTASK_SYNC_CONNECTION"),
        ("AUTOTASK_SYNC_LOG_LEVEL", "LOUD", "AUTOTASK_SYNC_LOG_LEVEL"),
        ("AUTOTASK_SYNC_DATABASE_SSLMODE", "verify_full", "AUTOTASK_SYNC_DATABASE_SSLMODE: "),
        ("AUTOTASK_SYNC_DATABASE_SSLROOTCERT", "/nowhere/ca.pem", "/nowhere/ca.pem is not a file"),
        ("AUTOTASK_SYNC_DATABASE_SSLCERT", "/nowhere/c.pem", "AUTOTASK_SYNC_DATABASE_SSLCERT: "),
        ("AUTOTASK_SYNC_DATABASE_SSLKEY", "/nowhere/c.key", "AUTOTASK_SYNC_DATABASE_SSLKEY: "),
        ("AUTOTASK_SYNC_DATABASE_PASSWORD_FILE", "/nowhere/pw", "DATABASE_PASSWORD_FILE: "),
        ("AUTOTASK_SYNC_DATABASE_URL_FILE", "/nowhere/url", "AUTOTASK_SYNC_DATABASE_URL_FILE: "),
    ],
)
def test_malformed_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings(BaseServiceSettings)
    assert expected in str(info.value)
    assert variable in str(info.value)
    assert "docs/configuration.md" in str(info.value)


def test_error_never_repeats_a_secret_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTASK_SYNC_AUTOTASK_SECRET", "s3cr3t-value-xyz")
    monkeypatch.setenv("AUTOTASK_SYNC_AUTOTASK_IMPERSONATION_RESOURCE_ID", "s3cr3t-value-xyz")
    with pytest.raises(ConfigError) as info:
        load_settings(AutotaskSettings)
    assert "AUTOTASK_SYNC_AUTOTASK_IMPERSONATION_RESOURCE_ID" in str(info.value)
    assert "s3cr3t-value-xyz" not in str(info.value)


def test_secrets_are_masked_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTASK_SYNC_AUTOTASK_SECRET", "s3cr3t-value-xyz")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw-value-123@h/db")
    settings = load_settings(AutotaskSettings)
    assert "s3cr3t-value-xyz" not in repr(settings)
    assert "pw-value-123" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "seconds"), [("15", 15), ("500ms", 0.5), ("2m", 120), ("1h", 3600), ("PT30S", 30)]
)
def test_durations(monkeypatch: pytest.MonkeyPatch, text: str, seconds: float) -> None:
    monkeypatch.setenv("AUTOTASK_SYNC_SHUTDOWN_GRACE", text)
    assert load_settings(BaseServiceSettings).shutdown_grace.total_seconds() == seconds


def test_the_rate_limit_pause_reaches_the_client_config() -> None:
    from shared.apibudget import client_config_for
    from shared.settings import AutotaskSettings

    settings = AutotaskSettings(api_rate_limit_pause="7s", api_share=0.25)
    config = client_config_for(settings)
    assert config.limiter.rate_limit_fallback == timedelta(seconds=7)
    assert config.limiter.thread_limit_fallback == timedelta(seconds=7)
    assert config.limiter.budget.share == 0.25
