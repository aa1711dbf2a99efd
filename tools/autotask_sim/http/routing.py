"""Parsing request paths the way Autotask's hosts accept them.

Zones are served side by side on one port: ``/ws{N}/atservicesrest/v1.0/...`` is zone N's REST
root. ``/atservicesrest/v1.0/zoneInformation`` (no zone prefix, like
``webservices.autotask.net``) answers zone lookups; any zone path answers them too. Path segments
match case-insensitively (clients send ``atservicesrest``, ``ATServicesRest``, ``entityinformation``
...). One trailing slash is tolerated (the vendor table lists ``PUT /Entity/``); an empty segment
in the middle (``//``) is not, so clients must normalise URLs they join.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["zone_lookup", "version", "api", "unknown"]
_ZONE = re.compile(r"^ws(\d{1,3})$", re.IGNORECASE)
_VERSIONS = {"v1.0", "1.0"}


@dataclass(frozen=True, slots=True)
class ApiPath:
    """What a request path addresses."""

    kind: Kind
    zone: int | None = None
    segments: tuple[str, ...] = ()
    """Path segments after ``v1.0`` (for ``api``), as sent."""


def parse_path(path: str) -> ApiPath:
    parts = path.split("/")[1:]
    if parts and parts[-1] == "":
        parts = parts[:-1]
    if not parts or "" in parts:
        return ApiPath("unknown")
    zone: int | None = None
    match = _ZONE.match(parts[0])
    if match:
        zone = int(match.group(1))
        parts = parts[1:]
    if not parts or parts[0].lower() != "atservicesrest":
        return ApiPath("unknown")
    rest = parts[1:]
    if len(rest) == 1 and rest[0].lower() == "versioninformation":
        return ApiPath("version", zone)
    if not rest or rest[0].lower() not in _VERSIONS:
        return ApiPath("unknown", zone)
    rest = rest[1:]
    if len(rest) == 1 and rest[0].lower() == "zoneinformation":
        return ApiPath("zone_lookup", zone)
    if not rest:
        return ApiPath("unknown", zone)
    return ApiPath("api", zone, tuple(rest))


def rest_root(origin: str, zone: int) -> str:
    """The REST root of ``zone`` without a trailing slash, ready to join ``/v1.0/...`` onto."""
    return f"{origin}/ws{zone}/atservicesrest"


def zone_url(origin: str, zone: int, trailing_slash: bool) -> str:
    """zoneInformation's ``url`` for ``zone``: the real API's ends with ``/atservicesrest/``."""
    root = rest_root(origin, zone)
    return root + "/" if trailing_slash else root


__all__ = ["ApiPath", "parse_path", "rest_root", "zone_url"]
