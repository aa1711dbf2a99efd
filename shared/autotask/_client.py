"""The async Autotask REST client: the calls, over the pipeline in ``_caller.py``.

    async with AutotaskClient(Connection.from_settings(settings)) as client:
        ticket = await client.get("Tickets", 42)
        async for page in client.query_pages("Tickets", Query.where(F("status").noteq(5))):
            ...
        batch = await client.fetch_by_ids("Tickets", changed_ids, priority=Priority.WEBHOOK)
        await client.create(Child("TicketWebhooks", 7, "Fields"), {"fieldID": 4, ...})

Use one client per connection and process: it holds the connection's session, zone cache,
limiter and budget tracker, which only work when shared. Give every client of a deployment the
same ``coordinator`` (``shared.apibudget``) and the limits hold across processes too.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import aiohttp
import structlog
from pydantic import BaseModel, ValidationError

from shared.autotask import _batch as batch
from shared.autotask._budget import BudgetTracker
from shared.autotask._caller import Caller, next_path
from shared.autotask._clock import SYSTEM_CLOCK, Clock
from shared.autotask._config import ClientConfig
from shared.autotask._coordination import Coordinator
from shared.autotask._errors import is_html_page
from shared.autotask._limiter import Limiter, Priority
from shared.autotask._models import (
    BatchResult,
    Entity,
    EntityInfo,
    FieldInfo,
    Page,
    ThresholdInfo,
    UdfDefinition,
)
from shared.autotask._query import Query, QueryLike, count_body, query_body
from shared.autotask._retry import RetryPolicy
from shared.autotask._targets import Child, Target, label_of, path_of
from shared.autotask._tenant import Connection, ZoneResolver
from shared.errors import AutotaskServerError, NotFoundError
from shared.settings import AutotaskSettings

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

# Metadata and usage reads are for people and planners: never queued behind sweeps.
_META = Priority.INTERACTIVE
# Budget readings must not spin: one retry, short deadline, they are optional anyway.
_THRESHOLD_POLICY = RetryPolicy(
    max_attempts=2, base_delay=timedelta(seconds=1), deadline=timedelta(seconds=30)
)


class AutotaskClient:
    """Calls Autotask for one connection. Safe to share between tasks."""

    def __init__(
        self,
        connection: Connection,
        *,
        config: ClientConfig | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        coordinator: Coordinator | None = None,
    ) -> None:
        self.connection = connection
        self.config = config or ClientConfig()
        self._caller = Caller(
            connection,
            self.config,
            session=session,
            clock=clock,
            rng=rng or random.Random(),
            coordinator=coordinator,
        )
        self._caller.budget.bind(self._read_threshold)
        # Zone roots whose collection-level PATCH answers an HTML 404 (seen in DE1): updates
        # there go by PUT (autotask-api.md §1).
        self._put_only: set[str] = set()

    @classmethod
    def from_settings(cls, settings: AutotaskSettings, **kwargs: Any) -> AutotaskClient:
        """A client for the connection configured by ``AUTOTASK_SYNC_AUTOTASK_*``."""
        return cls(Connection.from_settings(settings), **kwargs)

    @property
    def limiter(self) -> Limiter:
        return self._caller.limiter

    @property
    def budget(self) -> BudgetTracker:
        return self._caller.budget

    @property
    def zone(self) -> ZoneResolver:
        return self._caller.zone

    @property
    def coordinator(self) -> Coordinator:
        """Where the connection's slots, budget and lockout live (in-process by default)."""
        return self._caller.coordinator

    def __repr__(self) -> str:
        info = self.zone.info
        root = self.connection.zone_url or (info.url if info else None)
        return (
            f"AutotaskClient(connection={self.connection.name!r}, "
            f"username={self.connection.username!r}, zone={root!r})"
        )

    async def __aenter__(self) -> AutotaskClient:
        self._caller.transport()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if the client created it (a borrowed one stays open)."""
        await self._caller.close()

    # --- reads -----------------------------------------------------------------------------
    async def get(
        self, entity: Target, entity_id: int, *, priority: Priority | None = None
    ) -> Entity:
        """``GET /{Entity}/{id}``; NotFoundError for a 404 and for ``{"item": null}`` alike."""
        data = await self._caller.call(
            "GET",
            entity,
            f"{path_of(entity)}/{entity_id}",
            action="read",
            priority=priority,
            item_id=entity_id,
        )
        item = data.get("item")
        if item is None and isinstance(data.get("items"), list):  # TicketAttachments' shape
            item = next((i for i in data["items"] if i.get("id") == entity_id), None)
        if not isinstance(item, dict):
            raise NotFoundError(
                f"{label_of(entity)} {entity_id} was not found (Autotask answered with no "
                "item): it does not exist, was deleted, or the API user cannot see it",
                status=200,
            )
        return item

    async def query_pages(
        self, entity: Target, query: QueryLike | None = None, *, priority: Priority | None = None
    ) -> AsyncIterator[Page]:
        """Pages of ``POST /{Entity}/query``, POSTing each ``nextPageUrl`` with the same body."""
        body = query_body(query if query is not None else Query.all())
        path = f"{path_of(entity)}/query"
        seen: set[str] = set()
        number = 0
        while True:
            data = await self._caller.call(
                "POST", entity, path, action="read", priority=priority, body=body, expect="items"
            )
            number += 1
            next_url = _next_url(data)
            yield Page(items=list(data["items"]), next_page_url=next_url, number=number)
            if next_url is None:
                return
            path = next_path(next_url)
            if path in seen:
                raise AutotaskServerError(
                    f"Autotask returned the same nextPageUrl twice for {label_of(entity)}; "
                    "stopped the walk rather than loop",
                    retriable=False,
                )
            seen.add(path)

    async def query(
        self, entity: Target, query: QueryLike | None = None, *, priority: Priority | None = None
    ) -> AsyncIterator[Entity]:
        """Every row of a query, page after page."""
        async for page in self.query_pages(entity, query, priority=priority):
            for item in page.items:
                yield item

    async def query_all(
        self, entity: Target, query: QueryLike | None = None, *, priority: Priority | None = None
    ) -> list[Entity]:
        """All rows of a query in one list (mind the size)."""
        return [item async for item in self.query(entity, query, priority=priority)]

    async def count(
        self, entity: Target, query: QueryLike | None = None, *, priority: Priority | None = None
    ) -> int:
        """``POST /{Entity}/query/count``."""
        body = count_body(query if query is not None else Query.all())
        path = f"{path_of(entity)}/query/count"
        data = await self._caller.call(
            "POST", entity, path, action="read", priority=priority, body=body, expect="queryCount"
        )
        return int(data["queryCount"])

    async def list_children(
        self, child: Child, *, priority: Priority | None = None
    ) -> list[Entity]:
        """``GET /{Parent}/{id}/{Child}``: every row, for children without ``/query``."""
        rows: list[Entity] = []
        path = child.path
        while True:
            data = await self._caller.call(
                "GET", child, path, action="read", priority=priority, expect="items"
            )
            rows.extend(data["items"])
            next_url = _next_url(data)
            if next_url is None:
                return rows
            path = next_path(next_url)

    async def fetch_by_ids(
        self,
        entity: str,
        ids: Iterable[int],
        *,
        include_fields: Sequence[str] = (),
        chunk_size: int | None = None,
        priority: Priority | None = None,
    ) -> BatchResult:
        """Many entities by id with ``in`` queries (see :func:`batch.fetch_by_ids`)."""
        return await batch.fetch_by_ids(
            self.query_pages,
            entity,
            ids,
            include_fields=include_fields,
            chunk_size=chunk_size or self.config.batch_size,
            priority=priority,
        )

    # --- writes ----------------------------------------------------------------------------
    async def create(
        self, entity: Target, fields: Mapping[str, Any], *, priority: Priority | None = None
    ) -> int:
        """``POST /{Entity}`` (or a child collection); returns the new ``itemId``."""
        data = await self._caller.call(
            "POST",
            entity,
            path_of(entity),
            action="create",
            priority=priority,
            body=dict(fields),
            expect="itemId",
        )
        return int(data["itemId"])

    async def update(
        self, entity: Target, fields: Mapping[str, Any], *, priority: Priority | None = None
    ) -> int:
        """``PATCH /{Entity}`` with ``id`` in the body (there is no ``PATCH /{id}``).

        Where a zone answers that PATCH with an HTML 404 (reported in DE1), the update is made
        as ``PUT /{Entity}`` (the documented form, id in the body) with the current entity and
        the changes merged, since PUT replaces the whole entity; the zone is remembered and
        later updates there go by PUT at once.
        """
        entity_id = fields.get("id", fields.get("Id"))
        if entity_id is None:
            raise ValueError("update needs the entity's 'id' in fields")
        root = await self._caller.rest_root()
        if root in self._put_only:
            return await self._update_by_put(entity, int(entity_id), fields, priority)
        try:
            data = await self._caller.call(
                "PATCH",
                entity,
                path_of(entity),
                action="update",
                priority=priority,
                body=dict(fields),
                item_id=int(entity_id),
                allow_empty=True,
            )
        except NotFoundError as exc:
            if not is_html_page(exc):
                raise
            self._put_only.add(root)
            log.warning(
                "autotask.patch_unsupported",
                connection=self.connection.name,
                zone=self.zone.info.zone_name if self.zone.info else None,
                resource=label_of(entity),
            )
            return await self._update_by_put(entity, int(entity_id), fields, priority)
        return int(data.get("itemId", entity_id))

    async def _update_by_put(
        self,
        entity: Target,
        entity_id: int,
        fields: Mapping[str, Any],
        priority: Priority | None,
    ) -> int:
        """Read the entity, merge ``fields`` into it, ``PUT`` the whole of it back."""
        current = await self.get(entity, entity_id, priority=priority)
        data = await self._caller.call(
            "PUT",
            entity,
            path_of(entity),
            action="update",
            priority=priority,
            body=merge_update(current, fields),
            item_id=entity_id,
            allow_empty=True,
        )
        return int(data.get("itemId", entity_id))

    async def delete(
        self, entity: Target, entity_id: int, *, priority: Priority | None = None
    ) -> None:
        """``DELETE /{Entity}/{id}``; a missing id raises NotFoundError."""
        await self._caller.call(
            "DELETE",
            entity,
            f"{path_of(entity)}/{entity_id}",
            action="delete",
            priority=priority,
            item_id=entity_id,
            allow_empty=True,
        )

    # --- metadata and usage ----------------------------------------------------------------
    async def entity_information(self, entity: str) -> EntityInfo:
        """``/{Entity}/entityInformation``: what the API allows with the entity."""
        path = f"{entity}/entityInformation"
        data = await self._caller.call(
            "GET", entity, path, action="read", priority=_META, expect="info"
        )
        return _parse(EntityInfo, data["info"], path)

    async def field_info(self, entity: str) -> list[FieldInfo]:
        """``/{Entity}/entityInformation/fields``: types, picklists, webhook support."""
        path = f"{entity}/entityInformation/fields"
        data = await self._caller.call(
            "GET", entity, path, action="read", priority=_META, expect="fields"
        )
        return [_parse(FieldInfo, f, path) for f in data["fields"]]

    async def udf_definitions(self, entity: str) -> list[UdfDefinition]:
        """``/{Entity}/entityInformation/userDefinedFields``."""
        path = f"{entity}/entityInformation/userDefinedFields"
        data = await self._caller.call(
            "GET", entity, path, action="read", priority=_META, expect="fields"
        )
        return [_parse(UdfDefinition, f, path) for f in data["fields"]]

    async def threshold_information(self) -> ThresholdInfo:
        """``/ThresholdInformation`` (it costs a call); also refreshes the budget tracker."""
        return await self._read_threshold()

    async def rest_root(self) -> str:
        """The REST root in use, discovering the zone first if needed."""
        return await self._caller.rest_root()

    async def _read_threshold(self) -> ThresholdInfo:
        data = await self._caller.call(
            "GET",
            "ThresholdInformation",
            "ThresholdInformation",
            action="read",
            priority=_META,
            expect="externalRequestThreshold",
            budgeted=False,
            policy=_THRESHOLD_POLICY,
        )
        info = _parse(ThresholdInfo, data, "ThresholdInformation")
        self.budget.observe(info)
        return info


def _parse(model: type[M], data: Any, what: str) -> M:
    """Validate an answer we interpret; a shape we cannot read is Autotask's error, typed."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise AutotaskServerError(
            f"Autotask answered {what} in a shape the client cannot read "
            f"({exc.error_count()} problems, first at {exc.errors()[0]['loc']})",
            retriable=False,
        ) from None


def merge_update(current: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` with ``fields`` applied, field names matched case-insensitively (Autotask's
    are) and user-defined fields merged by name: a full body for ``PUT``."""
    merged = dict(current)
    names = {key.lower(): key for key in merged}
    for key, value in fields.items():
        if key.lower() == "userdefinedfields" and isinstance(value, list):
            existing = merged.get(names.get("userdefinedfields", key))
            merged[names.get("userdefinedfields", key)] = _merge_udfs(
                existing if isinstance(existing, list) else [], value
            )
            continue
        merged[names.get(key.lower(), key)] = value
    return merged


def _merge_udfs(current: list[Any], changes: list[Any]) -> list[Any]:
    changed = {
        str(u.get("name")).lower(): u for u in changes if isinstance(u, Mapping) and "name" in u
    }
    merged = [
        changed.pop(str(u.get("name")).lower(), u) if isinstance(u, Mapping) else u for u in current
    ]
    return merged + list(changed.values())


def _next_url(data: Mapping[str, Any]) -> str | None:
    details = data.get("pageDetails")
    url = details.get("nextPageUrl") if isinstance(details, Mapping) else None
    return url if isinstance(url, str) and url else None


__all__ = ["AutotaskClient"]
