"""The names tidings' Celery messages travel under. Web nodes, workers and beat must agree on
them, so each is defined once here.

Two queues: `tidings.inbox` (wake-ups and sweeps) and `tidings.jobs` (scheduled jobs), so a
long job never has to wait behind a backlog, and an operator can dedicate workers to either.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "APPLY_PENDING",
    "DELIVER",
    "INBOX_QUEUE",
    "JOBS_QUEUE",
    "OUTBOUND_QUEUE",
    "QUEUES",
    "RUN_JOB",
    "SWEEP",
]

INBOX_QUEUE: Final = "tidings.inbox"
JOBS_QUEUE: Final = "tidings.jobs"
# Outbound webhooks: a sender waiting on slow subscribers never holds up the inbox.
OUTBOUND_QUEUE: Final = "tidings.outbound"
QUEUES: Final = (INBOX_QUEUE, JOBS_QUEUE, OUTBOUND_QUEUE)

APPLY_PENDING: Final = "tidings.apply_pending"
SWEEP: Final = "tidings.sweep"
RUN_JOB: Final = "tidings.run_job"
DELIVER: Final = "tidings.deliver"
