"""Configuration of the simulator: tenant size, API behaviour, limits, callouts and faults.

Every knob lives here so a test, the demo or a benchmark can say exactly which Autotask it wants.
Defaults follow autotask-api.md §10; where the fact sheet marks behaviour UNCERTAIN, the default is
the pessimistic reading and the alternative is one field away.

Durations are given in real Autotask seconds and multiplied by ``time_scale`` when used
(``SimulatorConfig.scaled``), so ``time_scale=0.001`` turns the 30 s callout retry into 30 ms.
Fault latencies are the exception: a test that injects latency asks for the real delay it wants.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Rate = float  # a probability in [0, 1]
PermissionAction = Literal["read", "create", "update", "delete"]
DeactivationTrigger = Literal["auto", "delete", "patch"]

_STRICT = ConfigDict(extra="forbid", validate_assignment=True)
_ALL_TRIGGERS: tuple[DeactivationTrigger, ...] = ("auto", "delete", "patch")


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
    """Choices about the REST surface where the real API is ambiguous (§2-§4)."""

    model_config = _STRICT

    missing_item: Literal["404", "null"] = "404"
    """How GET of a missing id answers: 404, or 200 ``{"item": null}``."""
    null_item_entities: list[str] = Field(default_factory=list)
    """Entities that answer a missing id with 200 ``{"item": null}`` whatever ``missing_item``."""
    unauthorized_body: Literal["empty", "errors"] = "empty"
    permission_denied_status: Literal[403, 500] = 403
    """403 as documented, or 500 with the permission text as observed in 2021."""
    reject_empty_filter: bool = True
    max_conditions: int = Field(default=500, ge=1)
    count_in_members: bool = True
    """Whether each member of an ``in``/``notIn`` list counts toward ``max_conditions``."""
    max_udf_conditions: int = Field(default=1, ge=0)
    timestamp_z: Literal["mixed", "always", "never"] = "mixed"
    """Trailing ``Z`` on returned timestamps: per field (mixed), always or never."""
    zone_url_trailing_slash: bool = False
    lockout_after_failures: int | None = Field(default=None, ge=1)
    """Lock the API user after this many consecutive failed logins (None: never)."""
    echo_webhook_secret: bool = False
    """Whether GET of a webhook returns its ``secretKey`` (unknown; default hides it)."""
    max_page_size: int = 500


class LimitsConfig(BaseModel):
    """Thread and hourly limits (§5)."""

    model_config = _STRICT

    thread_limit: int = Field(default=3, ge=1)
    thread_limit_status: int = 429
    """n8n reports thread rejections may arrive with a non-429 status; set e.g. 500 to test it."""
    thread_release_delay_s: float = Field(default=0.0, ge=0)
    """Thread accounting is released slightly after the response in the real API."""
    hourly_limit: int = Field(default=10_000, ge=1)
    hourly_window_s: float = Field(default=3600.0, gt=0)
    hourly_limit_status: int = 429
    latency_at_50_s: float = Field(default=0.5, ge=0)
    latency_at_75_s: float = Field(default=1.0, ge=0)
    retry_after_s: float | None = None
    """When set, 429 answers carry ``Retry-After`` with this many (unscaled) seconds."""


class CalloutConfig(BaseModel):
    """Callout delivery and payload choices (§8)."""

    model_config = _STRICT

    timeout_s: float = Field(default=10.0, gt=0)
    retry_delay_s: float = Field(default=30.0, ge=0)
    max_attempts: int = Field(default=5, ge=1)
    deactivate_after_failed_events: int = Field(default=25, ge=1)
    create_fields: Literal["display_always", "subscribed_and_display_always"] = "display_always"
    delete_fields: Literal["none", "display_always"] = "none"
    field_key_case: Literal["rest", "pascal"] = "rest"
    person_id_key: Literal["PersonID", "PersonId"] = "PersonID"
    guid: Literal["webhook", "event"] = "webhook"
    """``Guid``: the webhook's GUID (Nango's reading) or a fresh id per event."""
    values_as_strings: bool = False
    entity_type_aliases: bool = False
    """Send the legacy alias (``Account``, ``InstalledProduct``) instead of the canonical type."""
    deactivation_calls_on: list[DeactivationTrigger] = Field(
        default_factory=lambda: list(_ALL_TRIGGERS)
    )
    """When the DeactivationUrl is called: auto-deactivation, API delete, API ``IsActive=false``."""
    reorder_hold_s: float = Field(default=0.05, ge=0)
    """How long a callout picked for reordering waits for a successor (unscaled)."""
    delivery_log_size: int = Field(default=10_000, ge=1)
    max_connections: int = Field(default=100, ge=1)


class WebhookConfig(BaseModel):
    """Limits on webhook definitions (§7)."""

    model_config = _STRICT

    max_active_per_entity: int = Field(default=50, ge=0)
    reject_duplicates: bool = True
    ready_requires_subscribed_field: bool = True
    """Pessimistic: a display-always field alone does not make a webhook ready."""


class FaultConfig(BaseModel):
    """Faults to inject; all changeable at run time through the admin API."""

    model_config = _STRICT

    latency_s: float = Field(default=0.0, ge=0)
    latency_jitter_s: float = Field(default=0.0, ge=0)
    rate_429: Rate = Field(default=0.0, ge=0, le=1)
    rate_500: Rate = Field(default=0.0, ge=0, le=1)
    rate_truncated: Rate = Field(default=0.0, ge=0, le=1)
    """Share of successful answers cut short (seen under load, §2)."""
    outage: Literal["503", "reset"] | None = None
    outage_includes_zone_lookup: bool = True
    endpoints: list[str] | None = None
    """Restrict the request faults above to these endpoints (REST names); None means all."""
    read_after_write_lag_s: float = Field(default=0.0, ge=0)
    """A created record answers 404 on GET by id for this long (§2 read-after-write lag)."""
    callout_drop_rate: Rate = Field(default=0.0, ge=0, le=1)
    callout_duplicate_rate: Rate = Field(default=0.0, ge=0, le=1)
    callout_reorder_rate: Rate = Field(default=0.0, ge=0, le=1)


class ChangeGeneratorConfig(BaseModel):
    """Background churn: creates, updates and deletes at a target rate."""

    model_config = _STRICT

    rate_per_s: float = Field(default=0.0, ge=0)
    """Changes per second started with the simulator; 0 leaves the generator idle."""
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

    # The seeded API user; None derives stable values from the seed.
    username: str | None = None
    secret: str | None = None
    integration_code: str | None = None

    anchor_time: datetime | None = None
    """Generated history ends here (naive UTC); None means the start time."""
    history_days: int = Field(default=365, ge=1)
    time_scale: float = Field(default=1.0, gt=0)

    api: ApiBehaviour = Field(default_factory=ApiBehaviour)
    security: SecurityLevel = Field(default_factory=SecurityLevel)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    callouts: CalloutConfig = Field(default_factory=CalloutConfig)
    webhooks: WebhookConfig = Field(default_factory=WebhookConfig)
    faults: FaultConfig = Field(default_factory=FaultConfig)
    changes: ChangeGeneratorConfig = Field(default_factory=ChangeGeneratorConfig)

    def scaled(self, seconds: float) -> float:
        """A real-Autotask duration converted to simulator time."""
        return seconds * self.time_scale


__all__ = [
    "ApiBehaviour",
    "CalloutConfig",
    "ChangeGeneratorConfig",
    "DeactivationTrigger",
    "EntityPermission",
    "FaultConfig",
    "LimitsConfig",
    "PermissionAction",
    "SecurityLevel",
    "SimulatorConfig",
    "WebhookConfig",
]
