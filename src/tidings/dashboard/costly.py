"""Figures kept for a while, in proportion to what they cost to work out.

A campaign's chart counts every message of its campaign (about 0.2 s for 100,000 on SQLite
here), failures by reason count every failed one, and a live page asks again each second
webhooks arrive. Each figure is kept for `COST_FACTOR` times what it took, so a small
campaign's follows every change while a large one's takes at most about one part in
`COST_FACTOR` of a core, however many pages show it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import Connection

from tidings.storage.db import Database

__all__ = ["Costly"]

COST_FACTOR = 20
KEPT = 512  # figures kept; the least recently worked out goes first
T = TypeVar("T")


class Costly:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._kept: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._turns: dict[Hashable, threading.Lock] = {}  # one worker-out at a time per key

    def get(self, key: Hashable, work_out: Callable[[Connection], T]) -> T:
        """`work_out(conn)`, or what it gave last time for `key` while that is fresh enough.
        Pages that ask together while it is stale wait for one of them to work it out."""
        with self._lock:
            turn = self._turns.setdefault(key, threading.Lock())
        with turn:
            now = time.monotonic()
            with self._lock:
                kept = self._kept.get(key)
            if kept is not None and now < kept[0]:
                found: T = kept[1]
                return found
            with self.db.read() as conn:
                value = work_out(conn)
            done = time.monotonic()
            with self._lock:
                self._kept[key] = (done + (done - now) * COST_FACTOR, value)
                self._kept.move_to_end(key)
                while len(self._kept) > KEPT:
                    gone, _ = self._kept.popitem(last=False)
                    self._turns.pop(gone, None)
        return value
