"""The Celery tasks: `apply_pending` and `sweep` apply the inbox as the embedded worker does,
`run_job` runs one job of `JOBS` by name, `deliver` sends outbound webhooks as the embedded
sender does; and the wake-up messages that ask for `apply_pending` and `deliver`.

The store is opened lazily, once per process: Celery's prefork pool forks its children after
the app is built, and a connection must not cross a fork.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any, Final

from celery import Celery

from tidings.config import Settings
from tidings.domain.errors import StorageUnavailable
from tidings.logging import get_logger
from tidings.outbound.dispatcher import Dispatcher, Totals
from tidings.scheduler.jobs import Job, JobContext, scheduled_jobs
from tidings.storage.db import Database
from tidings.worker.celery.names import (
    APPLY_PENDING,
    DELIVER,
    INBOX_QUEUE,
    OUTBOUND_QUEUE,
    RUN_JOB,
    SWEEP,
)
from tidings.worker.process import process_batch

__all__ = ["Tasks", "register_tasks", "send_deliver", "send_wake_up"]

log = get_logger("celery")

# A wake-up nobody took within this long is dropped by the worker that finally gets it: by then
# the receipts it announced have been applied by a later wake-up or by the sweep.
WAKE_UP_EXPIRES_SECONDS: Final = 60.0
# One `apply_pending` applies for at most this long, then hands over to a fresh wake-up, so
# other messages (jobs, other wake-ups) get their turn on a busy worker.
DRAIN_SECONDS: Final = 20.0


def send_wake_up(app: Celery, *, retry: bool = True) -> None:
    """Ask some worker to apply pending receipts. Raises when the broker cannot take it."""
    app.send_task(APPLY_PENDING, queue=INBOX_QUEUE, expires=WAKE_UP_EXPIRES_SECONDS, retry=retry)


def send_deliver(app: Celery) -> None:
    """Ask some worker to send the outbound deliveries that are due."""
    app.send_task(DELIVER, queue=OUTBOUND_QUEUE, expires=WAKE_UP_EXPIRES_SECONDS)


class Tasks:
    """What the tasks do, with the store of this process. It is `Wakeable`: a job that makes
    receipts pending wakes the workers through the broker."""

    def __init__(self, settings: Settings, app: Celery) -> None:
        self._settings = settings
        self._app = app
        self._db: Database | None = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def db(self) -> Database:
        with self._lock:
            if self._db is None or self._pid != os.getpid():
                self._db = Database(
                    self._settings.database_url, self._settings.store_timeout_seconds
                )
                self._pid = os.getpid()
            return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.dispose()
            self._db = None

    def wake(self) -> None:
        try:
            send_wake_up(self._app)
        except Exception as error:  # the sweep covers for a lost wake-up
            log.warning("could not send a wake-up to the broker: %s", error)

    def _drain(self) -> int:
        """Apply pending receipts batch after batch until none is claimed (bounded in time)."""
        settings = self._settings
        deadline = time.monotonic() + DRAIN_SECONDS
        applied = 0
        while True:
            try:
                result = process_batch(self.db, settings)
            except StorageUnavailable as error:
                log.warning("worker cannot reach the store, the sweep will retry: %s", error)
                return applied
            applied += result.claimed
            if result.outbound:
                self.wake_outbound()
            taken = result.claimed + result.skipped  # quarantined ones moved: more may follow
            if taken == 0:
                return applied
            if time.monotonic() >= deadline:
                self.wake()  # more may be waiting: go on in a fresh task, after the others
                return applied
            if taken < settings.worker_batch_size:
                # Let more arrive: fewer, larger transactions (as the embedded worker does).
                time.sleep(settings.worker_linger_seconds)

    def wake_outbound(self) -> None:
        try:
            send_deliver(self._app)
        except Exception as error:  # beat's outbound sweep covers for a lost wake-up
            log.warning("could not ask for outbound deliveries: %s", error)

    def deliver(self) -> int:
        """Send what is due until nothing is (bounded in time, then a fresh task goes on)."""

        async def run() -> tuple[Totals, bool]:
            dispatcher = Dispatcher(self.db, self._settings)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DRAIN_SECONDS
            try:
                totals = await dispatcher.drain(deadline)
            finally:
                await dispatcher.aclose()
            return totals, loop.time() >= deadline

        try:
            totals, more = asyncio.run(run())
        except StorageUnavailable as error:
            log.warning("sender cannot reach the store, the outbound sweep will retry: %s", error)
            return 0
        if more:
            self.wake_outbound()
        sent = totals.delivered + totals.failed + totals.dead
        if sent:
            log.info(
                "outbound: %d delivered, %d failed (will retry), %d dead",
                totals.delivered,
                totals.failed,
                totals.dead,
            )
        return sent

    def apply_pending(self) -> int:
        return self._drain()

    def sweep(self) -> int:
        applied = self._drain()
        if applied:
            log.info("sweep applied %d receipts whose wake-up was late or lost", applied)
        return applied

    def run_job(self, name: str, task_id: str) -> int:
        jobs: dict[str, Job] = {job.name: job for job in scheduled_jobs(self._settings)}
        job = jobs.get(name)
        if job is None:
            log.error("no scheduled job is called %r (known: %s)", name, ", ".join(jobs))
            return 0
        outcome = job.run(JobContext(self.db, self._settings, self))
        log.info("scheduled job %s ran (task %s): %d", name, task_id, outcome)
        return outcome


def register_tasks(app: Celery, settings: Settings) -> Tasks:
    """Register the tasks on `app`; the `Tasks` they run is also `app.tidings_tasks`."""
    tasks = Tasks(settings, app)
    app.tidings_tasks = tasks  # for close_celery and the worker's signals

    # Plain functions, not bound methods: Celery checks a message's arguments against the
    # signature of what it registers. Results are ignored app-wide (task_ignore_result).
    def apply_pending() -> int:
        return tasks.apply_pending()

    def sweep() -> int:
        return tasks.sweep()

    def run_job(task: Any, name: str) -> int:
        return tasks.run_job(name, str(task.request.id))

    def deliver() -> int:
        return tasks.deliver()

    # shared=False: these closures belong to this app alone (Celery would otherwise add them
    # to every app created later in the process).
    app.task(name=APPLY_PENDING, shared=False)(apply_pending)
    app.task(name=SWEEP, shared=False)(sweep)
    app.task(name=RUN_JOB, shared=False, bind=True)(run_job)
    app.task(name=DELIVER, shared=False)(deliver)
    return tasks
