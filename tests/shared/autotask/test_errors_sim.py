"""Every error class over real HTTP, with its message; and no secret anywhere we write."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY, generate_latest

from shared.autotask import (
    BudgetConfig,
    ClientConfig,
    LimiterConfig,
    ManualClock,
    Query,
    RetryPolicy,
)
from shared.errors import (
    AuthenticationError,
    AutotaskConnectionError,
    AutotaskError,
    AutotaskServerError,
    DeadlineExceededError,
    HourlyLimitError,
    InvalidQueryError,
    NotFoundError,
    PermissionDeniedError,
    ThreadLimitError,
    ZoneLookupError,
)
from tests.helpers.clients import MakeClient, api_rows, requests_to
from tools.autotask_sim import ApiBehaviour, EntityPermission, SecurityLevel, SimulatorConfig
from tools.autotask_sim.server import Simulator

ONCE = ClientConfig(retry=RetryPolicy(max_attempts=1))


@pytest.fixture
def sim_config(request) -> SimulatorConfig:
    api = getattr(request, "param", ApiBehaviour())
    return SimulatorConfig(seed=3, companies=10, tickets=20, api=api)


@pytest.mark.parametrize(
    "sim_config",
    [ApiBehaviour(unauthorized_body="empty"), ApiBehaviour(unauthorized_body="errors")],
    indirect=True,
    ids=["empty-body", "errors-body"],
)
async def test_wrong_credentials(sim: Simulator, make_client: MakeClient):
    client = await make_client(secret="not-the-secret")
    with pytest.raises(AuthenticationError) as info:
        await client.count("Companies")
    message = str(info.value)
    assert info.value.status == 401
    assert "check the username, secret and integration code" in message
    assert "the username must be the API-only user's" in message
    assert sim.username in message


@pytest.mark.parametrize(
    "sim_config",
    [ApiBehaviour(permission_denied_status=403), ApiBehaviour(permission_denied_status=500)],
    indirect=True,
    ids=["403", "500-with-text"],
)
async def test_permission_denied_names_the_permission_and_entity(sim, make_client: MakeClient):
    sim.set_security(
        SecurityLevel(
            permissions={
                "Companies": EntityPermission(read=False),
                "Tickets": EntityPermission(create=False),
            },
            can_create_webhooks=False,
        )
    )
    client = await make_client()
    with pytest.raises(
        PermissionDeniedError, match="lacks query \\(view\\) permission on Companies"
    ):
        await client.count("Companies")
    with pytest.raises(PermissionDeniedError, match="lacks add \\(create\\) permission on Tickets"):
        await client.create("Tickets", {"title": "x"})
    with pytest.raises(PermissionDeniedError, match="lacks 'Can create WebHooks'"):
        await client.create("TicketWebhooks", {"WebhookUrl": "https://x", "DeactivationUrl": "y"})
    assert requests_to(sim, "Companies") == 1  # not retried


async def test_not_found(sim, client):
    with pytest.raises(NotFoundError, match="Companies 999999 was not found"):
        await client.get("Companies", 999_999)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"filter": [{"op": "gte", "field": "id", "value": 0}], "MaxRecords": 501},
         "must be between 1 and 500"),
        ({"filter": [{"op": "eq", "field": "nope", "value": 1}]}, "unable to find field nope"),
        ({"filter": [{"op": "like", "field": "id", "value": 1}]}, "unknown operator 'like'"),
        ({"filter": []}, "at least one condition"),
    ],
)  # fmt: skip
async def test_invalid_queries_say_why_and_are_not_retried(sim, client, body, text):
    with pytest.raises(InvalidQueryError, match=text) as info:
        await client.query_all("Tickets", body)
    assert "Autotask rejected POST Tickets as invalid" in str(info.value)
    assert requests_to(sim, "Tickets") == 1


async def test_server_errors_are_retried_then_raised(sim, make_client, clock: ManualClock):
    sim.set_faults(rate_500=1.0, endpoints=["Companies"])
    client = await make_client(config=ClientConfig(retry=RetryPolicy(max_attempts=3)))
    with pytest.raises(AutotaskServerError, match="server error on GET Companies \\(HTTP 500\\)"):
        await client.get("Companies", api_rows(sim, "Companies")[0]["id"])
    assert requests_to(sim, "Companies") == 3
    assert len(clock.sleeps) == 2


async def test_deadline(sim, make_client, clock: ManualClock):
    sim.set_faults(rate_500=1.0)
    policy = RetryPolicy(
        max_attempts=100,
        base_delay=timedelta(seconds=10),
        max_delay=timedelta(seconds=10),
        deadline=timedelta(seconds=30),
    )
    client = await make_client(config=ClientConfig(retry=policy))
    with pytest.raises(DeadlineExceededError, match="within the 30 s deadline; last error"):
        await client.count("Companies")
    assert clock.slept <= 30


@pytest.mark.parametrize("recover", [True, False])
async def test_truncated_bodies_are_retriable(sim, make_client, clock: ManualClock, recover):
    sim.set_faults(rate_truncated=1.0)
    if recover:

        async def heal(_seconds: float) -> None:
            sim.clear_faults()

        clock.on_sleep.append(heal)
    client = await make_client(config=ClientConfig(retry=RetryPolicy(max_attempts=3)))
    if recover:
        assert await client.query_all("Companies") == api_rows(sim, "Companies")
        return
    with pytest.raises(AutotaskConnectionError, match="truncated or malformed JSON"):
        await client.query_all("Companies")


async def test_connection_reset(sim, make_client):
    client = await make_client(config=ONCE, zone_url=sim.rest_url)
    sim.set_faults(outage="reset")
    with pytest.raises(AutotaskConnectionError, match="did not complete") as info:
        await client.count("Companies")
    assert info.value.retriable


async def test_hourly_limit_message(sim, make_client):
    sim.set_limits(hourly_limit=2)
    # Without usage readings the client cannot see the limit coming and gets the 429.
    unbudgeted = LimiterConfig(budget=BudgetConfig(enabled=False))
    client = await make_client(config=ClientConfig(retry=ONCE.retry, limiter=unbudgeted))
    await client.count("Companies")
    await client.count("Companies")
    with pytest.raises(HourlyLimitError, match="hourly API request threshold is used up"):
        await client.count("Companies")


async def test_thread_limit_message(sim, make_client):
    sim.set_limits(thread_limit=1)
    sim.set_faults(latency=timedelta(milliseconds=20))
    config = ClientConfig(
        retry=RetryPolicy(max_attempts=1), limiter=LimiterConfig(max_concurrency=3)
    )
    client = await make_client(config=config)
    await client.threshold_information()
    results = await asyncio.gather(
        *(client.count("Companies") for _ in range(3)), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, ThreadLimitError)]
    assert errors
    assert "thread limit hit on POST Companies (HTTP 429)" in str(errors[0])
    assert "Thread Threshold Exceeded" in str(errors[0])


async def test_no_secret_in_any_error_repr_log_or_metric(sim, make_client, capsys):
    secret, code = sim.secret, sim.integration_code
    seen: list[BaseException] = []

    async def collect(make) -> None:
        try:
            await make()
        except AutotaskError as exc:
            seen.append(exc)

    good = await make_client(config=ONCE)
    bad_secret = await make_client(config=ONCE, secret=secret[::-1])
    bad_code = await make_client(config=ONCE, integration_code=code[::-1])
    unknown = await make_client(config=ONCE, username="who@example.com")
    await collect(lambda: bad_secret.count("Tickets"))
    await collect(lambda: bad_code.count("Tickets"))
    await collect(lambda: unknown.count("Tickets"))
    await collect(lambda: good.get("Tickets", 1))
    await collect(lambda: good.query_all("Tickets", {"filter": [], "MaxRecords": 0}))
    for fault in ({"rate_500": 1.0}, {"rate_429": 1.0}, {"rate_truncated": 1.0}):
        sim.set_faults(**fault)
        await collect(lambda: good.query_all("Tickets", Query.all()))
        sim.clear_faults()
    sim.set_security(SecurityLevel(can_create_webhooks=False))
    await collect(lambda: good.create("TicketWebhooks", {}))
    kinds = {type(e) for e in seen}
    expected_kinds = {
        AuthenticationError,
        ZoneLookupError,
        NotFoundError,
        InvalidQueryError,
        AutotaskServerError,
        PermissionDeniedError,
        AutotaskConnectionError,
    }
    assert expected_kinds <= kinds
    texts = [f"{e} {e!r} {e.args} {getattr(e, 'errors', '')}" for e in seen]
    texts += [repr(c) for c in (good, bad_secret, bad_code, unknown)]
    texts += [repr(good.connection), str(good.connection), repr(good.budget)]
    captured = capsys.readouterr()
    logs = captured.out + captured.err
    assert "autotask.paused" in logs  # log lines were captured: checking them means something
    texts.append(logs)
    texts.append(generate_latest(REGISTRY).decode())
    for text in texts:
        assert secret not in text
        assert code not in text
        assert secret[::-1] not in text
        assert code[::-1] not in text
