"""The Connection model: settings, URL normalisation, headers, and no secret in any repr."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from shared.autotask import AutotaskClient, Connection, normalize_root
from shared.errors import ConfigError
from shared.settings import AutotaskSettings

SECRET = "Sup3r-Secret-Value"
CODE = "TRACKINGID0123456789ABCDEFG"


def settings(**overrides) -> AutotaskSettings:
    values = {
        "autotask_username": "api@tenant.example",
        "autotask_secret": SecretStr(SECRET),
        "autotask_integration_code": SecretStr(CODE),
    } | overrides
    return AutotaskSettings(**values)


@pytest.mark.parametrize(
    "url",
    [
        "https://webservices14.autotask.net/atservicesrest",
        "https://webservices14.autotask.net/atservicesrest/",
        "https://webservices14.autotask.net/atservicesrest//",
        "https://webservices14.autotask.net/atservicesrest/v1.0/",
        " https://webservices14.autotask.net/atservicesrest/V1.0 ",
    ],
)
def test_zone_urls_are_normalised(url):
    assert normalize_root(url) == "https://webservices14.autotask.net/atservicesrest"


def test_from_settings():
    connection = Connection.from_settings(
        settings(
            connection="acme",
            autotask_zone_url="https://webservices14.autotask.net/atservicesrest/",
            autotask_impersonation_resource_id=29682885,
        )
    )
    assert connection.name == "acme"
    assert connection.zone_url == "https://webservices14.autotask.net/atservicesrest"
    assert connection.zone_lookup_url == "https://webservices.autotask.net/atservicesrest"
    assert connection.secret.get_secret_value() == SECRET


def test_missing_credentials_name_the_variables():
    with pytest.raises(ConfigError) as info:
        Connection.from_settings(settings(autotask_secret=SecretStr(""), autotask_username=" "))
    message = str(info.value)
    assert "AUTOTASK_SYNC_AUTOTASK_USERNAME" in message
    assert "AUTOTASK_SYNC_AUTOTASK_SECRET" in message
    assert "INTEGRATION_CODE" not in message


def test_impersonation_is_sent_only_on_writes():
    connection = Connection.from_settings(settings(autotask_impersonation_resource_id=42))
    read, write = connection.headers(write=False), connection.headers(write=True)
    assert "ImpersonationResourceId" not in read
    assert write["ImpersonationResourceId"] == "42"
    assert read["ApiIntegrationCode"] == CODE
    assert read["UserName"] == "api@tenant.example"
    assert read["Secret"] == SECRET


def test_no_repr_or_validation_error_shows_a_secret():
    connection = Connection.from_settings(settings())
    client = AutotaskClient(connection)
    texts = [repr(connection), str(connection), repr(client), str(client)]
    with pytest.raises(ValidationError) as info:
        Connection(name="BAD NAME", username="u", secret=SECRET, integration_code=CODE)
    texts.append(str(info.value))
    for text in texts:
        assert SECRET not in text
        assert CODE not in text
