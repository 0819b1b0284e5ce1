"""The embedded worker in its own process, so applying receipts uses the second core while the
intake keeps the first (one Python process has one GIL).

`tidings serve` starts it and stops it; it dies with its parent, so a killed `serve` never
leaves a worker behind. Intake wakes it through a `multiprocessing.Event` after each commit.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from multiprocessing.synchronize import Event

from tidings.config import Settings
from tidings.logging import configure_logging, get_logger
from tidings.scheduler.embedded import EmbeddedScheduler
from tidings.scheduler.jobs import JobContext
from tidings.storage.db import Database
from tidings.worker.process import Worker

__all__ = ["WorkerProcess"]

log = get_logger("worker")

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a crash of `serve`)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _run(settings_json: str, parent_pid: int, wake: Event, stop: Event) -> None:
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to `serve`, which stops us
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings = Settings.model_validate_json(settings_json)
    configure_logging(settings.log_level, settings.log_json)
    db = Database(settings.database_url, settings.store_timeout_seconds)
    worker = Worker(db, settings, wake=wake)
    scheduler = EmbeddedScheduler(JobContext(db, settings, worker.wake))
    worker.start()
    scheduler.start()
    while not stop.wait(1.0):
        if os.getppid() != parent_pid:
            break
    scheduler.stop()
    worker.stop()
    db.dispose()


class WorkerProcess:
    """The worker and the embedded scheduler, in a child process."""

    def __init__(self, settings: Settings) -> None:
        context = multiprocessing.get_context("spawn")
        self._wake = context.Event()
        self._stop = context.Event()
        self._process = context.Process(
            target=_run,
            args=(settings.model_dump_json(), os.getpid(), self._wake, self._stop),
            name="tidings-worker",
            daemon=True,
        )

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._process.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        self._process.join(timeout)
        if self._process.is_alive():
            log.warning("worker process did not stop in %ss; terminating it", timeout)
            self._process.terminate()
            self._process.join(5)
