"""Translate Autotask HTTP answers into the project's exception tree (shared/errors.py).

Autotask reports most business errors as HTTP 500 with ``{"errors": ["..."]}`` and some limits
without their documented status (autotask-api.md §2, §5), so the status alone decides little:
the error text is matched first, then the status. Every message says what went wrong and what a
person can do about it, and passes through a :class:`Redactor` so a secret echoed back by the
server can never reach a log line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

from shared.errors import (
    AuthenticationError,
    AutotaskError,
    AutotaskServerError,
    HourlyLimitError,
    InvalidQueryError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ThreadLimitError,
)
from shared.redaction import Redactor

Action = Literal["read", "create", "update", "delete"]

_MAX_DETAIL = 400  # characters of server text kept in a message

_THREAD_TEXT = ("thread threshold", "itgenatr005")
_HOURLY_TEXT = ("request threshold", "requests per hour", "hourly", "api threshold")
_PERMISSION_TEXT = (
    "adequate permission",
    "does not have permission",
    "not have the required permission",
    "insufficient permission",
    "not authorized",
    "access denied",
    "security level",
)
_NOT_FOUND_TEXT = ("no matching records found",)
# 500s carrying these are business/validation errors: retrying cannot help.
_INVALID_TEXT = (
    "maxcountofrecordstoreturn",
    "maxrecords",
    "invalid",
    "must be",
    "is required",
    "cannot be queried",
    "not queryable",
    "unknown field",
    "unknown operator",
    "unsupported",
    "not supported",
    "does not exist",
    "limited to 500",
    "only one",
    "could not find",
    "unable to find",
    "duplicate",
)

_PERMISSION_NAMES: dict[Action, str] = {
    "read": "query (view) permission",
    "create": "add (create) permission",
    "update": "edit permission",
    "delete": "delete permission",
}


@dataclass(frozen=True, slots=True)
class CallContext:
    """What was being attempted, for messages: never holds credentials."""

    method: str
    endpoint: str
    """Limit / metric key: the first path segment ("Tickets"), never an id."""
    action: Action
    host: str
    username: str
    item_id: int | None = None
    resource: str = ""
    """What people read in messages ("TicketWebhooks/Fields"); defaults to ``endpoint``."""

    @property
    def subject(self) -> str:
        return self.resource or self.endpoint


def parse_error_messages(body: bytes) -> list[str]:
    """The strings of ``{"errors": [...]}`` (plain or ``{"message": ...}`` items).

    Falls back to ``message``/``Message`` keys and then to the raw text (HTML 404 pages and
    empty 401 bodies happen), trimmed.
    """
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError:
        return [_trim(text)]
    found: list[str] = []
    if isinstance(data, Mapping):
        errors = data.get("errors") or data.get("Errors")
        if isinstance(errors, list):
            for item in errors:
                if isinstance(item, Mapping):
                    message = item.get("message") or item.get("Message")
                    found.append(str(message) if message is not None else json.dumps(item))
                else:
                    found.append(str(item))
        for key in ("message", "Message", "error"):
            if not found and isinstance(data.get(key), str):
                found.append(data[key])
    elif isinstance(data, str):
        found.append(data)
    return [_trim(m) for m in found if m]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_from_response(
    ctx: CallContext,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    redact: Redactor,
) -> AutotaskError:
    """The exception for a non-2xx answer (or a 2xx whose text is an error)."""
    errors = [redact(m) for m in parse_error_messages(body)]
    said = "; ".join(errors)
    lowered = said.lower()
    detail = f" Autotask said: {said}" if said else ""
    where = f"{ctx.method} {ctx.subject}"
    retry_after = parse_retry_after(headers.get("Retry-After"))

    if any(t in lowered for t in _THREAD_TEXT):
        return ThreadLimitError(
            f"thread limit hit on {where} (HTTP {status}): this integration code already had "
            "the maximum concurrent calls on that endpoint; the client backs off and retries. "
            f"If it persists, lower the concurrency per endpoint or stop other tools sharing "
            f"the integration code.{detail}",
            status=status,
            errors=errors,
            retry_after=retry_after,
        )
    if any(t in lowered for t in _HOURLY_TEXT):
        return HourlyLimitError(
            f"the tenant's hourly API request threshold is used up (HTTP {status} on {where}); "
            "calls resume as the rolling hour frees up. Every integration on the tenant shares "
            f"this budget: check Admin > API Usage for the heaviest one.{detail}",
            status=status,
            errors=errors,
            retry_after=retry_after,
        )
    if status == 429:
        return RateLimitError(
            f"Autotask refused {where} for load (HTTP 429); the client pauses this connection "
            f"for the Retry-After time (or a minute) and tries again.{detail}",
            status=status,
            errors=errors,
            retry_after=retry_after,
        )
    if status == 401:
        return AuthenticationError(
            f"Autotask rejected the credentials of API user {ctx.username!r} (HTTP 401 from "
            f"{ctx.host}): check the username, secret and integration code; the username "
            "must be the API-only user's (security level 'API User (API-only)'), and the "
            "integration code its API tracking identifier. Repeated failures can lock the "
            f"user: clear 'Locked' on the resource if so.{detail}",
            status=status,
            errors=errors,
        )
    if any(t in lowered for t in _NOT_FOUND_TEXT) or status == 404:
        what = f"{ctx.subject} {ctx.item_id}" if ctx.item_id is not None else ctx.subject
        return NotFoundError(
            f"{what} was not found (HTTP {status} on {where}): it does not exist, was "
            f"deleted, or the API user's security level cannot see it.{detail}",
            status=status,
            errors=errors,
        )
    if status == 403 or any(t in lowered for t in _PERMISSION_TEXT):
        return PermissionDeniedError(
            permission_message(ctx) + f" (HTTP {status} on {where}).{detail}",
            status=status,
            errors=errors,
        )
    if 400 <= status < 500 or (status == 500 and any(t in lowered for t in _INVALID_TEXT)):
        hint = ""
        if "maxcountofrecordstoreturn" in lowered or "maxrecords" in lowered:
            hint = " Page size (MaxRecords) must be between 1 and 500."
        return InvalidQueryError(
            f"Autotask rejected {where} as invalid (HTTP {status}): fix the request (field "
            f"names, operators, values).{hint}{detail}",
            status=status,
            errors=errors,
        )
    return AutotaskServerError(
        f"Autotask server error on {where} (HTTP {status}); retrying usually helps."
        + (detail or " No details were given."),
        status=status,
        errors=errors,
    )


def is_html_page(exc: AutotaskError) -> bool:
    """True when the answer was an HTML page rather than the API's JSON: the request never
    reached an API route (e.g. a zone without collection-level PATCH answers an IIS 404 page,
    autotask-api.md §1). JSON bodies, the API's own 404s included, never start with ``<``."""
    return any(message.lstrip().startswith("<") for message in exc.errors)


def permission_message(ctx: CallContext) -> str:
    """``the API user's security level lacks <permission> on <entity>``, with the fix."""
    entity = ctx.endpoint
    if "webhook" in ctx.subject.lower() and ctx.action != "read":
        permission = "'Can create WebHooks' (with a maximum webhook count of at least 1)"
    else:
        permission = _PERMISSION_NAMES[ctx.action]
    return (
        f"the API user's security level lacks {permission} on {entity}: grant it under "
        "Admin > Account Settings & Users > Security Levels for the API user's level, or "
        "use an API user whose level has it"
    )


def _trim(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


__all__ = [
    "Action",
    "CallContext",
    "error_from_response",
    "is_html_page",
    "parse_error_messages",
    "parse_retry_after",
    "permission_message",
]
