"""The worker child process of `tidings serve`: the worker and scheduler threads in a process of
their own, so applying receipts uses the second core while the intake keeps the first (one
Python process has one GIL; decision 0004).

`tidings serve` starts it, restarts it if it dies, and stops it with SIGUSR1 (it ignores the
SIGTERM a service manager sends every process of the service); it dies with its parent, so a
killed `serve` never leaves a worker behind. Intake wakes it by writing a byte to
a pipe. Nothing here is a lock shared between the processes: a worker killed at any instant
cannot leave the intake waiting on something it held (the count of intake writers waiting for
SQLite's lock is written by the intake alone).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from tidings import collector
from tidings.config import Settings
from tidings.logging import configure_logging, get_logger
from tidings.storage import write_turns
from tidings.storage.db import Database
from tidings.worker.embedded_threads import WorkerAndSchedulerThreads

__all__ = ["PipeWakeEvent", "WorkerChildProcess", "worker_database"]

log = get_logger("worker")

_PR_SET_PDEATHSIG = 1

# What `serve` stops the worker process with. Not SIGTERM: a service manager sends that to
# every process of the service at once, and the worker must wait for `serve` to stop it.
STOP_SIGNAL = signal.SIGUSR1


class PipeWakeEvent:
    """A `WakeEvent` across processes: the parent's `set` never blocks, the child's `wait`
    sleeps until a byte arrives."""

    def __init__(self, reader: Connection, writer: Connection | None) -> None:
        self._reader = reader
        self._writer = writer
        if writer is not None:
            os.set_blocking(writer.fileno(), False)

    def set(self) -> None:
        if self._writer is None:
            return
        # A full pipe already holds wake-ups; a broken one means the worker is being restarted.
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(self._writer.fileno(), b"\0")

    def clear(self) -> None:
        fd = self._reader.fileno()
        os.set_blocking(fd, False)
        try:
            while os.read(fd, 65536):
                pass
        except BlockingIOError:
            pass

    def wait(self, timeout: float | None = None) -> bool:
        return self._reader.poll(timeout)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a crash of `serve`)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def worker_database(settings: Settings) -> Database:
    """The worker child process's store. Applying receipts, retrying and purging can all be done
    again from the inbox, so its commits skip the per-commit sync, which held SQLite's write
    lock (shared with the intake) longer than the writes themselves (decision 0006)."""
    return Database(settings.database_url, settings.store_timeout_seconds, durable_commits=False)


def _run(settings_json: str, parent_pid: int, reader: Connection, waiting: Any) -> None:
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        return
    write_turns.share(waiting, goes_first=False)
    stop = threading.Event()
    # Ctrl-C, and a service manager's SIGTERM to every process of the service, go to `serve`
    # too, which stops us when it is ready to (with STOP_SIGNAL).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(STOP_SIGNAL, lambda *_: stop.set())
    settings = Settings.model_validate_json(settings_json)
    configure_logging(settings.log_level, settings.log_json)
    db = worker_database(settings)
    threads = WorkerAndSchedulerThreads(db, settings, wake=PipeWakeEvent(reader, None))
    threads.start()
    collector.settle()
    log.info("worker process ready (pid %d)", os.getpid())
    while not stop.wait(1.0):
        if os.getppid() != parent_pid:
            break
    threads.stop()
    db.dispose()


class WorkerChildProcess:
    """Starts the worker child process, restarts it if it dies (an uncommitted batch is simply
    applied again by the next one) and wakes it after each intake commit."""

    def __init__(self, settings: Settings, check_seconds: float = 0.5) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._settings_json = settings.model_dump_json()
        reader, writer = self._context.Pipe(duplex=False)
        # The intake's writers waiting for SQLite's write lock (`storage.write_turns`).
        self._waiting = self._context.RawValue("i", 0)
        write_turns.share(self._waiting, goes_first=True)
        self._reader = reader
        self._wake = PipeWakeEvent(reader, writer)
        self._stopping = threading.Event()
        self._check_seconds = check_seconds
        self._stop_timeout = 15.0
        self._process = self._spawn()
        self._supervisor = threading.Thread(
            target=self._supervise, name="tidings-worker-supervisor", daemon=True
        )
        self.restarts = 0

    def _spawn(self) -> Any:
        return self._context.Process(
            target=_run,
            args=(self._settings_json, os.getpid(), self._reader, self._waiting),
            name="tidings-worker",
            daemon=True,
        )

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._supervisor.start()
        # multiprocessing's own exit hook ends a daemon child with SIGTERM, which this one
        # ignores, then waits for it: stop it first (hooks run newest first) if `serve` ends
        # without its shutdown having done so.
        atexit.register(self.stop)

    def _supervise(self) -> None:
        """Start, restart and finally stop the child, all from this one thread: Linux delivers
        the parent-death signal when the *thread* that forked a child exits, so the child must
        not outlive the thread that started it."""
        self._process.start()
        while not self._stopping.wait(self._check_seconds):
            if self._process.is_alive():
                continue
            log.error(
                "worker process %s exited with %s; starting a new one",
                self._process.pid,
                self._process.exitcode,
            )
            self._process = self._spawn()
            self._process.start()
            self.restarts += 1
        if self._process.is_alive() and self._process.pid is not None:
            with contextlib.suppress(ProcessLookupError):  # it may have just died
                os.kill(self._process.pid, STOP_SIGNAL)  # it finishes its batch and exits
        self._process.join(self._stop_timeout)
        if self._process.is_alive():
            log.warning("worker process did not stop in %ss; killing it", self._stop_timeout)
            self._process.kill()
            self._process.join(5)

    def stop(self, timeout: float = 15.0) -> None:
        self._stop_timeout = timeout
        self._stopping.set()
        if self._supervisor.is_alive():
            self._supervisor.join(timeout + 10)
        atexit.unregister(self.stop)
