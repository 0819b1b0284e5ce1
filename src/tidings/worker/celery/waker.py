"""Wake-ups from a web node to the Celery workers (scale-out), off the intake's event loop.

Intake calls `wake()` after every group commit. That only sets a flag; a background thread
publishes one `apply_pending` message for all the commits since its last one, so a burst of
commits costs a handful of messages, and a slow or unreachable broker never delays a webhook's
2xx. When the broker cannot be reached the thread logs a warning (once per outage, then a
reminder now and then), keeps retrying with a backoff, and says when the broker is back; the
receipts wait in the inbox meanwhile, and the sweep or the next wake-up applies them.
"""

from __future__ import annotations

import threading
import time
from typing import Final

from tidings.config import Settings
from tidings.logging import get_logger
from tidings.worker.celery.config import close_celery, create_celery
from tidings.worker.celery.tasks import send_wake_up

__all__ = ["BrokerWaker"]

log = get_logger("broker")

PUBLISH_TIMEOUT_SECONDS: Final = 2.0
# At most one wake-up per this interval per web node; the first after a quiet spell goes at once.
MIN_INTERVAL_SECONDS: Final = 0.05
RETRY_SECONDS: Final = (0.5, 1.0, 2.0, 5.0)
REMIND_SECONDS: Final = 60.0


class BrokerWaker:
    """Sends coalesced `apply_pending` wake-ups to the broker from a thread of its own."""

    def __init__(self, settings: Settings) -> None:
        self._app = create_celery(settings, publish_timeout=PUBLISH_TIMEOUT_SECONDS)
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.failed = 0

    def wake(self) -> None:
        """Ask for a wake-up; never blocks and never raises."""
        self._wanted.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tidings-broker-wake", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = PUBLISH_TIMEOUT_SECONDS + 1.0) -> None:
        self._stop.set()
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(timeout)
        close_celery(self._app)

    def _run(self) -> None:
        failures = 0
        down_since = last_reminder = 0.0
        while not self._stop.is_set():
            self._wanted.wait()
            if self._stop.is_set():
                return
            self._wanted.clear()
            try:
                send_wake_up(self._app, retry=False)
            except Exception as error:
                self.failed += 1
                now = time.monotonic()
                if failures == 0:
                    down_since = last_reminder = now
                    log.warning(
                        "broker unreachable, wake-ups are not delivered (webhooks are still "
                        "accepted; receipts wait in the inbox for the sweep): %s",
                        error,
                    )
                elif now - last_reminder >= REMIND_SECONDS:
                    last_reminder = now
                    log.warning("broker still unreachable after %.0fs: %s", now - down_since, error)
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                self._wanted.set()  # try again after the pause: workers catch up on return
                self._stop.wait(delay)
                continue
            self.sent += 1
            if failures:
                log.info("broker reachable again after %.0fs", time.monotonic() - down_since)
                failures = 0
            self._stop.wait(MIN_INTERVAL_SECONDS)
