"""The simulator's HTTP surface: the Autotask REST API, zone lookup and the admin API."""
