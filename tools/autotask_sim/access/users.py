"""API users and the authentication check every REST call goes through (§2).

Header names are case-insensitive (aiohttp's headers already are); values are compared exactly.
A wrong value in any of the three headers gives 401. Optionally, consecutive failures lock the
user the way the Autotask UI's "Locked" flag does, until an admin unlocks it.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from tools.autotask_sim.apierror import ApiError
from tools.autotask_sim.config import SecurityLevel, SimulatorConfig


@dataclass
class ApiUser:
    """An API-only user: credentials, its Resources id and its security level."""

    username: str
    secret: str
    integration_code: str
    resource_id: int
    security: SecurityLevel
    failed_logins: int = 0
    locked: bool = False


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class UserDirectory:
    """The tenant's API users, keyed by username (case-insensitive, as logins are)."""

    def __init__(self, root: SimulatorConfig) -> None:
        self._users: dict[str, ApiUser] = {}
        self._root = root

    def add(self, user: ApiUser) -> None:
        self._users[user.username.lower()] = user

    def find(self, username: str) -> ApiUser | None:
        return self._users.get(username.strip().lower())

    def by_resource(self, resource_id: int) -> ApiUser | None:
        return next((u for u in self._users.values() if u.resource_id == resource_id), None)

    def all(self) -> list[ApiUser]:
        return list(self._users.values())

    def unauthorized(self, why: str) -> ApiError:
        if self._root.api.unauthorized_body == "empty":
            return ApiError(401, empty_body=True)
        return ApiError(401, why)

    def authenticate(self, headers: Mapping[str, str]) -> ApiUser:
        """The user the headers identify; raises ApiError(401) otherwise."""
        username = headers.get("UserName", "")
        secret = headers.get("Secret", "")
        code = headers.get("ApiIntegrationCode", "")
        if not username or not secret or not code:
            raise self.unauthorized("Missing UserName, Secret or ApiIntegrationCode header.")
        user = self.find(username)
        if user is None:
            raise self.unauthorized("The user name or secret is incorrect.")
        if user.locked:
            raise self.unauthorized("The API user is locked. Unlock it in Autotask.")
        if not _same(secret, user.secret) or not _same(code, user.integration_code):
            user.failed_logins += 1
            lockout = self._root.api.lockout_after_failures
            if lockout is not None and user.failed_logins >= lockout:
                user.locked = True
            if not _same(code, user.integration_code):
                raise self.unauthorized("The ApiIntegrationCode is invalid.")
            raise self.unauthorized("The user name or secret is incorrect.")
        user.failed_logins = 0
        return user


__all__ = ["ApiUser", "UserDirectory"]
