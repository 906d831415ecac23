"""Webhook and push delivery: the outbox workers and the bounded HTTP sender they share."""
