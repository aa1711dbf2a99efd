"""The body cap and the producer's limit agree by construction: a callout the gateway answers
200 can always be produced, to the callouts topic and, dead-lettered, to the dead-letter topic."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.webhook_gateway.settings import RECORD_ALLOWANCE, GatewaySettings, body_cap_for
from shared.entities import TICKETS
from shared.errors import ConfigError
from shared.kafka import make_producer, produce
from shared.messages.callout import callout_headers, callout_key
from shared.messages.deadletter import dead_letter_headers
from shared.settings import load_settings
from tests.helpers.waiting import eventually
from tests.services.webhook_gateway.helpers import (
    Deployment,
    callout_body,
    read_topic,
    serve_gateway,
    signed_headers,
    spooled,
)

SECRET = "s3cret-key-0123"
MIB = 1024 * 1024


def test_the_default_cap_is_the_producer_limit_less_the_allowance() -> None:
    settings = GatewaySettings()
    assert settings.kafka_max_request_size == MIB
    assert settings.max_body_size == MIB - RECORD_ALLOWANCE == 1_040_384


def test_the_cap_follows_a_raised_producer_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTASK_SYNC_KAFKA_MAX_REQUEST_SIZE", str(4 * MIB))
    assert load_settings(GatewaySettings).max_body_size == 4 * MIB - RECORD_ALLOWANCE


def test_a_smaller_cap_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTASK_SYNC_MAX_BODY_SIZE", "65536")
    assert load_settings(GatewaySettings).max_body_size == 65536


@pytest.mark.parametrize(
    ("body", "producer"),
    [(str(MIB), None), (str(MIB - RECORD_ALLOWANCE + 1), None), (str(2 * MIB), str(2 * MIB))],
)
def test_a_cap_the_producer_cannot_send_is_refused_naming_both_settings(
    monkeypatch: pytest.MonkeyPatch, body: str, producer: str | None
) -> None:
    monkeypatch.setenv("AUTOTASK_SYNC_MAX_BODY_SIZE", body)
    if producer is not None:
        monkeypatch.setenv("AUTOTASK_SYNC_KAFKA_MAX_REQUEST_SIZE", producer)
    with pytest.raises(ConfigError) as refused:
        load_settings(GatewaySettings)
    message = str(refused.value)
    assert "AUTOTASK_SYNC_MAX_BODY_SIZE" in message
    assert "AUTOTASK_SYNC_KAFKA_MAX_REQUEST_SIZE" in message
    assert str(body_cap_for(int(producer or MIB))) in message  # what to set it to


def _padded_callout(size: int) -> bytes:
    body = callout_body(42, Fields={"description": ""})
    padded = body.replace(
        b'"description":""', b'"description":"' + b"x" * (size - len(body)) + b'"'
    )
    assert len(padded) == size
    return padded


@pytest.mark.integration
async def test_a_body_at_the_cap_fits_both_topics_with_the_largest_key_and_headers(
    deployment: Deployment,
) -> None:
    settings = deployment.settings()
    body = _padded_callout(settings.max_body_size)
    connection = "c" * 63  # the longest connection name
    headers = callout_headers(
        connection=connection,
        registration_id="r" * 64,
        entity=TICKETS,
        received_at=datetime.now(UTC),
        request_id="q" * 64,
    )
    key = callout_key(connection, TICKETS, 2**63 - 1)
    dead = dead_letter_headers(
        headers,
        error_class="PermissionDeniedError" * 3,
        message="\U0001f600" * 2000,  # cut at 1,000 characters of 4 bytes each
        attempts=2**31,
        first_failed_at=datetime.now(UTC),
        original_topic=deployment.topics.callouts,
    )
    producer = make_producer(
        deployment.bootstrap, client_id="test", max_request_size=settings.kafka_max_request_size
    )
    await producer.start()
    try:
        await produce(producer, deployment.topics.callouts, key=key, value=body, headers=headers)
        await produce(producer, deployment.topics.callouts_dlq, key=key, value=body, headers=dead)
    finally:
        await producer.stop()
    [on_callouts] = await read_topic(deployment.bootstrap, deployment.topics.callouts, at_least=1)
    [on_dlq] = await read_topic(deployment.bootstrap, deployment.topics.callouts_dlq, at_least=1)
    assert on_callouts.value == body
    assert on_dlq.value == body
    assert list(on_dlq.headers) == dead


@pytest.mark.integration
async def test_the_topics_take_what_the_producer_sends(deployment: Deployment) -> None:
    """max.message.bytes of the callouts and dead-letter topics is at least the producer limit
    (the broker refusing instead of the producer would fail a whole batch)."""
    limit = deployment.settings().kafka_max_request_size
    admin = AIOKafkaAdminClient(bootstrap_servers=deployment.bootstrap)
    await admin.start()
    try:
        topics = [deployment.topics.callouts, deployment.topics.callouts_dlq]
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        )
    finally:
        await admin.close()
    values = [
        int(entry[1])
        for response in described
        for resource in response.resources
        for entry in resource[4]
        if entry[0] == "max.message.bytes"
    ]
    assert len(values) == 2
    assert all(value >= limit for value in values), values


@pytest.mark.integration
async def test_the_gateway_accepts_a_body_at_the_cap_onto_kafka_and_refuses_one_byte_more(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    registration = await deployment.registration(secret=SECRET)
    settings = deployment.settings()
    at_cap = _padded_callout(settings.max_body_size)
    over = _padded_callout(settings.max_body_size + 1)
    async with serve_gateway(settings) as served:
        url = served.callout_url(registration.registration_id)
        async with http.post(url, data=at_cap, headers=signed_headers(SECRET, at_cap)) as answer:
            assert answer.status == 200
        async with aiohttp.ClientSession() as fresh:
            try:
                async with fresh.post(url, data=over, headers=signed_headers(SECRET, over)) as no:
                    refused = no.status
            except aiohttp.ClientOSError:  # answered 413 and closed before the body was sent
                refused = 413
        assert refused == 413
        records = await read_topic(deployment.bootstrap, deployment.topics.callouts, at_least=1)

        async def nothing_spooled() -> bool:
            return not await spooled(deployment.dsn)

        await eventually(nothing_spooled)
    assert [r.value for r in records] == [at_cap]
