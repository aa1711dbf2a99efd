"""Configuration of the simulator: tenant size, API behaviour, limits, callouts and faults.

Every knob lives here so a test, the demo or a benchmark can say exactly which Autotask it wants.
Defaults follow autotask-api.md §10; where the fact sheet marks behaviour UNCERTAIN, the default is
the pessimistic reading (or, where the fact sheet says so, the most plausible one) and the
alternative is one field away.

Durations are ``timedelta``. Config files and the admin API give them as numbers of seconds or as
strings with a unit (``"250ms"``, ``"30s"``, ``"2m"``, ``"1h"``), and the admin API answers them
as numbers of seconds. They are real Autotask durations, multiplied by ``time_scale`` when used
(``SimulatorConfig.scaled``), so ``time_scale=0.001`` turns the 30 s callout retry into 30 ms.
Fault latencies and the simulator's own delivery knobs are the exception: a test that asks for
them wants exactly that delay.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal, TypedDict

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from shared.settings import parse_duration

_ZERO = timedelta(0)


def _seconds(value: timedelta) -> float:
    return value.total_seconds()


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(_seconds, return_type=float, when_used="json"),
]
"""A duration: seconds or a unit string on the way in, seconds in JSON on the way out."""

Probability = float  # in [0, 1]
PermissionAction = Literal["read", "create", "update", "delete"]
DeactivationTrigger = Literal["auto", "delete", "patch", "owner"]
"""Why a webhook stopped: failed deliveries, API delete, API ``IsActive=false``, owner gone."""

_STRICT = ConfigDict(extra="forbid", validate_assignment=True)
_ALL_TRIGGERS: tuple[DeactivationTrigger, ...] = ("auto", "delete", "patch", "owner")


class EntityPermission(BaseModel):
    """What a security level allows on one entity."""

    model_config = _STRICT

    read: bool = True
    create: bool = True
    update: bool = True
    delete: bool = True


class SecurityLevel(BaseModel):
    """An API user's security level: entity permissions and the webhook grant."""

    model_config = _STRICT

    name: str = "API User (API-only)"
    permissions: dict[str, EntityPermission] = Field(default_factory=dict)
    """Per REST entity name (case-insensitive); entities not listed allow everything."""

    can_create_webhooks: bool = True
    max_webhooks: int = Field(default=50, ge=0)
    """Webhooks (all roots together) a user of this level may own."""

    def allows(self, entity: str, action: PermissionAction) -> bool:
        """True when the level grants ``action`` on ``entity``."""
        lowered = entity.lower()
        for name, permission in self.permissions.items():
            if name.lower() == lowered:
                return bool(getattr(permission, action))
        return True


class ApiBehaviour(BaseModel):
    """Choices about the REST surface where the real API is ambiguous (§1-§4)."""

    model_config = _STRICT

    missing_item: Literal["404", "null"] = "404"
    """How GET of a missing id answers: 404, or 200 ``{"item": null}``."""
    null_item_entities: list[str] = Field(default_factory=list)
    """Entities that answer a missing id with 200 ``{"item": null}`` whatever ``missing_item``."""
    unauthorized_body: Literal["empty", "errors"] = "empty"
    permission_denied_status: Literal[403, 500] = 403
    """403 as documented, or 500 with the permission text as observed in 2021."""
    reject_empty_filter: bool = True
    """An empty ``filter`` list is rejected (pessimistic); False returns every row."""
    filter_missing_value: Literal["null", "reject"] = "null"
    """A condition without ``value`` (clients drop ``0``, ``false`` and empty values) or with
    ``"value": null``: read as null, which, as in SQL, no row matches (most plausible for a
    .NET service over SQL Server), or rejected with 500."""
    filter_value_coercion: Literal["convert", "strict"] = "convert"
    """Filter values of another JSON type: "convert" as SQL Server would (``"true"``/``"false"``,
    ``"1"``/``"0"`` and 0/1 for booleans; JSON booleans and ``"true"``/``"false"`` as 1/0 for
    numbers; booleans as text for strings), or "strict": booleans only as JSON ``true``/``false``
    and never a boolean for another type. Create and update bodies stay strict either way."""
    max_conditions: int = Field(default=500, ge=1)
    count_in_members: bool = True
    """Whether each member of an ``in``/``notIn`` list counts toward ``max_conditions``."""
    max_udf_conditions: int = Field(default=1, ge=0)
    timestamp_z: Literal["mixed", "always", "never"] = "mixed"
    """Trailing ``Z`` on returned timestamps: per field (mixed), always or never."""
    zone_url_trailing_slash: bool = True
    """zoneInformation's ``url`` ends with ``/atservicesrest/`` as the real API's does."""
    lockout_after_failures: int | None = Field(default=None, ge=1)
    """Lock the API user after this many consecutive failed logins (None: never)."""
    collection_patch: Literal["supported", "html_404"] = "supported"
    """``PATCH /{Entity}``, the collection-level update: supported, or answered with an HTML
    404 page as reported in zone DE1, where clients fall back to ``PUT`` (§1)."""
    echo_webhook_secret: bool = False
    """Whether GET of a webhook returns its ``secretKey`` (unknown; default hides it)."""
    max_page_size: int = 500


class LimitsConfig(BaseModel):
    """Thread and hourly limits (§5)."""

    model_config = _STRICT

    thread_limit: int = Field(default=3, ge=1)
    thread_limit_status: int = 429
    """429 as most clients see it; n8n reports thread rejections may arrive with another
    status, so e.g. 500 exercises clients that must match on the ``Itgenatr005`` text."""
    thread_release_delay: Duration = Field(default=_ZERO, ge=_ZERO)
    """Thread accounting is released slightly after the response in the real API."""
    hourly_limit: int = Field(default=10_000, ge=1)
    hourly_window: Duration = Field(default=timedelta(hours=1), gt=_ZERO)
    hourly_limit_status: int = 429
    latency_at_50: Duration = Field(default=timedelta(seconds=0.5), ge=_ZERO)
    latency_at_75: Duration = Field(default=timedelta(seconds=1), ge=_ZERO)
    retry_after: Duration | None = Field(default=None, ge=_ZERO)
    """When set, 429 answers carry ``Retry-After`` with this (unscaled) delay in whole
    seconds; no source shows Autotask sending it, so it is off by default."""


class CalloutConfig(BaseModel):
    """Callout delivery and payload choices (§8)."""

    model_config = _STRICT

    timeout: Duration = Field(default=timedelta(seconds=10), gt=_ZERO)
    retry_delay: Duration = Field(default=timedelta(seconds=30), ge=_ZERO)
    max_attempts: int = Field(default=5, ge=1)
    deactivate_after_failed_events: int = Field(default=25, ge=1)
    dispatch: Literal["sequential", "concurrent"] = "sequential"
    """How one webhook's callouts of one event type go out while delivery is healthy: one at a
    time in trigger order, or up to ``concurrency`` at once in a shuffled order (healthy
    concurrency is unknown, §8.3). Either way, failed events are retried in trigger order and
    later events wait for them."""
    concurrency: int = Field(default=10, ge=1)
    """Callouts of one queue in flight at once in ``concurrent`` dispatch."""
    concurrent_spread: Duration = Field(default=timedelta(milliseconds=5), ge=_ZERO)
    """Gap between the shuffled first attempts of a concurrent batch (unscaled), so they
    reach the receiver out of order."""
    create_fields: Literal["display_always", "subscribed_and_display_always"] = "display_always"
    delete_fields: Literal["none", "display_always"] = "none"
    field_key_case: Literal["rest", "pascal"] = "rest"
    person_id_key: Literal["PersonID", "PersonId"] = "PersonID"
    guid: Literal["webhook", "event"] = "webhook"
    """``Guid``: the webhook's GUID (Nango's reading) or a fresh id per event."""
    values_as_strings: bool = False
    company_entity_type: Literal["Account", "Company"] = "Account"
    """``EntityType`` of company callouts: unconfirmed; the SOAP name ``Account`` fits the two
    strings seen in production (``Ticket``, ``InstalledProduct``)."""
    exclusions_cover_api_writes: bool = True
    """Whether ExcludedResources also suppress callouts for writes made through the REST API
    (claimed by GDS, untested); False lets a receiver's second guard be exercised."""
    require_owner_read: bool = True
    """No callout for a record the webhook owner's security level cannot read (SaaS Alerts)."""
    deactivation_calls_on: list[DeactivationTrigger] = Field(
        default_factory=lambda: list(_ALL_TRIGGERS)
    )
    """When the DeactivationUrl is called: auto-deactivation, API delete, API ``IsActive=false``,
    the owner resource deactivated or deleted. An empty list sends no deactivation notices."""
    deactivation_signed: bool = False
    """Sign the deactivation notice like a callout (its format is undocumented; unsigned)."""
    deactivation_to_webhook_url: bool = False
    """Also POST the deactivation notice to the WebhookUrl, as n8n's first version expected."""
    reorder_hold: Duration = Field(default=timedelta(milliseconds=50), ge=_ZERO)
    """How long a callout picked for reordering waits for a successor (unscaled)."""
    delivery_log_size: int = Field(default=10_000, ge=1)
    max_connections: int = Field(default=100, ge=1)


class WebhookConfig(BaseModel):
    """Limits and rules on webhook definitions (§7)."""

    model_config = _STRICT

    max_active_per_entity: int = Field(default=50, ge=0)
    reject_duplicates: bool = True
    ready_requires_subscribed_field: bool = True
    """Pessimistic: a display-always field alone does not make a webhook ready."""
    missing_required_booleans: Literal["false", "reject"] = "reject"
    """A required boolean (``isActive``, ``isSubscribedField`` ...) left out of a create body:
    bound as false, as .NET binds a non-nullable bool, or rejected with 500 like the required
    text fields (the reading of live ``isRequired`` metadata)."""
    https_only: Literal["off", "on_save", "on_delivery"] = "off"
    """The vendor says callouts arrive "on port 443": "on_save" rejects a WebhookUrl or
    DeactivationUrl that is not https on port 443, "on_delivery" stores it but never reaches
    it. Off by default because tests use loopback http."""


class FaultConfig(BaseModel):
    """Faults to inject; all changeable at run time through the admin API."""

    model_config = _STRICT

    latency: Duration = Field(default=_ZERO, ge=_ZERO)
    latency_jitter: Duration = Field(default=_ZERO, ge=_ZERO)
    rate_429: Probability = Field(default=0.0, ge=0, le=1)
    rate_500: Probability = Field(default=0.0, ge=0, le=1)
    rate_truncated: Probability = Field(default=0.0, ge=0, le=1)
    """Share of successful answers cut short (seen under load, §2)."""
    outage: Literal["503", "reset"] | None = None
    outage_includes_zone_lookup: bool = True
    endpoints: list[str] | None = None
    """Restrict the request faults above to these endpoints (REST names); None means all."""
    read_after_write_lag: Duration = Field(default=_ZERO, ge=_ZERO)
    """A created record answers 404 on GET by id for this long (§2 read-after-write lag)."""
    callout_drop_rate: Probability = Field(default=0.0, ge=0, le=1)
    callout_duplicate_rate: Probability = Field(default=0.0, ge=0, le=1)
    callout_reorder_rate: Probability = Field(default=0.0, ge=0, le=1)


class FaultChanges(TypedDict, total=False):
    """Keyword arguments of ``Simulator.set_faults``: any subset of :class:`FaultConfig`."""

    latency: timedelta
    latency_jitter: timedelta
    rate_429: Probability
    rate_500: Probability
    rate_truncated: Probability
    outage: Literal["503", "reset"] | None
    outage_includes_zone_lookup: bool
    endpoints: list[str] | None
    read_after_write_lag: timedelta
    callout_drop_rate: Probability
    callout_duplicate_rate: Probability
    callout_reorder_rate: Probability


class ApiChanges(TypedDict, total=False):
    """Keyword arguments of ``Simulator.set_api``: any subset of :class:`ApiBehaviour`."""

    missing_item: Literal["404", "null"]
    null_item_entities: list[str]
    unauthorized_body: Literal["empty", "errors"]
    permission_denied_status: Literal[403, 500]
    reject_empty_filter: bool
    filter_missing_value: Literal["null", "reject"]
    filter_value_coercion: Literal["convert", "strict"]
    max_conditions: int
    count_in_members: bool
    max_udf_conditions: int
    timestamp_z: Literal["mixed", "always", "never"]
    zone_url_trailing_slash: bool
    lockout_after_failures: int | None
    collection_patch: Literal["supported", "html_404"]
    echo_webhook_secret: bool
    max_page_size: int


class LimitsChanges(TypedDict, total=False):
    """Keyword arguments of ``Simulator.set_limits``: any subset of :class:`LimitsConfig`."""

    thread_limit: int
    thread_limit_status: int
    thread_release_delay: timedelta
    hourly_limit: int
    hourly_window: timedelta
    hourly_limit_status: int
    latency_at_50: timedelta
    latency_at_75: timedelta
    retry_after: timedelta | None


class ChangeGeneratorConfig(BaseModel):
    """Background churn: creates, updates and deletes at a target rate."""

    model_config = _STRICT

    rate: float = Field(default=0.0, ge=0)
    """Changes per second, started with the simulator; 0 leaves the generator idle."""
    seed: int | None = None
    """RNG seed; None derives it from the simulator seed."""
    entity_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "Tickets": 5.0,
            "TicketNotes": 3.0,
            "Companies": 1.0,
            "Contacts": 1.5,
            "ConfigurationItems": 1.0,
        }
    )
    create_weight: float = Field(default=3.0, ge=0)
    update_weight: float = Field(default=6.0, ge=0)
    delete_weight: float = Field(default=1.0, ge=0)


class SimulatorConfig(BaseModel):
    """Everything that defines one simulated Autotask tenant and its behaviour."""

    model_config = _STRICT

    seed: int = 7
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    zone: int = Field(default=14, ge=1)

    # Tenant size.
    resources: int = Field(default=20, ge=1)
    companies: int = Field(default=50, ge=1)
    contacts: int = Field(default=100, ge=0)
    configuration_items: int = Field(default=100, ge=0)
    tickets: int = Field(default=200, ge=0)
    ticket_notes: int = Field(default=300, ge=0)
    contracts: int = Field(default=0, ge=0)
    """Contracts are generated last with their own RNG, so adding them leaves the rest of a
    seeded tenant as it was."""

    # The seeded API user; None derives stable values from the seed.
    username: str | None = None
    secret: str | None = None
    integration_code: str | None = None

    anchor_time: datetime | None = None
    """Generated history ends here (naive UTC); None means the start time."""
    history_days: int = Field(default=365, ge=1)
    time_scale: float = Field(default=1.0, gt=0)
    """Multiplies Autotask's durations (callout timeout and retry, usage latency, hourly
    window, thread release delay)."""

    api: ApiBehaviour = Field(default_factory=ApiBehaviour)
    security: SecurityLevel = Field(default_factory=SecurityLevel)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    callouts: CalloutConfig = Field(default_factory=CalloutConfig)
    webhooks: WebhookConfig = Field(default_factory=WebhookConfig)
    faults: FaultConfig = Field(default_factory=FaultConfig)
    changes: ChangeGeneratorConfig = Field(default_factory=ChangeGeneratorConfig)

    def scaled(self, duration: timedelta) -> timedelta:
        """A real-Autotask duration converted to simulator time."""
        return duration * self.time_scale


__all__ = [
    "ApiBehaviour",
    "CalloutConfig",
    "ChangeGeneratorConfig",
    "DeactivationTrigger",
    "Duration",
    "EntityPermission",
    "FaultChanges",
    "FaultConfig",
    "LimitsChanges",
    "LimitsConfig",
    "PermissionAction",
    "Probability",
    "SecurityLevel",
    "SimulatorConfig",
    "WebhookConfig",
]
