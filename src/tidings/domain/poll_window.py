"""The verification poll's rules: which window to ask for, and what a fetched call changes.

Pure: plain values in, plain values out (docs/architecture.md, "The verification poll").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tidings.domain.call_changes import is_newer

__all__ = ["BUFFER", "PolledEmployee", "Verdict", "poll_window", "verdict"]

# Phones sync late and Callyzer's sync times are not exact: every window starts a day before
# the oldest last sync (the original requirement's safety buffer).
BUFFER = timedelta(days=1)


@dataclass(frozen=True)
class PolledEmployee:
    """An employee as the poll sees them: whom to ask about, and since when."""

    code: str
    number: str | None
    active: bool = True
    last_synced_at: datetime | None = None


def poll_window(
    employees: Sequence[PolledEmployee],
    now: datetime,
    lookback: timedelta,
    since: datetime | None = None,
) -> tuple[datetime, datetime]:
    """[start, end] of the sync times to ask Callyzer about: from the oldest last sync of the
    active employees minus `BUFFER` (an employee never polled looks back `lookback`) up to
    now; `since` (a backfill by hand) sets the start instead."""
    if since is not None:
        return min(since, now), now
    starts = [
        e.last_synced_at - BUFFER if e.last_synced_at is not None else now - lookback
        for e in employees
        if e.active
    ]
    return min([*starts, now]) if starts else now - lookback, now


class Verdict(StrEnum):
    INSERT = "inserted"
    UPDATE = "updated"
    SKIP = "skipped"


def verdict(fetched: datetime | None, stored: datetime | None, known: bool) -> Verdict:
    """What a fetched version of a call changes: a call not stored is inserted; one stored
    is updated only by a later `modified_at` (the apply path's own rule), else skipped."""
    if not known:
        return Verdict.INSERT
    return Verdict.UPDATE if is_newer(fetched, stored) else Verdict.SKIP
