"""Celery beat's schedule, built from `tidings.scheduler.jobs.JOBS`, the same list the embedded
scheduler runs (one definition of jobs and intervals, two runners): beat sends `run_job(name)`
for each job on its interval, and one worker runs it; plus the inbox sweep and the outbound
sweep (`deliver`). Web nodes run no
jobs."""

from __future__ import annotations

import signal
from datetime import timedelta
from types import FrameType
from typing import Any, Final

from celery.beat import Scheduler, Service

from tidings.config import Settings
from tidings.logging import get_logger
from tidings.scheduler.jobs import scheduled_jobs
from tidings.worker.celery.names import (
    DELIVER,
    INBOX_QUEUE,
    JOBS_QUEUE,
    OUTBOUND_QUEUE,
    RUN_JOB,
    SWEEP,
)

__all__ = ["StartNowScheduler", "beat_schedule", "stop_on_signals"]

log = get_logger("celery")

# A scheduled run that waited longer than its interval (or this, whichever is longer) is dropped:
# the next one is on its way, and runs never pile up behind a stopped worker. A job may set a
# shorter expiry of its own (`Job.expires_seconds`: dispatch, sent ten times a second).
MIN_JOB_EXPIRES_SECONDS: Final = 60.0


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery beat's schedule: one entry per job of `JOBS` (intervals as `scheduled_jobs` gives
    them), plus the sweep."""
    schedule: dict[str, dict[str, Any]] = {}
    for job in scheduled_jobs(settings):
        schedule[f"job:{job.name}"] = {
            "task": RUN_JOB,
            "schedule": timedelta(seconds=job.interval_seconds),
            "args": (job.name,),
            "options": {
                "queue": JOBS_QUEUE,
                "expires": job.expires_seconds
                or max(job.interval_seconds, MIN_JOB_EXPIRES_SECONDS),
            },
        }
    every = settings.sweep_interval_seconds
    schedule["sweep"] = {
        "task": SWEEP,
        "schedule": timedelta(seconds=every),
        "options": {"queue": INBOX_QUEUE, "expires": max(every, MIN_JOB_EXPIRES_SECONDS)},
    }
    # Outbound deliveries whose retry is due, and events whose wake-up was lost.
    outbound = settings.outbound_sweep_seconds
    schedule["outbound"] = {
        "task": DELIVER,
        "schedule": timedelta(seconds=outbound),
        "options": {"queue": OUTBOUND_QUEUE, "expires": max(outbound, MIN_JOB_EXPIRES_SECONDS)},
    }
    return schedule


class StartNowScheduler(Scheduler):  # type: ignore[misc]  # Celery has no type hints
    """Celery beat's in-memory scheduler, with every entry due at start: like the embedded
    scheduler, beat runs each job (and the sweep) once when it starts, then on its interval.
    It keeps no schedule file, so nothing is written beside the process."""

    def setup_schedule(self) -> None:
        super().setup_schedule()
        for entry in self.schedule.values():
            run_every = getattr(entry.schedule, "run_every", None)
            if isinstance(run_every, timedelta):
                entry.last_run_at = entry.default_now() - run_every


def stop_on_signals(service: Service) -> None:
    """Make SIGTERM and SIGINT stop beat at its next turn, whatever it was doing.

    Celery's own handler closes the broker connection and raises SystemExit where beat was. When
    that was in the middle of sending a task, the send failed on the closed connection, Celery
    logged the failure as one more unsent task ("I/O operation on closed file") and went on
    sending until it was killed: 30 s later in our tests, and as long as a supervisor waits in
    production. Here the stop is asked for first, so beat's loop ends even when the exit is
    swallowed, and the connection is closed by beat's own shutdown, after the loop. The
    handler writes nothing (not even a log line): a signal that interrupts a write to the same
    stream would make that write fail instead of the stop happen."""

    def stop(signum: int, frame: FrameType | None) -> None:
        service._is_shutdown.set()  # what `Service.stop` sets, without its log line
        raise SystemExit()

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, stop)
    log.info("beat stops at SIGTERM or Ctrl-C, at its next turn")
