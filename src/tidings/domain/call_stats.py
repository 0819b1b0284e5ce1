"""Call statistics from plain call facts: counts by type, durations, the answered share, per
day. Pure, so the figures are checked against hand-computed numbers with plain data.

- `answered`: calls that connected, i.e. lasted more than 0 seconds (an incoming call taken,
  an outgoing call the client picked up); `answered_share` = answered / calls.
- `average_duration_seconds`: total duration / answered calls (a missed call's 0 seconds
  would only drag it down); 0 when none was answered.
- Days are calendar days in the deployment's zone (`TIDINGS_TIMEZONE`); a call without a
  start time counts in the totals but on no day.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

from tidings.domain.calls import CallType

__all__ = ["CallFact", "DayStats", "Stats", "stats"]


@dataclass(frozen=True)
class CallFact:
    type: str
    duration_seconds: int
    started_at: datetime | None


@dataclass
class Stats:
    calls: int = 0
    by_type: dict[str, int] = field(default_factory=lambda: {t.value: 0 for t in CallType})
    total_duration_seconds: int = 0
    answered: int = 0

    @property
    def average_duration_seconds(self) -> float:
        return round(self.total_duration_seconds / self.answered, 2) if self.answered else 0.0

    @property
    def answered_share(self) -> float:
        return round(self.answered / self.calls, 4) if self.calls else 0.0

    def add(self, fact: CallFact) -> None:
        self.calls += 1
        kind = fact.type if fact.type in self.by_type else CallType.UNKNOWN.value
        self.by_type[kind] += 1
        self.total_duration_seconds += max(fact.duration_seconds, 0)
        self.answered += fact.duration_seconds > 0


@dataclass
class DayStats(Stats):
    day: date | None = None


def stats(facts: Iterable[CallFact], zone: tzinfo) -> tuple[Stats, list[DayStats]]:
    """The totals of these calls, and the same figures per day in `zone` (oldest day first,
    only days with calls)."""
    total = Stats()
    days: dict[date, DayStats] = {}
    for fact in facts:
        total.add(fact)
        if fact.started_at is not None:
            day = fact.started_at.astimezone(zone).date()
            days.setdefault(day, DayStats(day=day)).add(fact)
    return total, [days[day] for day in sorted(days)]
