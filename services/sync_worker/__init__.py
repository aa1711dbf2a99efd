"""Sync worker: turns callouts into fetched entities, mirror rows and change events."""
