"""Celery beat's schedule, built from `tidings.scheduler.jobs.JOBS`, the same list the embedded
scheduler runs (one definition of jobs and intervals, two runners): beat sends `run_job(name)`
for each job on its interval, and one worker runs it; plus the inbox sweep and the outbound
sweep (`deliver`). Web nodes run no
jobs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from celery.beat import Scheduler

from tidings.config import Settings
from tidings.scheduler.jobs import scheduled_jobs
from tidings.worker.celery.names import (
    DELIVER,
    INBOX_QUEUE,
    JOBS_QUEUE,
    OUTBOUND_QUEUE,
    RUN_JOB,
    SWEEP,
)

__all__ = ["StartNowScheduler", "beat_schedule"]

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
