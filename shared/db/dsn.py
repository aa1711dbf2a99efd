"""The one PostgreSQL address of the process: :func:`database_dsn` merges the database URL, the
password file and the TLS settings into the DSN every pool and dedicated session opens.

asyncpg reads TLS from the DSN's query the way libpq does (``sslmode``, ``sslrootcert``,
``sslcert``, ``sslkey``; also ``sslcrl``, ``sslpassword``, ``ssl_min_protocol_version``), so
one string carries everything a session needs, and code that opens sessions cannot forget TLS:
it takes the DSN from here. The precedence, one parameter at a time:

- the URL: ``AUTOTASK_SYNC_DATABASE_URL_FILE`` (a mounted Secret) when set, else ``DATABASE_URL``;
- its password: ``AUTOTASK_SYNC_DATABASE_PASSWORD_FILE`` when set replaces the URL's;
- ``AUTOTASK_SYNC_DATABASE_SSLMODE``, ``_SSLROOTCERT``, ``_SSLCERT``, ``_SSLKEY``, each when set,
  replace the URL's parameter of the same name; the URL's other parameters stay as they are.

What a person can get wrong is found here, at start, and named: a URL no session could use (a
port that is not a number, a password whose ``@``, ``#`` or ``/`` is not percent-encoded, a host
with a space), a mode that is not one, a certificate file that is not there,
``verify-ca``/``verify-full`` without a root certificate (asyncpg's fallback,
``~/.postgresql/root.crt``, counts when it exists), a key without its certificate. Messages
name the variable or the URL parameter, never the URL or the password.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import get_args
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from shared.errors import ConfigError
from shared.redaction import register_secret
from shared.settings import (
    ENV_PREFIX,
    BaseServiceSettings,
    DatabaseSslMode,
    host_and_port,
    readable_file,
)

_SSL_MODES: tuple[str, ...] = get_args(DatabaseSslMode)
"""The modes, weakest first: ``disable``, ``allow``, ``prefer`` (asyncpg's default over TCP),
``require``, ``verify-ca``, ``verify-full``."""

_VERIFYING_MODES = frozenset({"verify-ca", "verify-full"})
"""Modes that check the server's certificate against a root certificate."""

FILE_PARAMETERS = ("sslrootcert", "sslcert", "sslkey", "sslcrl")
"""URL parameters that name a file the process must be able to read."""

_SCHEMES = ("postgresql", "postgres")

_HOST = re.compile(r"^[A-Za-z0-9._%-]+$")
"""A host name, an IPv4 address, or a percent-encoded socket directory (``%2Fvar%2Frun``)."""

_ENCODE = (
    "percent-encode special characters of the user and password (@ as %40, # as %23, / as %2F, "
    "? as %3F, : as %3A)"
)


def database_dsn(settings: BaseServiceSettings) -> str:
    """The DSN for every PostgreSQL session of the process (see the module docstring for what
    wins over what); ``""`` when the URL is empty (no database configured).

    Raises :class:`ConfigError` naming the variable or URL parameter to fix."""
    url, origin = _url(settings)
    if not url:
        return ""
    try:
        scheme, netloc, path, query, fragment = urlsplit(url)
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        scheme = netloc = path = query = fragment = ""
    if scheme not in _SCHEMES:
        raise ConfigError(
            f"{origin} must be a postgresql:// URL (postgresql://user:password@host:5432/db)"
        )
    _check_address(netloc, fragment, origin)
    if settings.database_password_file is not None:
        netloc = _with_password(netloc, _password(settings.database_password_file), origin)
    _register_url_password(netloc)
    try:
        parameters = parse_qsl(query, strict_parsing=True) if query else []
    except ValueError:
        raise ConfigError(
            f"the query of {origin} is malformed: write it as ?name=value&name=value"
        ) from None
    chosen = _tls_settings(settings)
    if chosen:
        parameters = [(k, v) for k, v in parameters if k not in chosen] + list(chosen.items())
        query = urlencode(parameters, quote_via=quote, safe="/")
    names = {
        key: f"{ENV_PREFIX}DATABASE_{key.upper()}" if key in chosen else f"{key} in {origin}"
        for key, _ in parameters
    }
    _check_tls(dict(parameters), names)
    return urlunsplit((scheme, netloc, path, query, fragment))


def _check_address(netloc: str, fragment: str, origin: str) -> None:
    """ConfigError for hosts and ports no session could use: asyncpg would fail on them with an
    error quoting the URL, or wait for minutes on a host that cannot exist. No host at all is
    libpq's default (the local socket, then localhost)."""
    if fragment:
        raise ConfigError(f"{origin} has a '#' that ends the address early: {_ENCODE}")
    userinfo, _, hosts = netloc.rpartition("@")
    if "@" in userinfo:
        raise ConfigError(f"{origin} has an '@' in its user or password: {_ENCODE}")
    if not hosts:
        return
    for entry in hosts.split(","):
        host, port = host_and_port(entry)
        if not host:
            raise ConfigError(f"{origin} names an empty host: write host:port, comma-separated")
        if not (entry.startswith("[") or _HOST.match(host)):
            raise ConfigError(f"{origin} names a host that is not a host name or address")
        if port is not None and not (port.isdigit() and 0 < int(port) <= 65535):
            raise ConfigError(
                f"{origin} has a port that is not a number between 1 and 65535 (or a user or "
                f"password with special characters: {_ENCODE})"
            )


def _url(settings: BaseServiceSettings) -> tuple[str, str]:
    """The URL and where it came from, as a person would name it."""
    if settings.database_url_file is not None:
        origin = f"the URL in {ENV_PREFIX}DATABASE_URL_FILE"
        text = _read(settings.database_url_file, f"{ENV_PREFIX}DATABASE_URL_FILE").strip()
        if not text:
            raise ConfigError(f"{ENV_PREFIX}DATABASE_URL_FILE names an empty file")
        return text, origin
    return settings.database_url.get_secret_value().strip(), "DATABASE_URL"


def _password(path: Path) -> str:
    name = f"{ENV_PREFIX}DATABASE_PASSWORD_FILE"
    # A file written with `echo` or an editor ends with a line break that is not the password's.
    password = _read(path, name).rstrip("\r\n")
    if not password:
        raise ConfigError(f"{name} names an empty file")
    register_secret(password)
    return password


def _read(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{name}: cannot read {path} ({reason})") from None


def _with_password(netloc: str, password: str, origin: str) -> str:
    userinfo, at, hosts = netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    if not at or not user:
        raise ConfigError(
            f"{origin} names no user (postgresql://user@host/db), so "
            f"{ENV_PREFIX}DATABASE_PASSWORD_FILE has no one to log in"
        )
    return f"{user}:{quote(password, safe='')}@{hosts}"


def _register_url_password(netloc: str) -> None:
    """Mask the URL's password in every log line, also where it appears outside a URL."""
    userinfo, at, _ = netloc.rpartition("@")
    _, colon, password = userinfo.partition(":")
    if at and colon and password:
        register_secret(unquote(password))


def _tls_settings(settings: BaseServiceSettings) -> dict[str, str]:
    """The ``AUTOTASK_SYNC_DATABASE_SSL*`` settings that are set, by URL parameter name."""
    values = {
        "sslmode": settings.database_sslmode,
        "sslrootcert": settings.database_sslrootcert,
        "sslcert": settings.database_sslcert,
        "sslkey": settings.database_sslkey,
    }
    return {key: str(value) for key, value in values.items() if value is not None}


def _check_tls(parameters: Mapping[str, str], names: Mapping[str, str]) -> None:
    """ConfigError for a TLS configuration no session could use; ``names`` says where each
    parameter came from."""
    mode = parameters.get("sslmode")
    if mode is not None and mode not in _SSL_MODES:
        raise ConfigError(f"{names['sslmode']} is {mode!r}; use one of {', '.join(_SSL_MODES)}")
    for key in FILE_PARAMETERS:
        value = parameters.get(key)
        if value is None:
            continue
        if key == "sslrootcert" and value == "system":
            raise ConfigError(
                f"{names[key]} is 'system', which asyncpg does not support: name the CA "
                "bundle file instead (e.g. /etc/ssl/certs/ca-certificates.crt)"
            )
        try:
            readable_file(Path(value))
        except ValueError as exc:
            raise ConfigError(f"{names[key]}: {exc}") from None
    if "sslkey" in parameters and "sslcert" not in parameters:
        raise ConfigError(
            f"{names['sslkey']} is set without a client certificate: set "
            f"{ENV_PREFIX}DATABASE_SSLCERT (or sslcert in DATABASE_URL)"
        )
    if mode in _VERIFYING_MODES and "sslrootcert" not in parameters and not _default_root():
        raise ConfigError(
            f"{names['sslmode']} is {mode}, which checks the server's certificate against a "
            f"root certificate, and none is configured: set {ENV_PREFIX}DATABASE_SSLROOTCERT "
            "(or sslrootcert in DATABASE_URL) to the provider's CA bundle "
            "(~/.postgresql/root.crt would be used if it existed)"
        )


def _default_root() -> bool:
    """Whether asyncpg finds a root certificate by itself: ``PGSSLROOTCERT`` (which must then
    be readable) or ``~/.postgresql/root.crt``."""
    if named := os.environ.get("PGSSLROOTCERT"):
        try:
            readable_file(Path(named))
        except ValueError as exc:
            raise ConfigError(f"PGSSLROOTCERT: {exc}") from None
        return True
    try:
        return (Path.home() / ".postgresql" / "root.crt").is_file()
    except (RuntimeError, KeyError):  # no home directory to look in
        return False


__all__ = ["FILE_PARAMETERS", "database_dsn"]
