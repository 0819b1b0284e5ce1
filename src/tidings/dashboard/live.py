"""Live updates: one server-sent-event stream per open page, fed by one change watcher per
process.

The watcher reads a fingerprint of what the worker has applied (the newest event, receipt
and call ids, the counts of receipts and deliveries in trouble, the dispatches' and
connections' last changes) once a second, and only while a page is open; every stream then
says `change` at most once a second, however fast webhooks arrive. Reading the shared store
works the same on SQLite and on PostgreSQL, on every web node of a scale-out (decision 0014).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import func, select
from starlette.responses import Response, StreamingResponse

from tidings.dashboard.auth import Viewer
from tidings.dashboard.paging import kept
from tidings.storage.db import Database
from tidings.storage.schema import (
    calls,
    campaign_dispatches,
    connections,
    deliveries,
    events,
    receipts,
)

__all__ = ["LIVE_PATH", "ChangeWatcher", "page_tag", "router"]

LIVE_PATH = "/live"
TICK_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
router = APIRouter()

_TROUBLE = ("failed", "dead", "quarantined")
_FINGERPRINT = select(
    select(func.max(events.c.id)).scalar_subquery(),
    select(func.max(receipts.c.id)).scalar_subquery(),
    select(func.count()).select_from(receipts).where(receipts.c.status.in_(_TROUBLE))
    .scalar_subquery(),
    select(func.max(calls.c.id)).scalar_subquery(),
    select(func.max(campaign_dispatches.c.updated_at)).scalar_subquery(),
    select(func.max(connections.c.session_updated_at)).scalar_subquery(),
    select(func.max(connections.c.last_event_at)).scalar_subquery(),
    select(func.count()).select_from(deliveries).where(deliveries.c.status == "dead")
    .scalar_subquery(),
)  # fmt: skip


def fingerprint(db: Database) -> tuple[Any, ...]:
    """What changes whenever something a page shows changes."""
    with db.read() as conn:
        return tuple(conn.execute(_FINGERPRINT).one())


def tag_of(found: tuple[Any, ...]) -> str:
    return hashlib.sha256(repr(found).encode()).hexdigest()[:16]


def page_tag(db: Database) -> str:
    """The fingerprint as a page carries it (`/live?seen=`): a stream that opens on another
    one says `change` at once, so nothing applied between the page's render and the stream's
    start is missed."""
    return tag_of(fingerprint(db))


class ChangeWatcher:
    """Tells every open stream when the store changed; runs only while one is open."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.version = 0
        self._changed = asyncio.Condition()
        self._listeners = 0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self, last: tuple[Any, ...] | None) -> None:
        while self._listeners:
            now: tuple[Any, ...] | None
            try:
                now = await asyncio.to_thread(fingerprint, self.db)
            except Exception:
                now = last
            if last is not None and now != last:
                async with self._changed:
                    self.version += 1
                    self._changed.notify_all()
            last = now
            await asyncio.sleep(TICK_SECONDS)
        self._task = None

    async def _newer_than(self, seen: int) -> bool:
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.version != seen), KEEPALIVE_SECONDS
                )
            except TimeoutError:
                return False
        return True

    async def changes(self, seen: int, baseline: tuple[Any, ...]) -> AsyncIterator[int]:
        """Each version after `seen` as it comes; a slow reader skips to the latest. A watcher
        started here starts from `baseline`, the fingerprint the caller last read, so nothing
        applied after that reading goes unsaid."""
        self._listeners += 1
        if self._task is None:
            self._task = asyncio.create_task(self._watch(baseline))
        try:
            while True:
                if not await self._newer_than(seen):
                    yield -1  # nothing new for a while: a keep-alive
                    continue
                seen = self.version
                yield seen
        finally:
            self._listeners -= 1


@router.get(LIVE_PATH)
async def live(request: Request, viewer: Viewer) -> Response:
    """`change` whenever what the pages show has changed (at most once a second)."""

    db: Database = request.app.state.db
    watcher = kept(request, "change_watcher", lambda: ChangeWatcher(db))
    seen = request.query_params.get("seen")

    async def stream() -> AsyncIterator[bytes]:
        yield b"retry: 3000\n\n"
        heard = watcher.version  # before the reading: a change after it is still heard
        now = await asyncio.to_thread(fingerprint, db)
        if seen is not None and tag_of(now) != seen:
            yield b"event: change\ndata: 0\n\n"
        async for version in watcher.changes(heard, now):
            if version < 0:
                yield b": keep-alive\n\n"
            else:
                yield f"event: change\ndata: {version}\n\n".encode()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
