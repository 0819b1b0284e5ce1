"""Campaign charts kept for a while, in proportion to what they cost to draw.

A chart counts every message of its campaign (about 0.2 s for 100,000 on SQLite here), and a
live page asks again each second webhooks arrive. Each chart is kept for `COST_FACTOR` times
what it took to compute, so a small campaign's chart follows every change while drawing a
large one takes at most about one part in `COST_FACTOR` of a core, however many pages show it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from tidings.dashboard.charts import RateChart, rate_chart
from tidings.storage import message_summaries
from tidings.storage.db import Database

__all__ = ["ChartCache"]

COST_FACTOR = 20
KEPT = 256  # campaigns whose charts are kept; the least recently drawn goes first


class ChartCache:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._kept: OrderedDict[int, tuple[float, RateChart | None]] = OrderedDict()
        self._lock = threading.Lock()

    def chart(self, campaign_id: int) -> RateChart | None:
        now = time.monotonic()
        with self._lock:
            kept = self._kept.get(campaign_id)
        if kept is not None and now < kept[0]:
            return kept[1]
        with self.db.read() as conn:
            by_minute = message_summaries.outcomes_by_minute(conn, campaign_id)
        drawn = rate_chart(by_minute)
        done = time.monotonic()
        with self._lock:
            self._kept[campaign_id] = (done + (done - now) * COST_FACTOR, drawn)
            self._kept.move_to_end(campaign_id)
            while len(self._kept) > KEPT:
                self._kept.popitem(last=False)
        return drawn
