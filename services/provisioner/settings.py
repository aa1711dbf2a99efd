"""Settings of the provisioner (read once at start; docs/configuration.md lists them).

They are the deployment-wide defaults of every connection's webhooks; a connection's scope
(``webhooks`` in shared/scope/rules.py) overrides them for that connection. They derive from
:class:`~shared.settings.AutotaskSettings`, so the environment connection is served too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from shared.entities import default_webhook_entities, find_rest_name, webhook_entities
from shared.scope.rules import WebhookEvent
from shared.settings import AutotaskSettings, Duration, Within, http_url

EVENTS: tuple[WebhookEvent, ...] = ("create", "update", "delete")


def _comma_list(value: Any) -> Any:
    """``"Tickets, Companies"`` from the environment; lists pass through."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)]
CommaInts = Annotated[tuple[int, ...], NoDecode, BeforeValidator(_comma_list)]


class ProvisionerSettings(AutotaskSettings):
    """The provisioner's settings: the shared ones plus the desired webhook definition."""

    production_mode: bool = Field(
        default=True,
        description="Refuse a gateway URL that is not https (Autotask delivers callouts to "
        "https on port 443). Turn off only for local development against the simulator.",
    )
    gateway_public_url: str = Field(
        default="",
        description="The gateway's public base URL, as Autotask reaches it; webhooks call "
        "{url}/v1/callouts/{registration} and {url}/v1/deactivations/{registration}.",
    )
    webhook_entities: CommaList = Field(
        default=tuple(spec.rest_name for spec in default_webhook_entities()),
        description="Entities that get a webhook, comma-separated REST names (of those the "
        "connection's scope syncs).",
    )
    webhook_events: CommaList = Field(
        default=EVENTS, description="Events the webhooks subscribe to: create, update, delete."
    )
    webhook_notification_email: str = Field(
        default="",
        description="Address Autotask e-mails about failing or delayed callouts (empty: only "
        "the API user, as the webhooks' owner).",
    )
    webhook_threshold_notifications: bool = Field(
        default=True,
        description="Also e-mail when delivery is delayed by API thresholds (needs the e-mail).",
    )
    webhook_exclude_api_user: bool = Field(
        default=True,
        description="Exclude the API user's own resource from every webhook, so the "
        "integration's writes never call it back.",
    )
    webhook_excluded_resources: CommaInts = Field(
        default=(), description="More resource ids to exclude from every webhook."
    )
    webhook_secret_overlap: Annotated[Duration, Within("1s", "24h")] = Field(
        default=timedelta(minutes=10),
        description="How long the previous secret keeps verifying after a rotation.",
    )
    provisioner_interval: Annotated[Duration, Within("5s", "24h")] = Field(
        default=timedelta(minutes=10),
        description="How often every connection's webhooks are re-planned and healed.",
    )
    provisioner_event_coalesce: Annotated[Duration, Within("1s", "24h")] = Field(
        default=timedelta(minutes=1),
        description="Deactivation and reprovision events re-plan a connection at most once "
        "per this window.",
    )
    provisioner_deactivation_window: Annotated[Duration, Within("1s", "24h")] = Field(
        default=timedelta(minutes=15),
        description="Deactivation notices alone (unsigned: anyone who learns the URL can send "
        "them) re-plan a connection at most once per this window.",
    )
    provisioner_group_id: str = Field(
        default="autotask-sync-provisioner",
        description="Kafka consumer group of the control topic.",
    )
    provisioner_metadata_ttl: Annotated[Duration, Within("1m", "24h")] = Field(
        default=timedelta(hours=1),
        description="How long the service trusts an entity's field metadata before reading "
        "it again (new UDFs are subscribed after at most this long).",
    )
    provisioner_lock_wait: Annotated[Duration, Within("1s", "1h")] = Field(
        default=timedelta(seconds=30),
        description="How long `provision apply` waits for another apply of the same "
        "connection to finish.",
    )

    @field_validator("webhook_entities")
    @classmethod
    def _webhook_entities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = []
        for name in value:
            spec = find_rest_name(name)
            if spec is None or not spec.has_webhooks:
                choices = ", ".join(s.rest_name for s in webhook_entities())
                raise ValueError(f"{name!r} is not an entity with webhooks (choose from {choices})")
            names.append(spec.rest_name)
        return tuple(dict.fromkeys(names))

    @field_validator("webhook_events")
    @classmethod
    def _events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        events = tuple(dict.fromkeys(event.lower() for event in value))
        unknown = [event for event in events if event not in EVENTS]
        if unknown or not events:
            raise ValueError("choose one or more of create, update, delete")
        return events

    @field_validator("gateway_public_url")
    @classmethod
    def _gateway_url(cls, value: str, info: ValidationInfo) -> str:
        url = value.strip().rstrip("/")
        if not url:
            return ""
        parts = urlsplit(http_url(url))
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or fragment")
        if info.data.get("production_mode", True) and parts.scheme != "https":
            raise ValueError(
                "must be https in production mode: Autotask delivers callouts over https "
                "(port 443); put the gateway behind TLS, or set "
                "AUTOTASK_SYNC_PRODUCTION_MODE=false for local development"
            )
        return url


__all__ = ["EVENTS", "ProvisionerSettings"]
