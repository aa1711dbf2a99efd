"""The one DSN of the process: the URL, the password file and the TLS settings merged the
documented way, mistakes named at start, and every process taking its DSN from here."""

from __future__ import annotations

import os
import re
import ssl
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from asyncpg import connect_utils

from shared.db import database_dsn
from shared.db.pool import connect_error, database_error
from shared.errors import ConfigError
from shared.settings import BaseServiceSettings, load_settings

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "pa:ss@w/rd%-kept-secret"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what a test sets: no database variables of the run, no libpq variables, and a home
    without ~/.postgresql/root.crt."""
    for name in ("DATABASE_URL", "PGSSLMODE", "PGSSLROOTCERT"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("AUTOTASK_SYNC_DATABASE"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "root.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")  # read by asyncpg only when connecting
    return path


def _dsn(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return database_dsn(load_settings(BaseServiceSettings))


def _query(dsn: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(dsn).query, strict_parsing=True)


def _as_asyncpg_reads_it(dsn: str) -> connect_utils._ConnectionParameters:
    """asyncpg's own reading of the DSN (the parser asyncpg.connect uses)."""
    _addrs, params = connect_utils._parse_connect_dsn_and_args(
        dsn=dsn, host=None, port=None, user=None, password=None, passfile=None, database=None,
        ssl=None, direct_tls=False, server_settings=None, target_session_attrs=None,
        krbsrvname=None, gsslib=None,
    )  # fmt: skip
    return params


def test_a_url_alone_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://sync:pw-in-url@db.internal:5432/sync?sslmode=require&application_name=x"
    assert _dsn(monkeypatch, DATABASE_URL=url) == url


def test_settings_win_over_the_url_parameter_by_parameter(
    monkeypatch: pytest.MonkeyPatch, ca_file: Path
) -> None:
    dsn = _dsn(
        monkeypatch,
        DATABASE_URL="postgresql://sync@db.internal/sync?sslmode=require&application_name=x"
        "&sslrootcert=/gone/old.pem",
        AUTOTASK_SYNC_DATABASE_SSLMODE="verify-full",
        AUTOTASK_SYNC_DATABASE_SSLROOTCERT=str(ca_file),
    )
    assert sorted(_query(dsn)) == [
        ("application_name", "x"),
        ("sslmode", "verify-full"),
        ("sslrootcert", str(ca_file)),
    ]
    assert dsn.startswith("postgresql://sync@db.internal/sync?")


def test_asyncpg_verifies_the_server_with_what_the_settings_say(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A real CA file: asyncpg loads it while reading the DSN.
    from tools.dev_infra.certificates import authority

    ca = authority(tmp_path / "ca")
    dsn = _dsn(
        monkeypatch,
        DATABASE_URL="postgresql://sync@db.internal/sync",
        AUTOTASK_SYNC_DATABASE_SSLMODE="verify-full",
        AUTOTASK_SYNC_DATABASE_SSLROOTCERT=str(ca.cert),
    )
    params = _as_asyncpg_reads_it(dsn)
    assert params.sslmode == connect_utils.SSLMode.verify_full
    assert isinstance(params.ssl, ssl.SSLContext)
    assert params.ssl.verify_mode == ssl.CERT_REQUIRED
    assert params.ssl.check_hostname


def test_the_password_file_replaces_the_urls_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")  # as `echo` or an editor writes it
    dsn = _dsn(
        monkeypatch,
        DATABASE_URL="postgresql://sync:old@db.internal:5432/sync",
        AUTOTASK_SYNC_DATABASE_PASSWORD_FILE=str(secret),
    )
    params = _as_asyncpg_reads_it(dsn)
    assert (params.user, params.password, params.database) == ("sync", PASSWORD, "sync")


def test_the_url_file_wins_over_database_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url_file = tmp_path / "url"
    url_file.write_text("postgresql://sync@from-file/sync\n")
    dsn = _dsn(
        monkeypatch,
        DATABASE_URL="postgresql://sync@from-env/sync",
        AUTOTASK_SYNC_DATABASE_URL_FILE=str(url_file),
    )
    assert dsn == "postgresql://sync@from-file/sync"


def test_verify_full_uses_the_default_root_certificate_when_it_exists(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    default = tmp_path / "home" / ".postgresql" / "root.crt"
    default.parent.mkdir(parents=True)
    default.write_text("-----BEGIN CERTIFICATE-----\n")
    dsn = _dsn(monkeypatch, DATABASE_URL="postgresql://sync@db/sync?sslmode=verify-full")
    assert dict(_query(dsn)) == {"sslmode": "verify-full"}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        pytest.param(
            {"DATABASE_URL": "postgresql://u:{pw}@db/sync?sslmode=verify_full"},
            "sslmode in DATABASE_URL is 'verify_full'; use one of disable, allow, prefer, "
            "require, verify-ca, verify-full",
            id="mode-typo-in-url",
        ),
        pytest.param(
            {"DATABASE_URL": "postgresql://u:{pw}@db/sync?sslmode=verify-full"},
            "sslmode in DATABASE_URL is verify-full, which checks the server's certificate "
            "against a root certificate, and none is configured: set "
            "AUTOTASK_SYNC_DATABASE_SSLROOTCERT",
            id="verify-without-root",
        ),
        pytest.param(
            {
                "DATABASE_URL": "postgresql://u:{pw}@db/sync",
                "AUTOTASK_SYNC_DATABASE_SSLMODE": "verify-ca",
            },
            "AUTOTASK_SYNC_DATABASE_SSLMODE is verify-ca, which checks the server's certificate",
            id="verify-setting-without-root",
        ),
        pytest.param(
            {"DATABASE_URL": "postgresql://u:{pw}@db/sync?sslmode=verify-full&sslrootcert={tmp}/x"},
            "sslrootcert in DATABASE_URL: {tmp}/x is not a file (is it mounted?)",
            id="missing-root-in-url",
        ),
        pytest.param(
            {"DATABASE_URL": "postgresql://u:{pw}@db/sync?sslrootcert=system"},
            "sslrootcert in DATABASE_URL is 'system', which asyncpg does not support",
            id="system-root",
        ),
        pytest.param(
            {
                "DATABASE_URL": "postgresql://u:{pw}@db/sync",
                "AUTOTASK_SYNC_DATABASE_SSLKEY": "{tmp}/root.pem",
            },
            "AUTOTASK_SYNC_DATABASE_SSLKEY is set without a client certificate: set "
            "AUTOTASK_SYNC_DATABASE_SSLCERT",
            id="key-without-certificate",
        ),
        pytest.param(
            {"DATABASE_URL": "mysql://u:{pw}@db/sync"},
            "DATABASE_URL must be a postgresql:// URL",
            id="not-postgresql",
        ),
        pytest.param(
            {"DATABASE_URL": "postgresql://u:{pw}@db/sync?sslmode"},
            "the query of DATABASE_URL is malformed",
            id="malformed-query",
        ),
        pytest.param(
            {
                "DATABASE_URL": "postgresql://db/sync",
                "AUTOTASK_SYNC_DATABASE_PASSWORD_FILE": "{tmp}/root.pem",
            },
            "DATABASE_URL names no user (postgresql://user@host/db), so "
            "AUTOTASK_SYNC_DATABASE_PASSWORD_FILE has no one to log in",
            id="password-without-user",
        ),
        # What asyncpg fails on with an error quoting the URL, or waits for minutes.
        pytest.param(
            {"DATABASE_URL": "postgresql://u:kept-secret@db:54x2/sync"},
            "DATABASE_URL has a port that is not a number between 1 and 65535",
            id="port-not-a-number",
        ),
        pytest.param(
            {"DATABASE_URL": "postgresql://u@db1:5432,db2:99999/sync"},
            "DATABASE_URL has a port that is not a number between 1 and 65535",
            id="port-out-of-range",
        ),
        pytest.param(
            {"DATABASE_URL": "postgresql://u:kept@secret@db/sync"},
            "DATABASE_URL has an '@' in its user or password: percent-encode special "
            "characters of the user and password (@ as %40,",
            id="unencoded-at",
        ),
        pytest.param(
            {"DATABASE_URL": "postgresql://u:kept#secret@db/sync"},
            "DATABASE_URL has a '#' that ends the address early: percent-encode",
            id="unencoded-hash",
        ),
        pytest.param(
            {"DATABASE_URL": "postgresql://u:kept/secret@db/sync"},
            "DATABASE_URL has a port that is not a number between 1 and 65535 (or a user or "
            "password with special characters: percent-encode",
            id="unencoded-slash",
        ),
        pytest.param(
            {"DATABASE_URL": "postgresql://u:kept-secret@db internal/sync"},
            "DATABASE_URL names a host that is not a host name or address",
            id="host-with-space",
        ),
        pytest.param(
            {"DATABASE_URL": "postgresql://u@db1,,db2/sync"},
            "DATABASE_URL names an empty host",
            id="empty-host",
        ),
    ],
)
def test_a_mistake_is_named_at_start_without_the_password(
    monkeypatch: pytest.MonkeyPatch, ca_file: Path, env: dict[str, str], named: str
) -> None:
    tmp = str(ca_file.parent)
    filled = {k: v.format(pw=PASSWORD, tmp=tmp) for k, v in env.items()}
    with pytest.raises(ConfigError) as raised:
        _dsn(monkeypatch, **filled)
    message = str(raised.value)
    assert named.format(tmp=tmp) in message
    assert PASSWORD not in message
    assert "secret" not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://sync:p%40ss%2Fw%23rd@db.internal:5432/sync",
        "postgresql://sync@[::1]:5432,db-2.internal:5433/sync",
        "postgresql://sync@%2Fvar%2Frun%2Fpostgresql/sync",
        "postgresql:///sync",
        "postgres://sync@nowhere.invalid/sync",
    ],
)
def test_a_well_formed_url_passes(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Even when nothing answers there: a host that does not resolve yet is waited for at
    start (docs/configuration.md, STARTUP_WAIT)."""
    assert _as_asyncpg_reads_it(_dsn(monkeypatch, DATABASE_URL=url)).database == "sync"


def test_a_connect_error_shows_neither_the_password_nor_the_query() -> None:
    dsn = f"postgresql://sync:{PASSWORD}@db:5432/sync?password={PASSWORD}&sslpassword=key-pass"
    error = connect_error(ConnectionRefusedError(111, "Connect call failed"), dsn)
    assert str(error).startswith("could not connect to PostgreSQL at postgresql://db:5432/sync: ")
    assert PASSWORD not in str(error)
    assert "key-pass" not in str(error)
    assert error.retriable


def test_a_tls_failure_on_a_pooled_session_stays_retriable_but_says_what_to_fix() -> None:
    """A statement is not at fault when its new session fails TLS: it must not be given up."""
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed: unable to get issuer")
    error = database_error(exc, "write the mirror")
    assert error.retriable
    assert "AUTOTASK_SYNC_DATABASE_SSLROOTCERT or sslrootcert in DATABASE_URL" in str(error)


def test_every_process_takes_its_dsn_from_database_dsn() -> None:
    """The URL setting is read in one place, so no pool or session can go without TLS."""
    readers = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in ("services", "shared", "cli", "tools")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "shared" / "db" / "dsn.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"settings\.database_url\b|database_url\.get_secret_value", line)
    ]
    assert readers == []
