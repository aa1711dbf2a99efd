"""The project's exception tree.

Every error the project raises derives from :class:`SyncError`. Library exceptions (aiohttp,
aiokafka, asyncpg) are translated into this tree at the adapter boundary with ``raise ... from
exc``, so code above the adapters never catches library types.

Each class carries ``retriable`` as data: retry loops, consumers and dead-letter routing read the
flag instead of matching on types.

    SyncError
    ├── ConfigError                     bad or missing configuration (not retriable)
    │   └── SecretDecryptionError       a stored secret no configured key opens
    ├── InfrastructureError             local infrastructure could not be provided
    │   └── MissingToolError            java / mvn / initdb not installed
    ├── KafkaError                      broker unreachable or a produce/commit failed (retriable)
    ├── DatabaseError                   PostgreSQL unreachable or a statement failed (retriable)
    │   └── MigrationError              a migration file is broken or was edited (not retriable)
    ├── MessageError                    a message that can never be processed (poison)
    └── AutotaskError                   anything the Autotask API said or failed to say
        ├── AutotaskConnectionError     network failure, timeout, truncated body (retriable)
        ├── ZoneLookupError             zoneInformation failed: unknown user or unreachable
        ├── AuthenticationError         401: username / secret / integration code wrong
        │   └── AuthenticationPausedError   held back for a cool-down after a 401 (retriable)
        ├── PermissionDeniedError       403 or permission text: security level lacks access
        ├── NotFoundError               404 / item null: the entity does not exist
        ├── InvalidQueryError           the API rejected the query or request body
        ├── RateLimitError              429 family (retriable)
        │   ├── ThreadLimitError        more than N concurrent calls on one endpoint
        │   └── HourlyLimitError        the tenant's hourly request threshold is used up
        ├── AutotaskServerError         5xx that is not a business error (retriable)
        └── DeadlineExceededError       retries ran out of time (not retriable)
"""

from __future__ import annotations

from typing import ClassVar


class SyncError(Exception):
    """Root of the project's errors. ``retriable`` says whether trying again can help."""

    retriable: ClassVar[bool] = False

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retriable is not None:
            # An instance may know better than its class (e.g. a 500 that is a business error).
            self.retriable = retriable  # type: ignore[misc]

    def __str__(self) -> str:
        return self.message


class ConfigError(SyncError):
    """Configuration is missing or malformed; the message names the variable and the fix."""


class SecretDecryptionError(ConfigError):
    """A stored secret cannot be decrypted with the configured keys (missing key, or altered)."""


class InfrastructureError(SyncError):
    """Local infrastructure (throwaway PostgreSQL, local Kafka) could not be provided."""


class MissingToolError(InfrastructureError):
    """A required program is not installed; the message says what to install."""


class KafkaError(SyncError):
    """The broker could not be reached or did not acknowledge."""

    retriable = True


class DatabaseError(SyncError):
    """PostgreSQL could not be reached or a statement failed.

    ``sqlstate`` is PostgreSQL's code for a refused statement (``23505`` unique violation,
    ``42P01`` undefined table, ...), None when the server or the session failed."""

    retriable = True
    UNIQUE_VIOLATION: ClassVar[str] = "23505"
    CHECK_VIOLATION: ClassVar[str] = "23514"
    UNDEFINED_TABLE: ClassVar[str] = "42P01"

    def __init__(
        self, message: str, *, retriable: bool | None = None, sqlstate: str | None = None
    ) -> None:
        super().__init__(message, retriable=retriable)
        self.sqlstate = sqlstate


class MigrationError(DatabaseError):
    """A migration could not be applied, or an applied one was changed afterwards."""

    retriable = False


class MessageError(SyncError):
    """A message that will never be processable as it is (goes to the dead-letter topic)."""


class AutotaskError(SyncError):
    """Any failure talking to the Autotask REST API.

    ``status`` is the HTTP status when there was a response; ``errors`` holds the strings from
    Autotask's ``{"errors": [...]}`` body. Neither ever contains the API secret.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: list[str] | None = None,
        retriable: bool | None = None,
    ) -> None:
        super().__init__(message, retriable=retriable)
        self.status = status
        self.errors = errors or []


class AutotaskConnectionError(AutotaskError):
    """The API could not be reached, timed out, or answered with a truncated body."""

    retriable = True


class ZoneLookupError(AutotaskError):
    """Zone discovery failed: the username is unknown or the zone service is unreachable."""


class AuthenticationError(AutotaskError):
    """Autotask rejected the credentials (HTTP 401)."""


class AuthenticationPausedError(AuthenticationError):
    """Calls to a connection are held back after Autotask rejected its credentials.

    Raised before any request is sent, by every process of the deployment, until the cool-down
    ends or ``autotask-sync connections test NAME`` passes: repeated failed logins can lock the
    API user in Autotask. Retriable (waiting, or fixing the credentials, helps);
    ``retry_after`` is the rest of the cool-down in seconds.
    """

    retriable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, status=None)
        self.retry_after = retry_after


class PermissionDeniedError(AutotaskError):
    """The API user's security level does not allow this call."""


class NotFoundError(AutotaskError):
    """The requested entity does not exist (or is not visible to the API user)."""


class InvalidQueryError(AutotaskError):
    """Autotask rejected the request as invalid (bad filter, field, value or page size)."""


class RateLimitError(AutotaskError):
    """Autotask refused the call for load reasons; wait ``retry_after`` seconds if known."""

    retriable = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: list[str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, errors=errors)
        self.retry_after = retry_after


class ThreadLimitError(RateLimitError):
    """More concurrent calls than the endpoint's thread limit (Itgenatr005)."""


class HourlyLimitError(RateLimitError):
    """The tenant's rolling-hour request threshold is used up."""


class AutotaskServerError(AutotaskError):
    """A 5xx that is not a recognised business error."""

    retriable = True


class DeadlineExceededError(AutotaskError):
    """Retrying did not succeed before the call's overall deadline."""
