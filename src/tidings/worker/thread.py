"""The worker thread: runs `process_batch` until stopped, woken by intake after each commit."""

from __future__ import annotations

import threading

from tidings.config import Settings
from tidings.domain.errors import StorageUnavailable
from tidings.logging import get_logger
from tidings.storage.db import Database
from tidings.storage.engine import NotAStore
from tidings.worker.process import process_batch
from tidings.worker.wake import Wakeable, WakeEvent

__all__ = ["WorkerThread"]

log = get_logger("worker")

# How long the worker waits before trying again a store it cannot use as it is.
_REFUSED_SECONDS = 60.0


class WorkerThread:
    """Runs `process_batch` in a thread until stopped; intake wakes it after each commit."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        wake: WakeEvent | None = None,
        outbound: Wakeable | None = None,
    ) -> None:
        self._db = db
        self._outbound = outbound  # woken when a batch wrote outbox rows
        self._settings = settings
        self._wake: WakeEvent = wake if wake is not None else threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._checkpoint_failed = False  # said once, not every quiet second

    def wake(self) -> None:
        self._wake.set()

    def _checkpoint(self) -> None:
        """Copy the store's write-ahead log into its file, which commits leave to a quiet
        moment (`Database.checkpoint`, decision 0018): whoever wrote it (receipts applied,
        deliveries, jobs). With nothing to copy it costs a few microseconds and no sync."""
        try:
            pages = self._db.checkpoint()
        except Exception as error:  # the next quiet moment tries again
            if not self._checkpoint_failed:
                log.warning("could not copy the store's write-ahead log into it: %s", error)
            self._checkpoint_failed = True
            return
        self._checkpoint_failed = False
        log.debug("the store's write-ahead log holds %d pages, copied into it", pages)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="tidings-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_forever(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before claiming, so a wake-up during the batch is not lost
            try:
                result = process_batch(self._db, self._settings)
            except StorageUnavailable as error:
                log.warning("worker cannot reach the store, will retry: %s", error)
                self._stop.wait(self._settings.worker_idle_seconds)
                continue
            except NotAStore as error:  # a person must act: said once a minute, no traceback
                log.error("worker cannot apply receipts: %s", error)
                self._stop.wait(_REFUSED_SECONDS)
                continue
            except Exception:
                log.exception("worker batch failed; it will be retried")
                self._stop.wait(self._settings.worker_idle_seconds)
                continue
            if result.outbound and self._outbound is not None:
                self._outbound.wake()
            taken = result.claimed + result.skipped  # quarantined ones moved: more may follow
            if taken == 0:
                if not self._wake.wait(self._settings.worker_idle_seconds):
                    self._checkpoint()  # nothing arrived meanwhile: a quiet moment
            elif taken < self._settings.worker_batch_size:
                # Let more arrive: fewer, larger transactions, and the lock free for intake.
                self._stop.wait(self._settings.worker_linger_seconds)
