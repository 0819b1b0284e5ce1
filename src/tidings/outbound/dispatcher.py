"""The sender's loop: fan new outbox events out, take due deliveries, send them, record what
came of each, over and over; the same loop in `tidings serve` (a thread of the worker process)
and in a Celery task.

Sending is pipelined: deliveries are taken while others are in flight (up to a bound), and
attempts are recorded in batches as they finish, so a slow endpoint delays only its own
deliveries. A subscription with many deliveries in flight is not given more until they finish,
which keeps every taken delivery's wait well inside its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tidings.config import Settings
from tidings.domain.errors import StorageUnavailable
from tidings.domain.outbound import RetryPolicy
from tidings.logging import get_logger, mask_text
from tidings.metrics import OUTBOUND_ATTEMPTS
from tidings.outbound.sender import Sender
from tidings.storage import deliveries
from tidings.storage.db import Database
from tidings.storage.deliveries import Attempt, Claim

__all__ = ["LEASE_SECONDS", "Dispatcher", "Totals"]

log = get_logger("outbound")

# A taken delivery belongs to its sender this long; one whose sender died is taken again then.
LEASE_SECONDS = 60.0
# How long finished attempts wait to be recorded together.
_RECORD_LINGER = 0.02
# How long attempts that could not be recorded wait to be recorded again, and for how long
# after they were made they are (half a lease: never after their delivery is taken again).
_RECORD_RETRY = 0.5
_KEEP_RECORDING = timedelta(seconds=LEASE_SECONDS / 2)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Totals:
    """What a dispatcher did since it started."""

    fanned_out: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    disabled: list[int] = field(default_factory=list)


class Dispatcher:
    """Runs in one event loop: `run(stop)` until told to stop, or `drain()` until nothing is
    due (tests with a controlled clock, Celery tasks)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        now: Callable[[], datetime] = _utcnow,
        draw: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._now = now
        self._draw = draw
        self._policy = RetryPolicy(settings.outbound_retry_delays)
        self._disable_after = timedelta(seconds=settings.outbound_disable_after_seconds)
        self._sender = (
            Sender(settings, now) if wall_clock is None else Sender(settings, now, wall_clock)
        )
        self._in_flight: dict[int, int] = {}  # by subscription
        self._tasks: set[asyncio.Task[None]] = set()
        self._finished: list[Attempt] = []
        self._recorded = asyncio.Event()
        self._wake = asyncio.Event()
        self.totals = Totals()

    @property
    def _room(self) -> int:
        return 2 * self._settings.outbound_batch_size - sum(self._in_flight.values())

    def _busy(self) -> list[int]:
        most = 4 * self._settings.outbound_endpoint_concurrency
        return [sub for sub, n in self._in_flight.items() if n >= most]

    def wake(self) -> None:
        """New events or due deliveries: look now (call from the loop's thread)."""
        self._wake.set()

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._record_finished()
        if self._finished:
            log.warning(
                "%d outbound attempts were made but not recorded; they are made again when "
                "their lease ends",
                len(self._finished),
            )
        await self._sender.aclose()

    async def step(self) -> int:
        """Fan out, then take and start what is due (as room allows); how many started."""
        batch = self._settings.outbound_batch_size
        now = self._now()
        fanned = await asyncio.to_thread(deliveries.fan_out, self._db, now, batch)
        self.totals.fanned_out += fanned
        room = self._room
        if room <= 0:
            return 0
        claims = await asyncio.to_thread(
            deliveries.claim, self._db, now, min(batch, room), LEASE_SECONDS, self._busy()
        )
        for claim in claims:
            self._start(claim)
        return len(claims) + fanned

    def _start(self, claim: Claim) -> None:
        sub = claim.subscription.id
        self._in_flight[sub] = self._in_flight.get(sub, 0) + 1
        task = asyncio.create_task(self._attempt(claim))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attempt(self, claim: Claim) -> None:
        try:
            attempt = await self._sender.attempt(claim)
        except Exception as error:  # a bug must not lose the delivery: it is a failed attempt
            log.exception("sending delivery %s failed unexpectedly", claim.delivery_id)
            attempt = Attempt(claim, self._now(), 0, None, f"{type(error).__name__}: {error}")
        self._finished.append(attempt)
        if len(self._finished) == 1:
            asyncio.get_running_loop().call_later(_RECORD_LINGER, self._flush_soon)

    def _flush_soon(self) -> None:
        task = asyncio.create_task(self._record_finished())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record_finished(self) -> None:
        finished, self._finished = self._finished, []
        if not finished:
            return
        kept: list[Attempt] = []
        outcome: deliveries.Recorded | None = None
        try:
            outcome = await asyncio.to_thread(
                deliveries.record,
                self._db,
                finished,
                self._now(),
                self._policy,
                self._disable_after,
                self._draw,
            )
        except StorageUnavailable as error:
            # Made but not recorded: recorded again shortly, for an attempt still leased when
            # its lease ends is made again (a duplicate at the subscriber). One taken more
            # than half a lease ago is left to that: recorded after its delivery was taken
            # again, it could undo the newer attempt's record.
            kept = [a for a in finished if self._now() - a.attempted_at < _KEEP_RECORDING]
            log.warning(
                "could not record %d outbound attempts, trying again in %gs (%d left to be "
                "made again when their lease ends): %s",
                len(kept),
                _RECORD_RETRY,
                len(finished) - len(kept),
                error,
            )
            if kept:
                self._finished[:0] = kept
                asyncio.get_running_loop().call_later(_RECORD_RETRY, self._flush_soon)
        except Exception:  # a bug: the attempts are made again when their lease ends
            log.exception("recording %d outbound attempts failed", len(finished))
        finally:
            retrying = {id(a) for a in kept}
            for attempt in finished:
                if id(attempt) in retrying:
                    continue
                sub = attempt.claim.subscription.id
                self._in_flight[sub] -= 1
                if not self._in_flight[sub]:
                    del self._in_flight[sub]
            self._recorded.set()
            self._wake.set()
        if outcome is None:
            return
        self.totals.delivered += outcome.delivered
        self.totals.failed += outcome.failed
        self.totals.dead += outcome.dead
        OUTBOUND_ATTEMPTS.labels("delivered").inc(outcome.delivered)
        OUTBOUND_ATTEMPTS.labels("failed").inc(outcome.failed)
        OUTBOUND_ATTEMPTS.labels("dead").inc(outcome.dead)
        for gone, reason in outcome.disabled:
            self.totals.disabled.append(gone.id)
            log.warning(
                "alert.endpoint_disabled: subscription %s (%s) is disabled: %s; "
                'enable it again with PATCH /v1/subscriptions/%s {"enabled": true}',
                gone.id,
                mask_text(gone.url),
                reason,
                gone.id,
                extra={"alert": "endpoint_disabled", "subscription": gone.id},
            )

    async def drain(self, deadline: float | None = None) -> Totals:
        """Work until nothing is due or in flight (or the loop's clock passes `deadline`)."""
        loop = asyncio.get_running_loop()
        while True:
            started = await self.step()
            if started == 0 and not self._in_flight and not self._finished:
                return self.totals
            if deadline is not None and loop.time() >= deadline:
                return self.totals
            if started == 0:
                self._recorded.clear()
                if deadline is None:
                    await self._recorded.wait()
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._recorded.wait(), deadline - loop.time())

    async def run(self, stopping: asyncio.Event) -> None:
        """Work until `stopping` is set, waking when told (`wake`) or every poll interval."""
        poll = self._settings.outbound_poll_seconds
        while not stopping.is_set():
            self._wake.clear()
            try:
                started = await self.step()
            except StorageUnavailable as error:
                log.warning("sender cannot reach the store, will retry: %s", error)
                started = 0
            except Exception:
                log.exception("outbound step failed; it will be tried again")
                started = 0
            if started and self._room > 0:
                continue
            waiter = asyncio.create_task(self._wake.wait())
            stopper = asyncio.create_task(stopping.wait())
            await asyncio.wait({waiter, stopper}, timeout=poll, return_when="FIRST_COMPLETED")
            waiter.cancel()
            stopper.cancel()
