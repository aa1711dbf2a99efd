"""Provisioner: keeps the tenant's Autotask webhooks matching the declared desired state."""
