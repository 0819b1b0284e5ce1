"""`tidings worker` and `tidings beat`: a Celery worker or Celery beat for tidings, run in this
process, logging through tidings' masked handler."""

from __future__ import annotations

import logging
import os
from typing import Any, Final, cast

from celery import signals

from tidings import collector
from tidings.config import Settings
from tidings.logging import configure_logging, get_logger
from tidings.worker.celery.beat import beat_schedule, stop_on_signals
from tidings.worker.celery.config import create_celery
from tidings.worker.celery.names import INBOX_QUEUE, QUEUES
from tidings.worker.celery.tasks import Tasks

__all__ = ["run_beat", "run_worker"]

log = get_logger("celery")

_CELERY_LOGGERS: Final = ("celery", "kombu", "amqp", "billiard")
_MASKED: Final = "tidings-masked"  # the handler tidings.logging.configure_logging installs


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
        if isinstance(tasks, Tasks):
            tasks.close()

    def process_init(**_: Any) -> None:
        collector.settle()

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
    # Sent once beat's service starts, after Celery installed its own signal handlers.
    signals.beat_init.connect(lambda sender, **_: stop_on_signals(sender), weak=False)
    argv = ["beat", "--loglevel", settings.log_level.upper()]
    return cast(int | None, app.start(argv)) or 0
