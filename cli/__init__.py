"""``autotask-sync``: the command line for people. A leaf: nothing imports it."""
