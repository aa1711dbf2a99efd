"""How the provisioner names its webhooks and addresses the gateway: pure.

Autotask has no place to tag a webhook as "made by this integration", so the name does it:
``autotask-sync:{connection}:{entity}``, at most 50 characters (Autotask's limit). A connection
name too long to fit is cut and followed by ``~`` and a short hash of the full name, so two
long names never share a webhook name (``~`` cannot occur in a connection name). The name of a
connection's webhook for an entity is therefore one fixed string: the provisioner recognises its
own webhooks by exact name and never touches a webhook whose name differs, whoever made it.

Every webhook's callout URL ends in its registration's unguessable id, which also ties a webhook
found in Autotask back to the registration that holds its secret after a crash.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

PREFIX = "autotask-sync"
"""First segment of every webhook name the project creates."""
MAX_NAME_LENGTH = 50
"""Autotask rejects longer webhook names ("name must be less than or equal to 50 characters")."""
CALLOUT_PATH = "/v1/callouts/"
DEACTIVATION_PATH = "/v1/deactivations/"
_HASH_LENGTH = 6


def webhook_name(connection: str, entity: str) -> str:
    """The name of ``connection``'s webhook for ``entity`` (REST name), at most 50 characters."""
    full = f"{PREFIX}:{connection}:{entity}"
    if len(full) <= MAX_NAME_LENGTH:
        return full
    digest = hashlib.sha256(connection.encode()).hexdigest()[:_HASH_LENGTH]
    room = MAX_NAME_LENGTH - len(PREFIX) - len(entity) - len(digest) - 3  # ":", "~", ":"
    if room < 1:
        raise ValueError(f"entity name {entity!r} leaves no room for a connection in the name")
    return f"{PREFIX}:{connection[:room]}~{digest}:{entity}"


def is_ours(name: object, *, connection: str, entity: str) -> bool:
    """Whether a webhook called ``name`` is ``connection``'s webhook for ``entity``."""
    return isinstance(name, str) and name.strip().casefold() == (
        webhook_name(connection, entity).casefold()
    )


def has_project_prefix(name: object) -> bool:
    """Whether ``name`` looks like any connection's webhook of this project (for display)."""
    return isinstance(name, str) and name.strip().casefold().startswith(f"{PREFIX}:")


def callout_url(base_url: str, registration_id: str) -> str:
    """Where Autotask POSTs the callouts of the webhook with this registration."""
    return f"{base_url.rstrip('/')}{CALLOUT_PATH}{registration_id}"


def deactivation_url(base_url: str, registration_id: str) -> str:
    """Where Autotask reports that the webhook was deactivated or deleted."""
    return f"{base_url.rstrip('/')}{DEACTIVATION_PATH}{registration_id}"


def registration_in(url: object) -> str | None:
    """The registration id at the end of a callout URL, whatever host it names (None if the
    URL is not a callout URL of this project's shape)."""
    if not isinstance(url, str):
        return None
    try:
        path = urlsplit(url.strip()).path
    except ValueError:
        return None
    _, found, tail = path.rpartition(CALLOUT_PATH)
    if not found or not tail or "/" in tail:
        return None
    return tail


__all__ = [
    "CALLOUT_PATH",
    "DEACTIVATION_PATH",
    "MAX_NAME_LENGTH",
    "PREFIX",
    "callout_url",
    "deactivation_url",
    "has_project_prefix",
    "is_ours",
    "registration_in",
    "webhook_name",
]
