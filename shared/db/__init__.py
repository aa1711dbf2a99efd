"""PostgreSQL plumbing: the pool (``pool``), migrations (``migrate`` and ``migrations/``).

State the services share (registrations, watermarks, spool, the mirror upsert) gets one module
each here.
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
