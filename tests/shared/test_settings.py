"""Settings are parsed once; bad values stop start-up with a message naming the variable."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from services.webhook_gateway.settings import GatewaySettings
from shared.errors import ConfigError
from shared.reconcile.settings import SweepSettings
from shared.settings import (
    ALLOW_UNKNOWN,
    DEVELOPMENT_VARIABLES,
    ENV_PREFIX,
    SERVICE_VARIABLES,
    AutotaskSettings,
    BaseServiceSettings,
    Within,
    env_name,
    load_settings,
    variables,
)
from tests.deploy import codebase

ROOT = codebase.ROOT
DOCS = ROOT / "docs" / "configuration.md"


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
    ("text", "seconds"), [("15", 15), ("1500ms", 1.5), ("2m", 120), ("1h", 3600), ("PT30S", 30)]
)
def test_durations(monkeypatch: pytest.MonkeyPatch, text: str, seconds: float) -> None:
    monkeypatch.setenv("AUTOTASK_SYNC_STARTUP_WAIT", text)
    assert load_settings(BaseServiceSettings).startup_wait.total_seconds() == seconds


def test_the_rate_limit_pause_reaches_the_client_config() -> None:
    from shared.apibudget import client_config_for
    from shared.settings import AutotaskSettings

    settings = AutotaskSettings(api_rate_limit_pause="7s", api_share=0.25)
    config = client_config_for(settings)
    assert config.limiter.rate_limit_fallback == timedelta(seconds=7)
    assert config.limiter.thread_limit_fallback == timedelta(seconds=7)
    assert config.limiter.budget.share == 0.25


# --- Variables no process reads -----------------------------------------------------------------


def test_a_misspelt_variable_stops_the_start_naming_the_setting_it_resembles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_PREFIX + "SWEEP_INTERVALL", "5m")
    with pytest.raises(ConfigError) as info:
        load_settings(BaseServiceSettings)
    assert str(info.value) == (
        f"invalid configuration: {ENV_PREFIX}SWEEP_INTERVALL is not a setting (did you mean "
        "AUTOTASK_SYNC_SWEEP_INTERVAL?); list variables set on purpose in "
        "AUTOTASK_SYNC_ALLOW_UNKNOWN (see docs/configuration.md)"
    )


def test_a_variable_of_another_process_is_no_mistake(monkeypatch: pytest.MonkeyPatch) -> None:
    """One environment for every service (a shell, the demo, a shared ConfigMap): the gateway
    ignores the worker's, the provisioner's and the development tools' variables."""
    monkeypatch.setenv("AUTOTASK_SYNC_CONSUMER_GROUP", "workers")
    monkeypatch.setenv("AUTOTASK_SYNC_SWEEP_INTERVAL", "1h")
    monkeypatch.setenv("AUTOTASK_SYNC_GATEWAY_PUBLIC_URL", "https://hooks.example.com")
    monkeypatch.setenv("AUTOTASK_SYNC_SOAK", "10")
    assert load_settings(GatewaySettings).connection == "default"


def test_variables_set_on_purpose_pass_when_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PREFIX + "TEAM_CONTACT", "ops@example.com")
    monkeypatch.setenv(ENV_PREFIX + "BUILD_LABEL", "42")
    with pytest.raises(ConfigError, match=f"BUILD_LABEL is not a setting; {ENV_PREFIX}TEAM_"):
        load_settings(BaseServiceSettings)
    monkeypatch.setenv(ALLOW_UNKNOWN, f"{ENV_PREFIX}team_contact, {ENV_PREFIX}BUILD_LABEL")
    assert load_settings(BaseServiceSettings).connection == "default"


def test_the_variables_kubernetes_sets_for_a_service_are_no_mistake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where service links are on, a Service named autotask-sync-gateway puts its address in
    every pod of the namespace as <prefix>GATEWAY_SERVICE_HOST, ...; a typo has no
    _SERVICE_HOST with it."""
    service = ENV_PREFIX + "GATEWAY"  # spelt out, the names would read as settings here
    links = {
        "SERVICE_HOST": "10.0.0.7",
        "SERVICE_PORT": "8080",
        "SERVICE_PORT_HTTP": "8080",
        "PORT": "tcp://10.0.0.7:8080",
        "PORT_8080_TCP": "tcp://10.0.0.7:8080",
        "PORT_8080_TCP_PROTO": "tcp",
        "PORT_8080_TCP_PORT": "8080",
        "PORT_8080_TCP_ADDR": "10.0.0.7",
    }
    for name, value in links.items():
        monkeypatch.setenv(f"{service}_{name}", value)
    assert load_settings(GatewaySettings).connection == "default"
    monkeypatch.setenv(ENV_PREFIX + "METRICS_PORT", "9100")  # no METRICS_SERVICE_HOST with it
    with pytest.raises(ConfigError, match=ENV_PREFIX + "METRICS_PORT is not a setting"):
        load_settings(GatewaySettings)


def test_the_list_of_service_variables_is_what_the_service_classes_read() -> None:
    """Each process knows the others' variables through SERVICE_VARIABLES: a setting added to a
    service's class and not to the list would stop every other service."""
    read_elsewhere = codebase.all_variables() - variables(AutotaskSettings)
    assert sorted(read_elsewhere - SERVICE_VARIABLES) == [], "missing from SERVICE_VARIABLES"
    assert sorted(SERVICE_VARIABLES - read_elsewhere) == [], "read by no settings class"


UNKNOWN_ON_PURPOSE = {"AUTOTASK_SYNC_WORKER_THREADS", "AUTOTASK_SYNC_SWEEP_INTERVALL"}
"""Named in the repository as variables no process reads: tests/deploy/test_policies.py puts the
first in a manifest the deployment rules must refuse, docs/configuration.md shows the error the
second (misspelt) gets."""
VARIABLE = re.compile(r"AUTOTASK_SYNC_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_*{])")
"""A full variable name (``AUTOTASK_SYNC_API_*``, ``AUTOTASK_SYNC_DATABASE_{...}`` are not); a
prefix of known names (``startswith("AUTOTASK_SYNC_DATABASE")``) is no variable either."""


def test_every_variable_the_repository_names_is_known() -> None:
    """The demo, the tests, the tools, the manifests and the docs set only variables some
    process reads, or the development tools' (DEVELOPMENT_VARIABLES): none of them stops a
    service started in the same environment."""
    known = codebase.all_variables() | DEVELOPMENT_VARIABLES | {ALLOW_UNKNOWN}
    roots = ["shared", "services", "cli", "tools", "tests", "bench", "deploy", "docs", ".ci"]
    files = [ROOT / name for name in ("Makefile", "README.md", "Dockerfile", "CHANGELOG.md")]
    files += [p for root in roots for p in (ROOT / root).rglob("*") if _text_file(p)]
    named: dict[str, str] = {}
    for path in files:
        for name in VARIABLE.findall(path.read_text(encoding="utf-8", errors="replace")):
            named.setdefault(name, str(path.relative_to(ROOT)))
    assert len(named) > 100
    prefixes = {name for name in named if any(k.startswith(name + "_") for k in known)}
    unknown = {name: where for name, where in named.items() if name not in known | prefixes}
    assert unknown.keys() == UNKNOWN_ON_PURPOSE, unknown


def _text_file(path: Path) -> bool:
    return path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".pyc"}


# --- Durations within bounds, URLs well formed -----------------------------------------------


def _duration_fields() -> list[tuple[type[BaseServiceSettings], str]]:
    """Every duration setting, once, with the class that declares it."""
    found: dict[str, type[BaseServiceSettings]] = {}
    for cls in codebase.settings_classes():
        for name, field in cls.model_fields.items():
            if field.annotation is timedelta and name not in found:
                found[name] = cls
    return [(cls, name) for name, cls in sorted(found.items())]


@pytest.mark.parametrize(
    ("cls", "field_name"), _duration_fields(), ids=[n for _c, n in _duration_fields()]
)
def test_every_duration_has_bounds_named_when_a_value_leaves_them(
    monkeypatch: pytest.MonkeyPatch, cls: type[BaseServiceSettings], field_name: str
) -> None:
    field = cls.model_fields[field_name]
    bounds = [m for m in field.metadata if isinstance(m, Within)]
    assert len(bounds) == 1, f"{field_name} has no Within(low, high)"
    within = bounds[0]
    assert within.low <= field.default <= within.high
    variable = env_name(field_name)
    documented = f"| `{variable}` | `{within.low_text}` | `{within.high_text}` |"
    assert documented in DOCS.read_text(), "docs/configuration.md, Duration bounds"
    tries = [("1000000h", f"must be at most {within.high_text}")]
    if within.low > timedelta(0):
        tries.append(("0", f"must be at least {within.low_text}"))
    for value, expected in tries:
        monkeypatch.setenv(variable, value)
        with pytest.raises(ConfigError) as info:
            load_settings(cls)
        assert f"{variable}: {expected}" in str(info.value)


def test_the_issues_sweep_interval_of_zero_is_refused_also_per_entity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTOTASK_SYNC_SWEEP_INTERVALS", "Resources=1h,Contracts=0")
    with pytest.raises(ConfigError) as info:
        load_settings(SweepSettings)
    assert "AUTOTASK_SYNC_SWEEP_INTERVALS: Contracts: must be at least 5s" in str(
        info.value
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("kafka:90x2", "the address has a port that is not a number between 1 and 65535"),
        ("kafka:9092,kafka2:70000", "entry 2 of 2 has a port that is not a number"),
        ("PLAINTEXT://kafka:9092", "the address has a scheme: write host:port"),
        ("kafka:9092,,kafka2:9092", "entry 2 of 3 is empty"),
        ("kafka 9092", "the address contains a space"),
        (":9092", "the address names no host"),
    ],
)
def test_a_malformed_kafka_address_is_named_without_its_value(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.delenv("AUTOTASK_SYNC_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", value)
    with pytest.raises(ConfigError) as info:
        load_settings(BaseServiceSettings)
    assert f"KAFKA_BOOTSTRAP_SERVERS: {expected}" in str(info.value)
    assert "AUTOTASK_SYNC_KAFKA_BOOTSTRAP_SERVERS" not in str(info.value)  # not what was set
    assert value not in str(info.value)


def test_well_formed_kafka_addresses_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-0.kafka:9092, [::1]:9093,kafka-2,::1")
    assert load_settings(BaseServiceSettings).kafka_bootstrap_servers.startswith("kafka-0")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("AUTOTASK_SYNC_AUTOTASK_ZONE_URL", "webservices14.autotask.net/rest", "must start with"),
        ("AUTOTASK_SYNC_AUTOTASK_ZONE_URL", "https:///atservicesrest", "names no host"),
        ("AUTOTASK_SYNC_AUTOTASK_ZONE_LOOKUP_URL", "https://h:99999/x", "has a port that is"),
        ("AUTOTASK_SYNC_AUTOTASK_ZONE_LOOKUP_URL", "https://h/a b", "must not contain spaces"),
    ],
)
def test_a_malformed_zone_url_is_named_without_its_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings(AutotaskSettings)
    assert f"{variable}: {expected}" in str(info.value)
    assert value not in str(info.value)


def test_the_simulators_zone_urls_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTASK_SYNC_AUTOTASK_ZONE_LOOKUP_URL", "http://127.0.0.1:8089/atrest")
    settings = load_settings(AutotaskSettings)
    assert settings.autotask_zone_lookup_url == "http://127.0.0.1:8089/atrest"
