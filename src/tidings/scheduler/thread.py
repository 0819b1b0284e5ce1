"""The embedded scheduler: a thread beside the worker thread in `tidings serve` that runs `JOBS`
on their intervals (in scale-out, Celery beat sends them instead)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tidings.logging import get_logger
from tidings.scheduler.jobs import JOBS, Job, JobContext, scheduled_jobs
from tidings.storage.engine import NotAStore

__all__ = ["SchedulerThread"]

log = get_logger("scheduler")


class SchedulerThread:
    """Runs each job once at start, then every `interval_seconds` (as `TIDINGS_JOB_INTERVALS`
    may override it); a failing job is logged and tried again at its next turn, never stopping
    the others."""

    def __init__(
        self,
        ctx: JobContext,
        jobs: tuple[Job, ...] = JOBS,
        only: Callable[[str], bool] = lambda name: True,
        name: str = "tidings-scheduler",
    ) -> None:
        self._ctx = ctx
        self._jobs = tuple(job for job in scheduled_jobs(ctx.settings, jobs) if only(job.name))
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        due = {job.name: time.monotonic() for job in self._jobs}
        while due and not self._stop.is_set():
            now = time.monotonic()
            for job in self._jobs:
                if due[job.name] <= now:
                    try:
                        job.run(self._ctx)
                    except NotAStore as error:  # a person must act: one line, no traceback
                        log.error(
                            "scheduled job %s cannot run: %s; next try in %ss",
                            job.name,
                            error,
                            job.interval_seconds,
                        )
                    except Exception:
                        log.exception(
                            "scheduled job %s failed; next try in %ss",
                            job.name,
                            job.interval_seconds,
                        )
                    due[job.name] = time.monotonic() + job.interval_seconds
            self._stop.wait(max(0.05, min(due.values()) - time.monotonic()))
