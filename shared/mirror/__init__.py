"""The mirror: PostgreSQL tables that equal the tenant, and the change events that follow them.

store.py        the one monotonic upsert and soft delete (SQL; rules in its docstring)
writer.py       Mirror: the one path every writer takes (worker, sweeps, backfill): upsert,
                then the change events, acknowledged before the transaction commits
"""
