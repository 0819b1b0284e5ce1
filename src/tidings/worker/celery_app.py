"""Scale-out: the Celery app `tidings.worker`, its tasks and the Celery beat schedule.

The inbox table stays the source of truth. A Celery message only wakes a worker: web nodes
send `apply_pending` after each group commit, and a worker that receives it claims pending
receipts (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so any number of workers share the inbox) and
applies them, exactly as the embedded worker does. A wake-up that is lost (broker down, worker
killed while holding it) only delays work until the next `sweep`, which `tidings beat` sends
every `TIDINGS_SWEEP_INTERVAL_SECONDS`.

Celery beat's schedule is built from `tidings.scheduler.jobs.JOBS`, the same list the embedded
scheduler runs (one definition of jobs and intervals, two runners): beat sends `run_job(name)`
for each job on its interval, and one worker runs it. Web nodes run no jobs.

Queues: `tidings.inbox` (wake-ups and sweeps) and `tidings.jobs` (scheduled jobs), so a long
job never has to wait behind a backlog, and an operator can dedicate workers to either.

Nothing here connects to a broker or a store at import time; `create_celery(settings)` builds
an app, and the store is opened lazily in each worker process (after Celery's pool forks).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from datetime import timedelta
from typing import Any, Final, cast
from urllib.parse import urlsplit

from celery import Celery, signals
from celery.beat import Scheduler

from tidings.config import Settings, load_settings
from tidings.domain.errors import StorageUnavailable
from tidings.logging import configure_logging, get_logger
from tidings.scheduler.jobs import Job, JobContext, scheduled_jobs
from tidings.storage.db import Database
from tidings.worker.process import process_batch

__all__ = [
    "APPLY_PENDING",
    "INBOX_QUEUE",
    "JOBS_QUEUE",
    "QUEUES",
    "RUN_JOB",
    "SWEEP",
    "BrokerNotConfigured",
    "beat_schedule",
    "broker_url",
    "close_celery",
    "create_celery",
    "run_beat",
    "run_worker",
    "send_wake_up",
]

log = get_logger("celery")

APP_NAME: Final = "tidings.worker"
INBOX_QUEUE: Final = "tidings.inbox"
JOBS_QUEUE: Final = "tidings.jobs"
QUEUES: Final = (INBOX_QUEUE, JOBS_QUEUE)

APPLY_PENDING: Final = "tidings.apply_pending"
SWEEP: Final = "tidings.sweep"
RUN_JOB: Final = "tidings.run_job"

BROKER_SCHEMES: Final = ("redis", "rediss", "amqp", "amqps", "pyamqp")

# A wake-up nobody took within this long is dropped by the worker that finally gets it: by then
# the receipts it announced have been applied by a later wake-up or by the sweep.
WAKE_UP_EXPIRES_SECONDS: Final = 60.0
# A scheduled run that waited longer than its interval (or this, whichever is longer) is dropped:
# the next one is on its way, and runs never pile up behind a stopped worker.
MIN_JOB_EXPIRES_SECONDS: Final = 60.0
# One `apply_pending` applies for at most this long, then hands over to a fresh wake-up, so
# other messages (jobs, other wake-ups) get their turn on a busy worker.
DRAIN_SECONDS: Final = 20.0

_CELERY_LOGGERS: Final = ("celery", "kombu", "amqp", "billiard")
_MASKED: Final = "tidings-masked"  # the handler tidings.logging.configure_logging installs


class BrokerNotConfigured(ValueError):
    """TIDINGS_BROKER_URL is missing or names a broker tidings does not support."""


def broker_url(settings: Settings) -> str:
    """The broker URL, checked: Redis (`redis://`, `rediss://`) or RabbitMQ (`amqp://`)."""
    url = (settings.broker_url or "").strip()
    if not url:
        raise BrokerNotConfigured(
            "TIDINGS_BROKER_URL is not set: scale-out needs a broker, "
            "e.g. redis://localhost:6379/0 or amqp://guest:guest@localhost:5672// "
            "(without one, `tidings serve` runs the worker and scheduler itself)"
        )
    scheme = urlsplit(url).scheme
    if scheme not in BROKER_SCHEMES:
        raise BrokerNotConfigured(
            f"TIDINGS_BROKER_URL has scheme {scheme or 'none'!r}; tidings supports "
            "redis://, rediss:// (Redis) and amqp://, amqps:// (RabbitMQ)"
        )
    return url


def create_celery(settings: Settings, *, publish_timeout: float | None = None) -> Celery:
    """A Celery app for these settings, with the tidings tasks and beat schedule.

    `publish_timeout` bounds how long sending one message may take when the broker is down
    (web nodes use it; workers and beat keep Celery's patient reconnecting instead).
    """
    url = broker_url(settings)
    app = Celery(APP_NAME, set_as_current=False)
    app.conf.update(
        broker_url=url,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for its broker to come back
        result_backend=None,
        task_ignore_result=True,
        result_expires=None,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        task_default_queue=INBOX_QUEUE,
        task_routes={RUN_JOB: {"queue": JOBS_QUEUE}},
        timezone="UTC",
        enable_utc=True,
        beat_schedule=beat_schedule(settings),
        beat_scheduler=_StartNowScheduler,
    )
    if publish_timeout is not None:
        app.conf.update(
            broker_connection_timeout=publish_timeout,
            broker_transport_options={
                # one quick retry, then give up: the caller logs it and the sweep covers for it
                "max_retries": 1,
                "interval_start": 0,
                "interval_step": 0.2,
                "interval_max": 0.2,
                "socket_connect_timeout": publish_timeout,
                "socket_timeout": publish_timeout,
            },
        )
    tasks = _Tasks(settings, app)
    app.tidings_tasks = tasks  # for close_celery

    # Plain functions, not bound methods: Celery checks a message's arguments against the
    # signature of what it registers. Results are ignored app-wide (task_ignore_result).
    def apply_pending() -> int:
        return tasks.apply_pending()

    def sweep() -> int:
        return tasks.sweep()

    def run_job(task: Any, name: str) -> int:
        return tasks.run_job(name, str(task.request.id))

    # shared=False: these closures belong to this app alone (Celery would otherwise add them
    # to every app created later in the process).
    app.task(name=APPLY_PENDING, shared=False)(apply_pending)
    app.task(name=SWEEP, shared=False)(sweep)
    app.task(name=RUN_JOB, shared=False, bind=True)(run_job)
    return app


def close_celery(app: Celery) -> None:
    """Close what an app from `create_celery` opened: its store connections, broker pools."""
    tasks: _Tasks | None = getattr(app, "tidings_tasks", None)
    if tasks is not None:
        tasks.close()
    app.close()


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
                "expires": max(job.interval_seconds, MIN_JOB_EXPIRES_SECONDS),
            },
        }
    every = settings.sweep_interval_seconds
    schedule["sweep"] = {
        "task": SWEEP,
        "schedule": timedelta(seconds=every),
        "options": {"queue": INBOX_QUEUE, "expires": max(every, MIN_JOB_EXPIRES_SECONDS)},
    }
    return schedule


def send_wake_up(app: Celery, *, retry: bool = True) -> None:
    """Ask some worker to apply pending receipts. Raises when the broker cannot take it."""
    app.send_task(APPLY_PENDING, queue=INBOX_QUEUE, expires=WAKE_UP_EXPIRES_SECONDS, retry=retry)


class _Tasks:
    """What the tasks do. The store is opened lazily, once per process: Celery's prefork pool
    forks its children after the app is built, and a connection must not cross a fork."""

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
            if result.claimed == 0:
                return applied
            if time.monotonic() >= deadline:
                self.wake()  # more may be waiting: go on in a fresh task, after the others
                return applied
            if result.claimed < settings.worker_batch_size:
                # Let more arrive: fewer, larger transactions (as the embedded worker does).
                time.sleep(settings.worker_linger_seconds)

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


class _StartNowScheduler(Scheduler):  # type: ignore[misc]  # Celery has no type hints
    """Celery beat's in-memory scheduler, with every entry due at start: like the embedded
    scheduler, beat runs each job (and the sweep) once when it starts, then on its interval.
    It keeps no schedule file, so nothing is written beside the process."""

    def setup_schedule(self) -> None:
        super().setup_schedule()
        for entry in self.schedule.values():
            run_every = getattr(entry.schedule, "run_every", None)
            if isinstance(run_every, timedelta):
                entry.last_run_at = entry.default_now() - run_every


def _configure_celery_logging(settings: Settings) -> None:
    """Let Celery log through tidings' masked handler instead of configuring logging itself."""

    def setup(**_: Any) -> None:
        configure_logging(settings.log_level, settings.log_json)
        masked = [h for h in logging.getLogger("tidings").handlers if h.get_name() == _MASKED]
        for name in _CELERY_LOGGERS:
            logger = logging.getLogger(name)
            logger.handlers[:] = masked[:1]
            logger.setLevel(settings.log_level.upper())
            logger.propagate = False

    signals.setup_logging.connect(setup, weak=False)


def run_worker(
    settings: Settings,
    *,
    concurrency: int | None = None,
    queues: tuple[str, ...] = QUEUES,
    hostname: str | None = None,
) -> int:
    """Run a Celery worker for tidings in this process until it is stopped; its exit code."""
    app = create_celery(settings)
    _configure_celery_logging(settings)

    def ready(**_: Any) -> None:
        log.info("tidings worker ready, consuming %s", ", ".join(queues))
        if INBOX_QUEUE in queues:
            app.tidings_tasks.wake()  # catch up on whatever waited while no worker ran

    def process_shutdown(**_: Any) -> None:
        tasks = getattr(app, "tidings_tasks", None)
        if isinstance(tasks, _Tasks):
            tasks.close()

    def process_init(**_: Any) -> None:
        gc.collect()  # as in `serve`: long-lived objects out of the collector's full passes
        gc.freeze()

    signals.worker_ready.connect(ready, weak=False)
    signals.worker_process_init.connect(process_init, weak=False)
    signals.worker_process_shutdown.connect(process_shutdown, weak=False)
    argv = [
        "worker",
        "--loglevel",
        settings.log_level.upper(),
        "--hostname",
        hostname or f"tidings-{os.getpid()}@%h",
        "--queues",
        ",".join(queues),
        "--without-mingle",
        "--without-gossip",
    ]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    return cast(int | None, app.start(argv)) or 0


def run_beat(settings: Settings) -> int:
    """Run Celery beat for tidings in this process until it is stopped; its exit code."""
    app = create_celery(settings)
    _configure_celery_logging(settings)
    for name, entry in beat_schedule(settings).items():
        log.info("beat schedule: %s every %ss", name, entry["schedule"].total_seconds())
    argv = ["beat", "--loglevel", settings.log_level.upper()]
    return cast(int | None, app.start(argv)) or 0


def __getattr__(name: str) -> Any:
    """`celery -A tidings.worker.celery_app inspect ping` and friends: the module's `app` is
    built on first use from the environment (never at import time)."""
    if name in ("app", "celery"):
        return create_celery(load_settings())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
