"""Seeded churn: creates, updates and deletes across entities, as people in the UI would make.

Every change is planned from one RNG and the tenant's current ids, then applied through the same
:class:`Tenant` methods the REST API uses, so it moves last-modified fields, writes delete logs
and fires callouts like any other change. Changes are attributed to human resources (never the
API user), so webhooks that exclude the integration's own user still fire.

Reproducible: the same seed on the same tenant yields the same sequence of changes (entity,
action, id, values, person), whether applied in a burst (``apply``) or at a rate (``start``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tools.autotask_sim.apierror import ApiError
from tools.autotask_sim.catalog import picklists as pl
from tools.autotask_sim.catalog import sample_text as txt
from tools.autotask_sim.config import ChangeGeneratorConfig
from tools.autotask_sim.datagen import SYSTEM_RESOURCE_ID
from tools.autotask_sim.jsontypes import JsonObject
from tools.autotask_sim.store.tenant import Tenant

_ENTITIES = ("Tickets", "TicketNotes", "Companies", "Contacts", "ConfigurationItems")


class ChangeGenerator:
    """Plans and applies changes; optionally runs in the background at a target rate."""

    def __init__(
        self,
        tenant: Tenant,
        settings: Callable[[], ChangeGeneratorConfig],
        seed: int,
        api_user: int,
    ) -> None:
        self.tenant = tenant
        self._settings = settings
        self._api_user = api_user
        self.seed = seed
        self._rng = random.Random(seed)
        self.applied: list[JsonObject] = []
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self.rate = 0.0

    def reseed(self, seed: int) -> None:
        """Restart the sequence from ``seed`` (the applied log is kept)."""
        self.seed = seed
        self._rng = random.Random(seed)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # ------------------------------------------------------------ planning

    def _pick_id(self, entity: str) -> int | None:
        table = self.tenant.require(entity)
        if not len(table):
            return None
        return table.id_at(int(self._rng.random() * len(table)))

    def _choice(self, seq: tuple[Any, ...] | list[Any]) -> Any:
        return seq[int(self._rng.random() * len(seq))]

    def _humans(self) -> list[int]:
        resources = self.tenant.require("Resources")
        humans = [i for i in resources.ids() if i not in (SYSTEM_RESOURCE_ID, self._api_user)]
        return humans or [self._api_user]  # a one-resource tenant has only the API user

    def _person(self) -> int:
        """Who makes the change: mostly people, sometimes workflow rules (resource 4)."""
        if self._rng.random() < 0.05:
            return SYSTEM_RESOURCE_ID
        return int(self._choice(self._humans()))

    def plan(self) -> tuple[str, str, int | None, JsonObject]:
        """The next change: (entity, action, target id, body)."""
        settings = self._settings()
        weights = [max(0.0, settings.entity_weights.get(e, 0.0)) for e in _ENTITIES]
        if not any(weights):
            weights = [1.0] * len(_ENTITIES)
        entity = self._rng.choices(_ENTITIES, weights)[0]
        action = self._rng.choices(
            ("create", "update", "delete"),
            (settings.create_weight, settings.update_weight, settings.delete_weight),
        )[0]
        target = None if action == "create" else self._pick_id(entity)
        if target is None:
            action = "create"
        if entity == "ConfigurationItems" and action == "delete":
            action = "update"  # CIs cannot be deleted; they are deactivated instead
            return entity, action, target, {"id": target, "isActive": False}
        if action == "delete":
            return entity, action, target, {}
        body = self._create_body(entity) if action == "create" else self._update_body(entity)
        if target is not None:
            body = {"id": target, **body}
        return entity, action, target, body

    def _create_body(self, entity: str) -> JsonObject:
        c = self._choice
        if entity == "Tickets":
            return {
                "companyID": self._pick_id("Companies"),
                "title": c(txt.TICKET_SUBJECTS) + c(txt.TICKET_CONTEXT),
                "description": c(txt.DESCRIPTION_SENTENCES),
                "status": 1,
                "priority": c([p.value for p in pl.TICKET_PRIORITY]),
                "queueID": c([p.value for p in pl.TICKET_QUEUE]),
            }
        if entity == "TicketNotes":
            return {
                "ticketID": self._pick_id("Tickets"),
                "title": c(txt.NOTE_TITLES),
                "description": c(txt.DESCRIPTION_SENTENCES),
                "noteType": c((1, 2, 3)),
                "publish": c((1, 2)),
            }
        if entity == "Companies":
            return {
                "companyName": f"{c(txt.COMPANY_WORDS)} {c(txt.COMPANY_SUFFIXES)}",
                "companyType": c((1, 2, 3)),
                "phone": f"+1-555-{self._rng.randrange(1000, 9999)}",
                "ownerResourceID": self._person_not_system(),
            }
        if entity == "Contacts":
            first, last = c(txt.FIRST_NAMES), c(txt.LAST_NAMES)
            return {
                "companyID": self._pick_id("Companies"),
                "firstName": first,
                "lastName": last,
                "emailAddress": f"{first}.{last}@example.org".lower(),
                "isActive": 1,
            }
        return {
            "companyID": self._pick_id("Companies"),
            "referenceTitle": f"{c(txt.CI_PRODUCTS)} (new)",
            "serialNumber": f"SN{self._rng.randrange(16**8):08X}",
            "isActive": True,
        }

    def _update_body(self, entity: str) -> JsonObject:
        c, r = self._choice, self._rng
        options: dict[str, Callable[[], Any]]
        if entity == "Tickets":
            options = {
                "status": lambda: c([p.value for p in pl.TICKET_STATUS]),
                "priority": lambda: c([p.value for p in pl.TICKET_PRIORITY]),
                "title": lambda: c(txt.TICKET_SUBJECTS) + c(txt.TICKET_CONTEXT),
                "description": lambda: c(txt.DESCRIPTION_SENTENCES),
                "queueID": lambda: c([p.value for p in pl.TICKET_QUEUE]),
                "assignedResourceID": self._person_not_system,
                "dueDateTime": lambda: (
                    f"2026-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}T17:00:00Z"
                ),
            }
        elif entity == "TicketNotes":
            options = {
                "title": lambda: c(txt.NOTE_TITLES),
                "description": lambda: c(txt.DESCRIPTION_SENTENCES) + " (edited)",
            }
        elif entity == "Companies":
            options = {
                "phone": lambda: f"+1-555-{r.randrange(1000, 9999)}",
                "city": lambda: c(txt.CITIES),
                "address1": lambda: f"{r.randrange(1, 999)} {c(txt.STREETS)}",
                "isActive": lambda: r.random() > 0.2,
            }
        elif entity == "Contacts":
            options = {
                "title": lambda: c(txt.JOB_TITLES) or "Staff",
                "phone": lambda: f"+1-555-{r.randrange(1000, 9999)}",
                "lastName": lambda: c(txt.LAST_NAMES),
            }
        else:
            options = {
                "serialNumber": lambda: f"SN{r.randrange(16**8):08X}",
                "referenceTitle": lambda: f"{c(txt.CI_PRODUCTS)} (renamed)",
                "isActive": lambda: r.random() > 0.3,
            }
        names = sorted(options)
        picked = r.sample(names, k=min(len(names), 1 + int(r.random() * 2)))
        return {name: options[name]() for name in sorted(picked)}

    def _person_not_system(self) -> int:
        """A person who can own or be assigned records (the system resource cannot)."""
        return int(self._choice(self._humans()))

    # ------------------------------------------------------------- applying

    def apply_next(self) -> JsonObject:
        """Plan and apply one change; returns its log entry."""
        entity, action, target, body = self.plan()
        person = self._person()
        entry: JsonObject = {
            "seq": len(self.applied) + 1,
            "entity": entity,
            "action": action,
            "id": target,
            "fields": {k: v for k, v in body.items() if k != "id"},
            "personId": person,
        }
        try:
            if action == "create":
                record = self.tenant.create(entity, body, person)
                entry["id"] = record["id"]
            elif action == "update":
                self.tenant.update(entity, body, person)
            else:
                assert target is not None
                self.tenant.delete(entity, target, person)
        except ApiError as exc:
            self.failures += 1
            entry["error"] = "; ".join(exc.errors)
        self.applied.append(entry)
        return entry

    def apply(self, count: int) -> list[JsonObject]:
        """Apply ``count`` changes at once."""
        return [self.apply_next() for _ in range(count)]

    def start(
        self, rate: float, *, count: int | None = None, duration: timedelta | None = None
    ) -> None:
        """Apply changes in the background at ``rate`` per second until stopped (or done)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.stop_nowait()
        self.rate = rate
        self._task = asyncio.get_running_loop().create_task(self._run(rate, count, duration))

    async def _run(self, rate: float, count: int | None, duration: timedelta | None) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = None if duration is None else start + duration.total_seconds()
        done = 0
        while count is None or done < count:
            if end is not None and loop.time() >= end:
                break
            self.apply_next()
            done += 1
            # Schedule against the start time so the achieved rate does not drift.
            delay = start + done / rate - loop.time()
            await asyncio.sleep(max(0.0, delay))

    def stop_nowait(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def wait_done(self) -> None:
        """Until a generator started with ``count`` or ``duration`` has applied everything."""
        task = self._task
        if task is not None:
            await asyncio.shield(task)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.rate = 0.0

    def status(self) -> JsonObject:
        return {
            "running": self.running,
            "rate": self.rate,
            "seed": self.seed,
            "applied": len(self.applied),
            "failures": self.failures,
        }


__all__ = ["ChangeGenerator"]
