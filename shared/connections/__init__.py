"""Connections: every Autotask tenant a deployment serves, their credentials and scope.

store.py        rows of the ``connections`` table (secrets encrypted), the CLI's writes
catalogue.py    ConnectionCatalogue: the live view a process serves (environment connection
                plus enabled rows), one Autotask client per connection
purge.py        offboarding: every row kept for a connection, its records tombstoned downstream
"""
