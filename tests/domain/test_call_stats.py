"""Call statistics from plain facts, against figures computed by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from tidings.domain.call_stats import CallFact, stats


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 7, day, hour, tzinfo=UTC)


def test_totals_and_days_in_the_zone() -> None:
    facts = [
        CallFact("outgoing", 60, at(28, 4)),
        CallFact("outgoing", 0, at(28, 5)),
        CallFact("incoming", 120, at(28, 20)),  # 29 July 01:30 in Kolkata
        CallFact("missed", 0, at(29, 3)),
        CallFact("voicemail", 30, None),  # an unknown type, no start time
    ]
    total, days = stats(facts, ZoneInfo("Asia/Kolkata"))
    assert (total.calls, total.total_duration_seconds, total.answered) == (5, 210, 3)
    assert total.by_type == {"incoming": 1, "outgoing": 2, "missed": 1, "rejected": 0, "unknown": 1}
    assert (total.average_duration_seconds, total.answered_share) == (70.0, 0.6)
    assert [(d.day, d.calls, d.total_duration_seconds) for d in days] == [
        (date(2026, 7, 28), 2, 60),
        (date(2026, 7, 29), 2, 120),
    ]
    _, utc_days = stats(facts, UTC)
    assert [(d.day, d.calls) for d in utc_days] == [(date(2026, 7, 28), 3), (date(2026, 7, 29), 1)]


def test_no_calls_is_zeros_not_a_division_by_zero() -> None:
    total, days = stats([], UTC)
    assert (total.calls, total.average_duration_seconds, total.answered_share, days) == (
        0,
        0.0,
        0.0,
        [],
    )
