"""Webhook gateway: verifies Autotask callouts and makes them durable on Kafka before answering."""
