"""PostgreSQL over TLS the way managed databases require it (``sslmode=verify-full`` with the
provider's root certificate), against a real local cluster that serves TLS and nothing else.

Every kind of session the product opens goes over verified TLS (the pool, a LISTEN session, an
advisory lock, a service process and a command); each way it can go wrong (a wrong CA, a name the
certificate does not list, a missing root file, a server without TLS, plaintext to a TLS-only
server, a missing client certificate) ends in one line that names the setting to fix and never
shows the password.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from shared.db import (
    DbSession,
    Pool,
    connect,
    create_pool,
    database_dsn,
    session,
)
from shared.db.live import LiveTable
from shared.db.locks import AdvisoryLock, lock_key
from shared.errors import ConfigError, DatabaseError
from shared.kafka import ensure_topics
from shared.messages.topics import Topics
from shared.secrets import SecretBox
from shared.settings import BaseServiceSettings, load_settings
from tests.helpers.processes import ServiceProcess, run_cli
from tests.helpers.servers import Postgres
from tests.helpers.waiting import eventually
from tools.dev_infra.certificates import KeyPair, authority
from tools.dev_infra.postgres import CERTIFICATE_USER

pytestmark = pytest.mark.integration

PASSWORD = "tls-test-pa55word-never-shown"
"""Put in every DSN: the clusters trust the loopback (or want a certificate), so it is never
checked, but it must never appear in an error either."""


def _cluster_root(name: str) -> Path:
    # Not under pytest's root-only temporary folder: the server runs as an unprivileged user.
    root = Path(tempfile.mkdtemp(prefix=f"autotask-sync-{name}-"))
    root.chmod(0o755)
    return root / "cluster"


@pytest.fixture(scope="module")
def tls_cluster() -> Iterator[Postgres]:
    """A cluster that accepts TCP sessions over TLS only (pg_hba.conf: hostssl)."""
    cluster = Postgres(_cluster_root("tls-pg"), tls_only=True)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
async def certified(tls_cluster: Postgres) -> str:
    """The role that may log in only with a client certificate (pg_hba.conf ``cert``)."""
    db = await connect(tls_cluster.verified_dsn())
    try:
        await db.execute(f"CREATE ROLE {CERTIFICATE_USER} LOGIN SUPERUSER")
    finally:
        await db.close()
    return CERTIFICATE_USER


@pytest.fixture
def wrong_ca(tmp_path: Path) -> Path:
    """A CA that did not sign the server's certificate."""
    return authority(tmp_path / "wrong", "some other CA").cert


def _with_password(dsn: str, user: str = "postgres") -> str:
    return dsn.replace(f"://{user}@", f"://{user}:{PASSWORD}@", 1)


def _settings_dsn(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    """The DSN a process builds from these variables (and no others of the test run)."""
    for name in ("DATABASE_URL", "PGSSLMODE", "PGSSLROOTCERT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return database_dsn(load_settings(BaseServiceSettings))


async def _connect_error(dsn: str) -> str:
    """The message both ways of opening sessions give (they must agree); it is not retriable."""
    messages = []
    with pytest.raises(DatabaseError) as pooled:
        await create_pool(dsn, min_size=1, max_size=1)
    with pytest.raises(DatabaseError) as dedicated:
        await connect(dsn, connect_timeout=timedelta(seconds=10))
    for error in (pooled.value, dedicated.value):
        assert not error.retriable
        assert PASSWORD not in str(error)
        assert "\n" not in str(error)
        messages.append(str(error))
    assert messages[0] == messages[1]
    return messages[0]


# --- it works -----------------------------------------------------------------------------------
@pytest.fixture
async def verified(tls_cluster: Postgres, monkeypatch: pytest.MonkeyPatch) -> str:
    """The DSN from settings: DATABASE_URL without TLS, sslmode and root from the settings."""
    return _settings_dsn(
        monkeypatch,
        DATABASE_URL=_with_password(tls_cluster.dsn),
        AUTOTASK_SYNC_DATABASE_SSLMODE="verify-full",
        AUTOTASK_SYNC_DATABASE_SSLROOTCERT=str(tls_cluster.server_tls.authority.cert),
    )


@pytest.fixture
async def pool(verified: str) -> AsyncIterator[Pool]:
    pool = await create_pool(verified, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_pooled_session_runs_over_verified_tls(pool: Pool) -> None:
    async with session(pool, "read pg_stat_ssl") as db:
        row = await db.fetchrow("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert row is not None
    assert row["ssl"] is True
    assert row["version"].startswith("TLSv1.")


async def test_a_listen_session_runs_over_verified_tls_and_hears_notify(
    verified: str, pool: Pool
) -> None:
    async with session(pool, "create the table") as db:
        await db.execute("CREATE TABLE IF NOT EXISTS tls_names (name text)")

    async def load(db: DbSession) -> tuple[bool, list[str]]:
        ssl = await db.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        names = [r["name"] for r in await db.fetch("SELECT name FROM tls_names ORDER BY name")]
        return ssl, names

    table = LiveTable(
        name="tls_names",
        dsn=verified,
        channel="tls_names_changed",
        load=load,
        reload_interval=timedelta(minutes=10),  # only NOTIFY can explain a quick update
    )
    async with table:
        assert table.value == (True, [])
        async with session(pool, "insert and notify") as db:
            await db.execute("INSERT INTO tls_names VALUES ('acme')")
            await db.execute("NOTIFY tls_names_changed")
        await eventually(lambda: table.value == (True, ["acme"]), within=timedelta(seconds=30))


async def test_an_advisory_lock_is_held_on_a_verified_tls_session(
    verified: str, pool: Pool
) -> None:
    lock = AdvisoryLock(verified, lock_key("tls", "test"), name="tls test")
    assert await lock.try_acquire()
    try:
        async with session(pool, "read the lock's session") as db:
            holders = await db.fetch(
                "SELECT s.ssl FROM pg_locks l JOIN pg_stat_ssl s USING (pid) "
                "WHERE l.locktype = 'advisory' AND l.granted"
            )
    finally:
        await lock.release()
    assert [h["ssl"] for h in holders] == [True]


async def test_a_client_certificate_from_the_settings_logs_in(
    tls_cluster: Postgres, certified: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = tls_cluster.server_tls.client_certificate(tmp_path)
    dsn = _settings_dsn(
        monkeypatch,
        DATABASE_URL=tls_cluster.dsn.replace("://postgres@", f"://{certified}@"),
        AUTOTASK_SYNC_DATABASE_SSLMODE="verify-full",
        AUTOTASK_SYNC_DATABASE_SSLROOTCERT=str(tls_cluster.server_tls.authority.cert),
        AUTOTASK_SYNC_DATABASE_SSLCERT=str(client.cert),
        AUTOTASK_SYNC_DATABASE_SSLKEY=str(client.key),
    )
    db = await connect(dsn)
    try:
        row = await db.fetchrow(
            "SELECT current_user AS who, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
    finally:
        await db.close()
    assert row is not None
    assert (row["who"], row["client_dn"]) == (certified, f"/CN={certified}")


# --- it fails, saying what to fix ---------------------------------------------------------------
async def test_a_wrong_ca_names_the_root_certificate_setting(
    tls_cluster: Postgres, wrong_ca: Path
) -> None:
    dsn = _with_password(f"{tls_cluster.dsn}?sslmode=verify-full&sslrootcert={wrong_ca}")
    message = await _connect_error(dsn)
    where = tls_cluster.dsn.partition("@")[2]
    assert message.startswith(f"could not connect to PostgreSQL at postgresql://{where}: ")
    assert (
        "certificate verify failed: check AUTOTASK_SYNC_DATABASE_SSLROOTCERT or sslrootcert in "
        "DATABASE_URL (self-signed certificate in certificate chain)"
    ) in message


async def test_a_name_the_certificate_does_not_list_fails_verify_full_only(
    tls_cluster: Postgres,
) -> None:
    # The same server by another name: its certificate lists 127.0.0.1 and localhost only.
    elsewhere = tls_cluster.verified_dsn("verify-full").replace("127.0.0.1", "[::ffff:127.0.0.1]")
    message = await _connect_error(_with_password(elsewhere))
    assert (
        "certificate verify failed: check the host in DATABASE_URL, the server's certificate "
        "does not list it (sslmode=verify-full checks the name) (IP address mismatch"
    ) in message

    # verify-ca checks the chain, not the name.
    db = await connect(elsewhere.replace("verify-full", "verify-ca"))
    try:
        assert await db.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        await db.close()


async def test_a_missing_root_file_is_named(
    tls_cluster: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "gone" / "root.pem"
    # At start, from the settings:
    with pytest.raises(ConfigError, match="AUTOTASK_SYNC_DATABASE_SSLROOTCERT") as at_start:
        _settings_dsn(
            monkeypatch,
            DATABASE_URL=_with_password(tls_cluster.dsn),
            AUTOTASK_SYNC_DATABASE_SSLMODE="verify-full",
            AUTOTASK_SYNC_DATABASE_SSLROOTCERT=str(missing),
        )
    assert f"{missing} is not a file" in str(at_start.value)
    assert PASSWORD not in str(at_start.value)
    # ...and when connecting (the file went away after the start):
    dsn = _with_password(f"{tls_cluster.dsn}?sslmode=verify-full&sslrootcert={missing}")
    message = await _connect_error(dsn)
    assert (
        f"cannot read {missing}: check AUTOTASK_SYNC_DATABASE_SSLROOTCERT or sslrootcert in "
        "DATABASE_URL (No such file or directory)"
    ) in message


async def test_verify_full_against_a_server_without_tls_is_refused() -> None:
    plain = Postgres(_cluster_root("plain-pg"))
    await asyncio.to_thread(plain.start)
    try:
        ca = authority(plain.data_root.parent / "ca").cert
        message = await _connect_error(
            _with_password(f"{plain.dsn}?sslmode=verify-full&sslrootcert={ca}")
        )
    finally:
        await asyncio.to_thread(plain.close)
    assert (
        "the server does not offer TLS, which sslmode demands: turn ssl on at the server, or "
        "check AUTOTASK_SYNC_DATABASE_SSLMODE or sslmode in DATABASE_URL"
    ) in message


async def test_plaintext_to_a_tls_only_server_names_the_mode_setting(
    tls_cluster: Postgres,
) -> None:
    message = await _connect_error(_with_password(f"{tls_cluster.dsn}?sslmode=disable"))
    assert (
        "the server accepts only TLS: check AUTOTASK_SYNC_DATABASE_SSLMODE or sslmode in "
        "DATABASE_URL (verify-full) (no pg_hba.conf entry for host"
    ) in message


async def test_a_role_without_its_client_certificate_names_the_certificate_settings(
    tls_cluster: Postgres, certified: str
) -> None:
    dsn = tls_cluster.verified_dsn().replace("://postgres@", f"://{certified}:{PASSWORD}@")
    message = await _connect_error(dsn)
    assert (
        "check AUTOTASK_SYNC_DATABASE_SSLCERT and AUTOTASK_SYNC_DATABASE_SSLKEY or sslcert and "
        "sslkey in DATABASE_URL (connection requires a valid client certificate)"
    ) in message


# --- real processes -----------------------------------------------------------------------------
def _process_env(
    tls_cluster: Postgres, folder: Path, client: KeyPair, **extra: str
) -> dict[str, str]:
    """What an operator sets on Kubernetes: the URL and the password as mounted Secret files,
    sslmode and the CA bundle and a client certificate as settings."""
    folder.mkdir(parents=True, exist_ok=True)
    url_file, password_file = folder / "url", folder / "password"
    url_file.write_text(tls_cluster.dsn.replace("://postgres@", f"://{CERTIFICATE_USER}@") + "\n")
    password_file.write_text(PASSWORD + "\n")
    return {
        "AUTOTASK_SYNC_DATABASE_URL_FILE": str(url_file),
        "AUTOTASK_SYNC_DATABASE_PASSWORD_FILE": str(password_file),
        "AUTOTASK_SYNC_DATABASE_SSLMODE": "verify-full",
        "AUTOTASK_SYNC_DATABASE_SSLROOTCERT": str(tls_cluster.server_tls.authority.cert),
        "AUTOTASK_SYNC_DATABASE_SSLCERT": str(client.cert),
        "AUTOTASK_SYNC_DATABASE_SSLKEY": str(client.key),
        **extra,
    }


@pytest.mark.timeout(180)
async def test_migrate_and_the_gateway_run_over_verified_tls_with_a_client_certificate(
    tls_cluster: Postgres,
    certified: str,
    kafka_bootstrap: str,
    unique: str,
    tmp_path: Path,
    wrong_ca: Path,
) -> None:
    """Every session the processes open must present the client certificate from the settings
    (pg_hba.conf refuses the role otherwise) and verify the server with the CA from them."""
    client = tls_cluster.server_tls.client_certificate(tmp_path / "client")
    env = _process_env(tls_cluster, tmp_path / "secrets", client)

    migrated = await run_cli("migrate", env=env, within=timedelta(seconds=60))
    assert migrated.code == 0, migrated.output
    assert "migration(s)" in migrated.out
    assert PASSWORD not in migrated.output

    topics = Topics(prefix=f"tls{unique}", partitions=1)
    await ensure_topics(kafka_bootstrap, topics.declarations(entities=[]), replication_factor=1)
    gateway = ServiceProcess(
        "webhook_gateway",
        {
            **env,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "AUTOTASK_SYNC_TOPIC_PREFIX": topics.prefix,
            "AUTOTASK_SYNC_SECRET_KEYS": SecretBox.generate_key(),
        },
        log_path=tmp_path / "gateway.log",
    )
    await gateway.start(ready=timedelta(seconds=60))
    try:
        observer = await connect(tls_cluster.verified_dsn())
        try:
            # The pool, the registrations' LISTEN session and the spool drainer's lock session.
            sessions = await eventually(
                lambda: _sessions_of(observer, certified, at_least=3),
                within=timedelta(seconds=30),
            )
            locked = await observer.fetchval(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND l.granted AND a.usename = $1",
                certified,
            )
        finally:
            await observer.close()
    finally:
        await gateway.stop()
    assert {(s["ssl"], s["client_dn"]) for s in sessions} == {(True, f"/CN={certified}")}
    assert locked == 1
    assert PASSWORD not in gateway.log()

    # The same process given the wrong CA stops at once (not after the startup wait), saying
    # which setting to fix.
    refused = ServiceProcess(
        "webhook_gateway",
        {
            **gateway.env,
            "AUTOTASK_SYNC_DATABASE_SSLROOTCERT": str(wrong_ca),
            "AUTOTASK_SYNC_STARTUP_WAIT": "2m",
        },
        log_path=tmp_path / "refused.log",
    )
    await refused.start(ready=None)
    assert await refused.wait(timedelta(seconds=30)) == 1
    log = refused.log()
    assert "certificate verify failed" in log
    assert "AUTOTASK_SYNC_DATABASE_SSLROOTCERT or sslrootcert in DATABASE_URL" in log
    assert "dependency not reachable yet" not in log
    assert PASSWORD not in log


async def _sessions_of(observer: DbSession, user: str, *, at_least: int) -> list[dict[str, object]]:
    rows = await observer.fetch(
        "SELECT s.ssl, s.client_dn FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
        "WHERE a.usename = $1",
        user,
    )
    assert len(rows) >= at_least, rows
    return [dict(r) for r in rows]
