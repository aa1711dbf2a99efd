"""PostgreSQL plumbing, no domain state: the pool and sessions (``pool``), migrations
(``migrate`` and ``migrations/``), live tables kept current by NOTIFY (``live``), advisory locks
(``locks``).

A concept's state lives with the concept (``shared/connections/store.py``,
``shared/mirror/store.py``, ``shared/apibudget/store.py``, ``shared/reconcile/runs.py``, ...), or
in the one service it serves (the gateway's spool, the provisioner's store).
"""

from shared.db.migrate import MIGRATIONS_DIR, Migration, apply_migrations, discover
from shared.db.pool import PgConnection, connect, create_pool, init_connection

__all__ = [
    "MIGRATIONS_DIR",
    "Migration",
    "PgConnection",
    "apply_migrations",
    "connect",
    "create_pool",
    "discover",
    "init_connection",
]
