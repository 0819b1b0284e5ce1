"""Backfills: fetching from a provider's API what its webhooks should have brought. Today the
Callyzer verification poll (`callyzer_poll`); other providers' backfills come later."""

from __future__ import annotations

__all__ = ["PROVIDERS_WITH_BACKFILL"]

# Providers whose connections have a backfill run by `tidings backfill` and the schedule.
PROVIDERS_WITH_BACKFILL = frozenset({"callyzer"})
