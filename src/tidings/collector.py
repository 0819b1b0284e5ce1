"""Python's cyclic garbage collector, set for a long-running service once it has started.

What exists once a process has started (modules, compiled statements, templates, the app)
lives as long as the process: frozen, it is left out of the collector's full passes, which
otherwise stalled every request for ~90 ms a few times a minute under load. The collector's
youngest pass ran every 700 new objects, hundreds of times per worker batch (about 3% of the
worker's time); every 10,000 it runs a few times, and cycles are still collected.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle"]

YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Call once start-up is done: freeze what exists and space out the youngest passes."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
