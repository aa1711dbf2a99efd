"""A connection's sync scope: what is mirrored, and the one rule that judges it.

rules.py        SyncScope: the model stored in ``connections.scope`` and its pure checks
                (entities, ticket and company filters, webhook overrides)
membership.py   judge(): which fetched rows are in scope, by the rule each registry entry
                names (its own fields, its parent's row in the mirror, or none); the worker
                and the sweeps apply the same rule
"""
