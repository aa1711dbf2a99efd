"""PostgreSQL plumbing, no domain state: the one DSN of the process, TLS included (``dsn``), the
pool and sessions (``pool``), migrations (``migrate`` and ``migrations/``), live tables kept
current by NOTIFY (``live``), advisory locks (``locks``).

A concept's state lives with the concept (``shared/connections/store.py``,
``shared/mirror/store.py``, ``shared/apibudget/store.py``, ``shared/reconcile/runs.py``, ...), or
in the one service it serves (the gateway's spool, the provisioner's store).
"""

from shared.db.dsn import database_dsn
from shared.db.migrate import MIGRATIONS_DIR, Migration, apply_migrations, discover
from shared.db.pool import (
    DbSession,
    DedicatedSession,
    Pool,
    Record,
    connect,
    create_pool,
    db_errors,
    guarded,
    init_session,
    session,
    transaction,
)

__all__ = [
    "MIGRATIONS_DIR",
    "DbSession",
    "DedicatedSession",
    "Migration",
    "Pool",
    "Record",
    "apply_migrations",
    "connect",
    "create_pool",
    "database_dsn",
    "db_errors",
    "discover",
    "guarded",
    "init_session",
    "session",
    "transaction",
]
