"""The one exception the simulator's domain code raises: an answer the API should give.

Domain modules (queries, validation, webhooks) describe failures the way Autotask reports them,
status plus ``{"errors": [...]}`` strings, and the HTTP layer renders them unchanged. This keeps the
exact texts next to the rules that produce them.
"""

from __future__ import annotations

PERMISSION_TEXT = "The logged in Resource does not have the adequate permissions"


class ApiError(Exception):
    """An Autotask-style error answer: HTTP ``status`` and the ``errors`` strings."""

    def __init__(
        self,
        status: int,
        *errors: str,
        headers: dict[str, str] | None = None,
        empty_body: bool = False,
    ) -> None:
        super().__init__(f"{status}: {'; '.join(errors)}")
        self.status = status
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.empty_body = empty_body


def business_error(*errors: str) -> ApiError:
    """Autotask reports validation and business-rule failures as HTTP 500 (§2)."""
    return ApiError(500, *errors)


def permission_denied(status: int, action: str, entity: str) -> ApiError:
    """403 as documented, or 500 carrying the same text as observed in 2021 (§2)."""
    return ApiError(status, f"{PERMISSION_TEXT} to {action} {entity}.")


def method_not_allowed(method: str) -> ApiError:
    return ApiError(405, f"The requested resource does not support http method '{method}'.")


def not_found(
    message: str = "No HTTP resource was found that matches the request URI.",
) -> ApiError:
    return ApiError(404, message)


__all__ = [
    "PERMISSION_TEXT",
    "ApiError",
    "business_error",
    "method_not_allowed",
    "not_found",
    "permission_denied",
]
