"""The sender thread of `tidings serve`: the dispatcher's event loop, beside the worker and
scheduler threads, woken by the worker when a batch wrote outbox rows."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

from tidings.config import Settings
from tidings.event_loops import new_event_loop
from tidings.logging import get_logger
from tidings.outbound.dispatcher import Dispatcher
from tidings.storage import deliveries
from tidings.storage.db import Database

__all__ = ["OutboundThread"]

log = get_logger("outbound")


class OutboundThread:
    """Runs the dispatcher until stopped. It is the only sender of an embedded store, so on
    start it makes due at once what a sender killed mid-attempt left leased: those are sent
    again (same webhook ids) instead of waiting for their lease to end."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._dispatcher: Dispatcher | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def wake(self) -> None:
        """Never blocks; a wake-up before the loop runs is covered by its first look."""
        loop, dispatcher = self._loop, self._dispatcher
        if loop is not None and dispatcher is not None:
            loop.call_soon_threadsafe(dispatcher.wake)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="tidings-outbound", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def _main(self) -> None:
        try:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                runner.run(self._run())
        except Exception:
            log.exception("the outbound sender stopped")
        finally:
            self._ready.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._dispatcher = Dispatcher(self._db, self._settings)
        self._ready.set()
        try:
            released = await asyncio.to_thread(
                deliveries.release_leases, self._db, datetime.now(UTC)
            )
            if released:
                log.info("%d deliveries left in flight by the last run are sent again", released)
        except Exception as error:  # the store may be down; leases then end by themselves
            log.warning("could not release leftover deliveries: %s", error)
        try:
            await self._dispatcher.run(self._stopping)
        finally:
            await self._dispatcher.aclose()
