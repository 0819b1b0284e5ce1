"""What embedded mode runs beside the intake: the worker thread, the scheduler thread and the
outbound sender thread, started and stopped together, in `serve`'s own process or in its
worker child process."""

from __future__ import annotations

from tidings.config import Settings
from tidings.outbound.thread import OutboundThread
from tidings.scheduler.jobs import OWN_THREAD, JobContext
from tidings.scheduler.thread import SchedulerThread
from tidings.storage.db import Database
from tidings.worker.thread import WorkerThread
from tidings.worker.wake import WakeEvent

__all__ = ["WorkerAndSchedulerThreads"]


class WorkerAndSchedulerThreads:
    """The worker thread and the scheduler thread of one process; the scheduler's jobs wake
    this worker (after releasing retries, say)."""

    def __init__(self, db: Database, settings: Settings, wake: WakeEvent | None = None) -> None:
        self._outbound = OutboundThread(db, settings)
        self._worker = WorkerThread(db, settings, wake, outbound=self._outbound)
        ctx = JobContext(db, settings, self._worker)
        self._scheduler = SchedulerThread(ctx, only=lambda name: name not in OWN_THREAD)
        self._dispatcher = SchedulerThread(
            ctx, only=lambda name: name in OWN_THREAD, name="tidings-dispatch"
        )

    def wake(self) -> None:
        self._worker.wake()

    def start(self) -> None:
        self._outbound.start()
        self._worker.start()
        self._scheduler.start()
        self._dispatcher.start()

    def stop(self) -> None:
        self._dispatcher.stop()
        self._scheduler.stop()
        self._worker.stop()
        self._outbound.stop()
