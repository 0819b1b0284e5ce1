"""The poll's window and its verdict on a fetched call, with plain data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tidings.domain.poll_window import BUFFER, PolledEmployee, Verdict, poll_window, verdict

NOW = datetime(2026, 7, 28, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def test_the_window_starts_a_day_before_the_oldest_last_sync_of_the_active() -> None:
    staff = [
        PolledEmployee("a", "+1", last_synced_at=NOW - timedelta(hours=1)),
        PolledEmployee("b", "+2", last_synced_at=NOW - timedelta(hours=5)),
        PolledEmployee("gone", "+3", active=False, last_synced_at=NOW - timedelta(days=90)),
    ]
    assert poll_window(staff, NOW, WEEK) == (NOW - timedelta(hours=5) - BUFFER, NOW)


def test_an_employee_never_polled_looks_back_the_lookback() -> None:
    staff = [
        PolledEmployee("a", "+1", last_synced_at=NOW - timedelta(hours=1)),
        PolledEmployee("new", "+2"),
    ]
    assert poll_window(staff, NOW, WEEK) == (NOW - WEEK, NOW)
    assert poll_window([], NOW, WEEK) == (NOW - WEEK, NOW)


def test_since_replaces_the_start_but_never_passes_now() -> None:
    staff = [PolledEmployee("a", "+1", last_synced_at=NOW - timedelta(hours=1))]
    since = NOW - timedelta(days=30)
    assert poll_window(staff, NOW, WEEK, since) == (since, NOW)
    assert poll_window(staff, NOW, WEEK, NOW + timedelta(days=1)) == (NOW, NOW)


def test_a_last_sync_in_the_future_does_not_start_the_window_after_now() -> None:
    staff = [PolledEmployee("a", "+1", last_synced_at=NOW + timedelta(days=3))]
    assert poll_window(staff, NOW, WEEK) == (NOW, NOW)


def test_the_verdict_on_a_fetched_call() -> None:
    earlier, later = NOW - timedelta(minutes=5), NOW
    assert verdict(later, None, known=False) is Verdict.INSERT
    assert verdict(None, None, known=False) is Verdict.INSERT
    assert verdict(later, earlier, known=True) is Verdict.UPDATE
    assert verdict(later, None, known=True) is Verdict.UPDATE
    assert verdict(earlier, later, known=True) is Verdict.SKIP
    assert verdict(later, later, known=True) is Verdict.SKIP
    assert verdict(None, later, known=True) is Verdict.SKIP
