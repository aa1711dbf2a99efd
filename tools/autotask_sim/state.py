"""The simulator's truth: one object holding the tenant, webhooks, callouts, limits and faults.

``sim.state`` is this object. Tests read it directly (entities, webhooks, error log, request
counts, callout log); the HTTP layer and the admin API are views over it. Construction generates
the tenant, which for a 100,000-ticket tenant takes seconds, so the server builds it in a worker
thread.
"""

from __future__ import annotations

import hashlib
import json

from tools.autotask_sim.access.faults import FaultInjector
from tools.autotask_sim.access.limits import Limits, RequestStats
from tools.autotask_sim.access.users import ApiUser, UserDirectory
from tools.autotask_sim.callouts.delivery import CalloutDispatcher
from tools.autotask_sim.callouts.events import EventBus
from tools.autotask_sim.callouts.matching import CalloutMatcher
from tools.autotask_sim.changegen import ChangeGenerator
from tools.autotask_sim.clock import SimClock, utc_now
from tools.autotask_sim.config import (
    ApiBehaviour,
    FaultConfig,
    LimitsConfig,
    PermissionAction,
    SecurityLevel,
    SimulatorConfig,
)
from tools.autotask_sim.datagen import generate_tenant
from tools.autotask_sim.jsontypes import Record
from tools.autotask_sim.query.paging import TokenCodec
from tools.autotask_sim.store.tenant import Tenant
from tools.autotask_sim.store.webhooks import WebhookRegistry

# Zone names as listed in the fact sheet (§1); unknown numbers get a generic name.
ZONE_NAMES = {
    1: "Limited Release",
    2: "Pre-release",
    3: "America East",
    4: "UK",
    5: "America West",
    6: "Australia",
    11: "Pre-release UK",
    12: "Spanish",
    14: "America East 2",
    15: "America West 2",
    16: "UK2",
    17: "Limited Release UK",
    18: "German (DE1)",
    19: "EU1 (English Europe and Asia)",
    22: "America East 3",
    24: "America West 3",
    25: "America West 4",
    26: "Australia 2",
    28: "UK3",
    29: "Australia / New Zealand",
}


class SimulatorState:
    """Everything the simulated tenant knows; mutate it through its methods."""

    def __init__(self, config: SimulatorConfig) -> None:
        # A private deep copy: admin changes must never leak into the caller's config object.
        self.config = config.model_copy(deep=True)
        self.zone = self.config.zone
        self.clock = SimClock(self.config.api.timestamp_z)
        self.anchor = self.config.anchor_time or utc_now()
        data = generate_tenant(self.config, self.clock, self.anchor)
        self.bus = EventBus()
        self.tenant = Tenant(self.clock, self.bus, data)
        assert data.api_user is not None
        creds = data.api_user
        self.users = UserDirectory(self.config)
        self.api_user = ApiUser(
            creds.username,
            creds.secret,
            creds.integration_code,
            creds.resource_id,
            self.config.security,
        )
        self.users.add(self.api_user)
        seed = self.config.seed
        self.webhooks = WebhookRegistry(self.config, self.clock, self.tenant.exists, seed)
        self.matcher = CalloutMatcher(self.webhooks, self.config, self._owner_can_read)
        self.dispatcher = CalloutDispatcher(
            self.config, lambda: self.config.faults, self.webhooks, self.matcher, self.clock
        )
        self.bus.subscribe(self.dispatcher.on_event)
        self.bus.subscribe(self.webhooks.on_change)
        self.limits = Limits(self.config)
        self.faults = FaultInjector(lambda: self.config.faults, seed)
        change_seed = self.config.changes.seed if self.config.changes.seed is not None else seed
        self.changes = ChangeGenerator(
            self.tenant, lambda: self.config.changes, change_seed, creds.resource_id
        )
        key = hashlib.sha256(f"paging:{seed}:{id(self)}".encode()).digest()
        self.tokens = TokenCodec(key)

    # -------------------------------------------------------------- views

    @property
    def requests(self) -> RequestStats:
        return self.limits.stats

    def entities(self, entity: str) -> list[Record]:
        """All records of ``entity`` (REST name, any case) in id order, exactly as GET returns
        them: independent copies, so they compare equal to parsed API JSON.

        Copies cost time on big tenants; ``tenant.require(entity).rows()`` gives the stored
        records themselves (read-only by convention).
        """
        table = self.tenant.require(entity)
        return [json.loads(table.encoded(record)) for record in table.rows()]

    def entity(self, entity: str, record_id: int) -> Record | None:
        """One record as GET returns it, or None."""
        table = self.tenant.require(entity)
        record = table.get(record_id)
        return None if record is None else json.loads(table.encoded(record))

    def webhook_list(self, root: str | None = None) -> list[Record]:
        """Webhooks (all roots, or one) with their children, as the admin API shows them."""
        out: list[Record] = []
        for registry_root in self.webhooks.roots.values():
            if root is not None and registry_root.name.lower() != root.lower():
                continue
            for webhook in registry_root.webhooks.rows():
                webhook_id = webhook["id"]
                item = dict(webhook)
                item["root"] = registry_root.name
                for kind, table in registry_root.children.items():
                    item[kind[0].lower() + kind[1:]] = [
                        c for c in table.rows() if c.get("webhookID") == webhook_id
                    ]
                out.append(item)
        return out

    def error_log(self) -> list[Record]:
        """``WebhookEventErrorLogs`` rows as the API returns them, plus the truth the API does
        not show for most webhooks: ``root`` and ``webhookId`` of the webhook behind each row."""
        out: list[Record] = []
        for row in self.webhooks.error_log.rows():
            source = self.webhooks.error_log_sources.get(row["id"])
            extra: Record = {"root": None, "webhookId": None}
            if source is not None:
                extra = {"root": source.root, "webhookId": source.webhook_id}
            out.append({**row, **extra})
        return out

    @property
    def callout_log(self) -> list[Record]:
        return list(self.dispatcher.log)

    # ------------------------------------------------------------ controls

    def set_faults(self, **changes: object) -> FaultConfig:
        """Merge ``changes`` into the fault settings (validated) and return the result.

        Durations may be timedelta, seconds or unit strings (the admin API sends numbers).
        """
        merged = self.config.faults.model_dump() | changes
        self.config.faults = FaultConfig.model_validate(merged)
        return self.config.faults

    def set_limits(self, **changes: object) -> LimitsConfig:
        """Merge ``changes`` into the limits (validated) and return the result."""
        merged = self.config.limits.model_dump() | changes
        self.config.limits = LimitsConfig.model_validate(merged)
        return self.config.limits

    def set_api(self, **changes: object) -> ApiBehaviour:
        """Merge ``changes`` into the API behaviour (validated) and return the result."""
        merged = self.config.api.model_dump() | changes
        self.config.api = ApiBehaviour.model_validate(merged)
        return self.config.api

    def clear_faults(self) -> None:
        self.config.faults = FaultConfig()

    def move_zone(self, zone: int) -> None:
        """Move the tenant: the old zone path answers 401, zoneInformation points at ``zone``."""
        self.zone = zone

    def set_security(self, level: SecurityLevel, username: str | None = None) -> None:
        """Replace a user's security level (the seeded API user by default)."""
        user = self.users.find(username) if username else self.api_user
        if user is None:
            raise KeyError(username)
        user.security = level
        if user is self.api_user:
            self.config.security = level

    def add_api_user(
        self,
        username: str,
        secret: str,
        integration_code: str,
        resource_id: int | None = None,
        security: SecurityLevel | None = None,
    ) -> ApiUser:
        """Another API user (e.g. a second integration sharing the database's budget)."""
        user = ApiUser(
            username,
            secret,
            integration_code,
            resource_id if resource_id is not None else self.api_user.resource_id,
            security or SecurityLevel(),
        )
        self.users.add(user)
        return user

    def unlock(self, username: str | None = None) -> None:
        user = self.users.find(username) if username else self.api_user
        if user is not None:
            user.locked = False
            user.failed_logins = 0

    def reset_counters(self) -> None:
        """Forget request statistics and the hourly window (not the data)."""
        self.limits.stats.reset()
        self.limits.reset_window()

    def _owner_can_read(self, resource_id: int, entity: str) -> bool:
        user = self.users.by_resource(resource_id)
        return user is None or user.security.allows(entity, "read")

    def allows(self, user: ApiUser, entity: str, action: PermissionAction) -> bool:
        return user.security.allows(entity, action)


__all__ = ["ZONE_NAMES", "SimulatorState"]
