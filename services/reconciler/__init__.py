"""Reconciler: periodic sweeps that repair what the webhooks missed, detect deletes, backfill."""
