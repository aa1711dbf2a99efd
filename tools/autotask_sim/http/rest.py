"""Route shapes of the REST API (§3) mapped onto collections.

    /{Entity}                          POST create · PATCH / PUT update (id in body);
                                       PATCH an HTML 404 with ``api.collection_patch="html_404"``
    /{Entity}/{id}                     GET · DELETE · PUT (PATCH → 405)
    /{Entity}/query                    GET ?search= · POST body
    /{Entity}/query/count              GET ?search= · POST body
    /{Entity}/query/next?paging=       POST same body (POST queries) · GET (GET queries)
    /{Entity}/entityInformation[/fields|/userDefinedFields]
    /{Parent}/{id}/{Child}[/{childId}] list · create · update (id in body) · get · delete
    /ThresholdInformation

Authentication, limits and faults happen before this module (see ``gateway``).
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from shared.entities import find_rest_name
from shared.integers import parse_int
from tools.autotask_sim.access.users import ApiUser
from tools.autotask_sim.apierror import method_not_allowed, not_found
from tools.autotask_sim.config import PermissionAction
from tools.autotask_sim.http.collections import (
    ChildCollection,
    Collection,
    Ctx,
    build_collections,
    require_permission,
)
from tools.autotask_sim.http.query_routes import QueryRoutes, encode_record
from tools.autotask_sim.http.responses import (
    json_response,
    object_body,
    raw_json_response,
    read_json,
)
from tools.autotask_sim.jsontypes import JsonObject, Record
from tools.autotask_sim.state import SimulatorState

THRESHOLD = "thresholdinformation"
IIS_NOT_FOUND = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n'
    "<html><head><title>404 - File or directory not found.</title></head>"
    "<body><h2>404 - File or directory not found.</h2><h3>The resource you are looking for "
    "might have been removed, had its name changed, or is temporarily unavailable.</h3>"
    "</body></html>"
)
"""The page a missing route gets from the web server in front of the API (HTML, not JSON)."""
# SOAP-era method names, which the thread-limit text carries (only the ThresholdInformation one,
# getThresholdAndUsageInfo, is seen in a real message; the mapping of the others is assumed).
_SOAP_METHODS = {
    "GET": "query",
    "POST": "create",
    "PUT": "update",
    "PATCH": "update",
    "DELETE": "delete",
}
_SOAP_INFO_METHODS = {
    "": "getEntityInfo",
    "fields": "getFieldInfo",
    "userdefinedfields": "getUDFInfo",
}


class RestApi:
    """Handles one authenticated API request addressed by its path segments."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.collections = build_collections(state)
        self.queries = QueryRoutes(state)

    def endpoint(self, segments: tuple[str, ...]) -> str:
        """The thread-limit / statistics endpoint: the canonical first segment."""
        head = segments[0].lower()
        if head == THRESHOLD:
            return "ThresholdInformation"
        coll = self.collections.get(head)
        return coll.name if coll is not None else segments[0]

    def method_name(self, segments: tuple[str, ...], http_method: str) -> str:
        """The method the thread-limit text names for this call."""
        lowered = [segment.lower() for segment in segments]
        if lowered[0] == THRESHOLD:
            return "getThresholdAndUsageInfo"
        rest = lowered[1:]
        if rest and rest[0] == "entityinformation":
            return _SOAP_INFO_METHODS.get(rest[1] if len(rest) > 1 else "", "getEntityInfo")
        if rest and rest[0] == "query":
            return "query"
        return _SOAP_METHODS.get(http_method, "query")

    async def dispatch(
        self, request: web.Request, segments: tuple[str, ...], ctx: Ctx
    ) -> web.Response:
        head, rest, method = segments[0].lower(), segments[1:], request.method
        if head == THRESHOLD:
            if rest:
                raise not_found()
            if method != "GET":
                raise method_not_allowed(method)
            return json_response(self._threshold())
        coll = self.collections.get(head)
        if coll is None:
            raise not_found()
        if not rest:
            return await self._collection_root(request, coll, ctx)
        first = rest[0].lower()
        if first == "query":
            return await self.queries.handle(request, coll, rest[1:], ctx)
        if first == "entityinformation":
            return self._info_routes(method, coll, rest[1:], ctx.user)
        record_id = _int(rest[0])
        if record_id is None:
            raise not_found()
        if len(rest) == 1:
            return await self._item(request, coll, record_id, ctx)
        child = coll.children.get(rest[1].lower())
        if child is None or len(rest) > 3:
            raise not_found()
        child_id = _int(rest[2]) if len(rest) == 3 else None
        if len(rest) == 3 and child_id is None:
            raise not_found()
        return await self._child(request, coll, child, record_id, child_id, ctx)

    # ------------------------------------------------------------- helpers

    def _threshold(self) -> JsonObject:
        """Flat and camelCase, not wrapped in ``item`` (§5).

        The timeframe is Autotask's 60 minutes even when a test shortens the window.
        """
        limits = self.state.limits
        return {
            "externalRequestThreshold": limits.config.hourly_limit,
            "requestThresholdTimeframe": 60,
            "currentTimeframeRequestCount": limits.usage(),
        }

    # ---------------------------------------------------------- /{Entity}

    async def _collection_root(
        self, request: web.Request, coll: Collection, ctx: Ctx
    ) -> web.Response:
        method = request.method
        if method == "POST":
            require_permission(self.state, ctx.user, coll.perm_entity, "create")
            body = object_body(await read_json(request))
            record = coll.create(body, ctx)
            return json_response({"itemId": record["id"]})
        if method == "PATCH" and self.state.config.api.collection_patch == "html_404":
            # Zone DE1 as reported: the route is missing, and IIS answers with its own page.
            return web.Response(status=404, text=IIS_NOT_FOUND, content_type="text/html")
        if method in ("PATCH", "PUT"):
            require_permission(self.state, ctx.user, coll.perm_entity, "update")
            body = object_body(await read_json(request))
            record = coll.update(body, ctx, replace=method == "PUT", record_id=None)
            return json_response({"itemId": record["id"]})
        raise method_not_allowed(method)

    async def _item(
        self, request: web.Request, coll: Collection, record_id: int, ctx: Ctx
    ) -> web.Response:
        method = request.method
        if method == "GET":
            require_permission(self.state, ctx.user, coll.perm_entity, "read")
            record = self._get_visible(coll, record_id, ctx)
            if record is None:
                return json_response({"item": None})
            return raw_json_response(b'{"item":' + encode_record(coll, record) + b"}")
        if method == "DELETE":
            require_permission(self.state, ctx.user, coll.perm_entity, "delete")
            coll.delete(record_id, ctx)
            return json_response({"itemId": record_id})
        if method == "PUT":
            require_permission(self.state, ctx.user, coll.perm_entity, "update")
            body = object_body(await read_json(request))
            record = coll.update(body, ctx, replace=True, record_id=record_id)
            return json_response({"itemId": record["id"]})
        raise method_not_allowed(method)  # PATCH /{Entity}/{id} does not exist (§3)

    def _get_visible(self, coll: Collection, record_id: int, ctx: Ctx) -> Record | None:
        record = coll.table.get(record_id)
        if record is not None and not coll.visible(record, ctx):
            record = None
        lag = self.state.config.faults.read_after_write_lag
        if (
            record is not None
            and lag > timedelta(0)
            and self.state.tenant.created_within(coll.name, record_id, lag)
        ):
            record = None
        if record is not None:
            return record
        api = self.state.config.api
        nullable = {e.lower() for e in api.null_item_entities}
        if api.missing_item == "null" or coll.name.lower() in nullable:
            return None
        raise not_found(f"No {coll.name} entity with id {record_id} was found.")

    # ------------------------------------------------------------ children

    async def _child(
        self,
        request: web.Request,
        coll: Collection,
        child: ChildCollection,
        parent_id: int,
        child_id: int | None,
        ctx: Ctx,
    ) -> web.Response:
        method = request.method
        if coll.table.get(parent_id) is None:
            raise not_found(f"No {coll.name} entity with id {parent_id} was found.")
        if child_id is not None:
            if method == "GET":
                require_permission(self.state, ctx.user, child.perm_entity, "read")
                item = child.get(parent_id, child_id, ctx)
                if item is None:
                    raise not_found(f"No {child.schema.name} entity with id {child_id} was found.")
                return json_response({"item": item})
            if method == "DELETE":
                require_permission(self.state, ctx.user, child.perm_entity, "delete")
                child.delete(parent_id, child_id, ctx)
                return json_response({"itemId": child_id})
            raise method_not_allowed(method)  # child updates PATCH the collection URL
        if method == "GET":
            require_permission(self.state, ctx.user, child.perm_entity, "read")
            items = child.list(parent_id, ctx)
            details = {
                "count": len(items),
                "requestCount": len(items),
                "prevPageUrl": None,
                "nextPageUrl": None,
            }
            return json_response({"items": items, "pageDetails": details})
        if method == "POST":
            require_permission(self.state, ctx.user, child.perm_entity, "create")
            record = child.create(parent_id, object_body(await read_json(request)), ctx)
            return json_response({"itemId": record["id"]})
        if method in ("PATCH", "PUT"):
            require_permission(self.state, ctx.user, child.perm_entity, "update")
            body = object_body(await read_json(request))
            record = child.update(parent_id, body, ctx, method == "PUT")
            return json_response({"itemId": record["id"]})
        raise method_not_allowed(method)

    # ------------------------------------------------------------ metadata

    def _info_routes(
        self, method: str, coll: Collection, rest: tuple[str, ...], user: ApiUser
    ) -> web.Response:
        if method != "GET":
            raise method_not_allowed(method)
        schema = coll.schema
        if not rest:
            return json_response({"info": self._info(coll, user)})
        if len(rest) == 1 and rest[0].lower() == "fields":
            return json_response({"fields": [f.to_json() for f in schema.fields]})
        if len(rest) == 1 and rest[0].lower() == "userdefinedfields":
            return json_response({"fields": [u.to_json() for u in schema.udfs]})
        raise not_found()

    def _info(self, coll: Collection, user: ApiUser) -> JsonObject:
        caps = coll.capabilities
        spec = find_rest_name(coll.name)
        name = spec.callout_type if spec is not None else coll.name.removesuffix("s")

        def access(action: PermissionAction) -> str:
            return "All" if user.security.allows(coll.perm_entity, action) else "None"

        return {
            "name": name,
            "canCreate": caps.create,
            "canDelete": caps.delete,
            "canQuery": caps.query,
            "canUpdate": caps.update,
            "userAccessForCreate": access("create"),
            "userAccessForDelete": access("delete"),
            "userAccessForQuery": access("read"),
            "userAccessForUpdate": access("update"),
            "hasUserDefinedFields": coll.schema.has_udfs,
            "supportsWebhookCallouts": caps.webhooks,
        }


def _int(text: str) -> int | None:
    return parse_int(text, minimum=0)


__all__ = ["RestApi"]
