"""Every HTTP failure becomes the right exception with a message a person can act on."""

from __future__ import annotations

import json

import pytest

from shared.autotask._errors import (
    CallContext,
    error_from_response,
    parse_error_messages,
    parse_retry_after,
)
from shared.errors import (
    AuthenticationError,
    AutotaskServerError,
    HourlyLimitError,
    InvalidQueryError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ThreadLimitError,
)
from shared.redaction import REDACTED, Redactor

SECRET = "s3cr3t-Value-XYZ"
CODE = "INTEGRATIONCODE0123456789AB"
REDACT = Redactor([SECRET, CODE])


def ctx(method="GET", endpoint="Tickets", action="read", item_id=None):
    return CallContext(method, endpoint, action, "webservices14.autotask.net", "api@x.com", item_id)


def body(*errors) -> bytes:
    return json.dumps({"errors": list(errors)}).encode()


def translate(status, raw=b"", headers=None, context=None):
    return error_from_response(context or ctx(), status, headers or {}, raw, redact=REDACT)


@pytest.mark.parametrize(
    "raw",
    [b"", body("Authentication failed"), body({"message": "Authentication failed"}), b"<html>"],
)
def test_401_whatever_the_body_says_what_to_check(raw):
    exc = translate(401, raw)
    assert isinstance(exc, AuthenticationError)
    assert not exc.retriable
    assert "check the username, secret and integration code" in str(exc)
    assert "the username must be the API-only user's" in str(exc)
    assert "api@x.com" in str(exc)


@pytest.mark.parametrize(
    ("status", "raw"),
    [
        (403, b""),
        (500, body("The logged in Resource does not have the adequate permissions to update.")),
    ],
)
def test_permission_denial_by_status_or_by_text(status, raw):
    exc = translate(status, raw, context=ctx("PATCH", "Companies", "update"))
    assert isinstance(exc, PermissionDeniedError)
    assert "the API user's security level lacks edit permission on Companies" in str(exc)


def test_webhook_permission_names_the_grant():
    exc = translate(403, body("denied"), context=ctx("POST", "TicketWebhooks", "create"))
    assert isinstance(exc, PermissionDeniedError)
    assert "lacks 'Can create WebHooks'" in str(exc)
    assert "on TicketWebhooks" in str(exc)


@pytest.mark.parametrize(
    ("status", "raw", "headers"),
    [
        (429, body("Thread Threshold Exceeded: the threshold of 3 threads was exceeded"), {}),
        (500, body("Itgenatr005: Thread Threshold Exceeded"), {}),
        (200, body("thread threshold exceeded"), {"Retry-After": "7"}),
        (503, body({"message": "ITGENATR005"}), {}),
    ],
)  # fmt: skip
def test_thread_limit_is_recognised_by_text_with_or_without_429(status, raw, headers):
    exc = translate(status, raw, headers)
    assert isinstance(exc, ThreadLimitError)
    assert exc.retriable
    assert exc.retry_after == (7.0 if headers else None)
    assert "thread limit" in str(exc)


HOURLY = (
    "API Threshold Exceeded — The Autotask API request threshold of 10000 requests per 60 "
    "minutes has been exceeded."
)


@pytest.mark.parametrize("status", [429, 500, 403])
def test_hourly_limit_is_recognised_by_text_and_carries_retry_after(status):
    exc = translate(status, body(HOURLY), {"Retry-After": "120"})
    assert isinstance(exc, HourlyLimitError)
    assert exc.retry_after == 120.0
    assert "hourly API request threshold is used up" in str(exc)


@pytest.mark.parametrize("raw", [b"", body("Rate limit exceeded. Please retry later.")])
def test_any_other_429_is_a_rate_limit(raw):
    exc = translate(429, raw)
    assert type(exc) is RateLimitError
    assert exc.retriable
    assert exc.retry_after is None
    assert "refused GET Tickets for load (HTTP 429)" in str(exc)


@pytest.mark.parametrize(
    ("status", "raw"),
    [(404, b""), (404, b"<html>Not Found</html>"), (500, body("No matching records found. x"))],
)
def test_not_found(status, raw):
    exc = translate(status, raw, context=ctx("DELETE", "Tickets", "delete", item_id=9))
    assert isinstance(exc, NotFoundError)
    assert "Tickets 9 was not found" in str(exc)


@pytest.mark.parametrize(
    "message",
    [
        "maxCountOfRecordsToReturn must be between 1 and 500",
        "Invalid query: unknown field 'nope'",
        "Reference value on field: contactID of type: Contact does not exist or is invalid.",
        "name must be less than or equal to 50 characters",
    ],
)
def test_business_errors_in_500_are_invalid_queries_not_retried(message):
    exc = translate(500, body(message), context=ctx("POST", "Tickets", "read"))
    assert isinstance(exc, InvalidQueryError)
    assert not exc.retriable
    assert message in str(exc)
    assert exc.errors == [message]


def test_max_records_error_gets_a_hint():
    exc = translate(500, body("maxCountOfRecordsToReturn must be between 1 and 500"))
    assert "MaxRecords) must be between 1 and 500" in str(exc)


@pytest.mark.parametrize(("status", "raw"), [(500, b""), (502, b"<html>"), (500, body("Oops"))])
def test_other_server_errors_are_retriable(status, raw):
    exc = translate(status, raw)
    assert isinstance(exc, AutotaskServerError)
    assert exc.retriable


def test_405_is_an_invalid_request():
    exc = translate(405, body("The requested resource does not support http method 'GET'."))
    assert isinstance(exc, InvalidQueryError)


def test_error_shapes():
    assert parse_error_messages(body("a", "b")) == ["a", "b"]
    assert parse_error_messages(body({"message": "m"})) == ["m"]
    assert parse_error_messages(b'{"Message": "x"}') == ["x"]
    assert parse_error_messages(b"") == []
    assert parse_error_messages(b"plain  text\n") == ["plain text"]
    assert len(parse_error_messages(b"x" * 5000)[0]) == 400


def test_retry_after_forms():
    assert parse_retry_after(None) is None
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_secrets_echoed_by_the_server_are_redacted():
    raw = body(f"bad secret {SECRET} for code {CODE}")
    for status in (400, 401, 403, 404, 429, 500, 503):
        exc = translate(status, raw)
        text = f"{exc} {exc!r} {exc.errors}"
        assert SECRET not in text
        assert CODE not in text
        assert REDACTED in str(exc)
