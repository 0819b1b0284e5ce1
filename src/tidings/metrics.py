"""Prometheus metrics, served at `/metrics`."""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["EVENTS_APPLIED", "RECEIPTS_PROCESSED", "WEBHOOKS_RECEIVED"]

WEBHOOKS_RECEIVED = Counter(
    "tidings_webhooks_received_total",
    "Webhook requests answered, by provider and status",
    ["provider", "status"],
)
RECEIPTS_PROCESSED = Counter(
    "tidings_receipts_processed_total", "Receipts the worker finished, by outcome", ["outcome"]
)
EVENTS_APPLIED = Counter(
    "tidings_events_applied_total", "Normalized events applied (not duplicates)"
)
