"""Prometheus metrics, served at `/metrics`.

`tidings serve` applies receipts in a child process (decision 0004), whose counters live in
that process. So `serve` switches prometheus_client to its multiprocess mode before anything
imports it (`metrics_across_processes`): every process writes its counters to files in one
directory, and a scrape adds them up, including those of a worker that was restarted. Gauges
of the inbox are read from the store at scrape time, so they are right whoever applied what.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from tidings.metrics_across_processes import DIRECTORY as _DIRECTORY

__all__ = [
    "BATCH_SECONDS",
    "CONTENT_TYPE_LATEST",
    "EVENTS_APPLIED",
    "INTAKE_COMMIT_RECEIPTS",
    "INTAKE_COMMIT_SECONDS",
    "OUTBOUND_ATTEMPTS",
    "RECEIPTS_PROCESSED",
    "WEBHOOKS_RECEIVED",
    "render",
]

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
OUTBOUND_ATTEMPTS = Counter(
    "tidings_outbound_attempts_total",
    "Outbound webhook attempts, by outcome (delivered, failed: will retry, dead)",
    ["outcome"],
)
BATCH_SECONDS = Histogram(
    "tidings_worker_batch_seconds",
    "Time to apply one batch of receipts, from taking them to commit",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
# The intake's group commits of accepted webhooks (the inbox's; refused ones are logged by a
# writer of their own, not measured): how many receipts each made durable, and how long each
# took on the commit thread. An accepted webhook is answered only after its commit.
INTAKE_COMMIT_RECEIPTS = Histogram(
    "tidings_intake_commit_receipts",
    "Receipts made durable by one group commit of the intake",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
INTAKE_COMMIT_SECONDS = Histogram(
    "tidings_intake_commit_seconds",
    "Time of one group commit of the intake: waiting for the store, writing, syncing",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


class _Inbox:
    """Receipts by status, read from the store when scraped."""

    def __init__(self, count_by_status: Callable[[], dict[str, int]]) -> None:
        self._count = count_by_status

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "tidings_receipts", "Receipts in the inbox by status", labels=["status"]
        )
        for status, count in sorted(self._count().items()):
            family.add_metric([status], count)
        yield family


def render(count_by_status: Callable[[], dict[str, int]]) -> bytes:
    """The text exposition: every process's counters, and the inbox's gauges."""
    if os.environ.get(_DIRECTORY):
        counted = CollectorRegistry()
        MultiProcessCollector(counted)  # type: ignore[no-untyped-call]
    else:
        counted = REGISTRY
    inbox = CollectorRegistry()
    inbox.register(_Inbox(count_by_status))
    return generate_latest(counted) + generate_latest(inbox)
