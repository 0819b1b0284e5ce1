"""Connection health rules with plain data: the score's window and floor, the run of errors
a delivery resets, and where "today" starts in a zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.domain.health import (
    MIN_OUTCOMES,
    WINDOW,
    DayCounts,
    Outcome,
    assess,
    consecutive_errors,
    day_bounds,
    has_health,
    outcome_of,
    score,
)

D, F = Outcome.DELIVERED, Outcome.FAILED
START = datetime(2026, 6, 30, 3, tzinfo=UTC)


def test_read_counts_as_delivered_and_only_final_states_are_outcomes() -> None:
    assert [outcome_of(s) for s in ("delivered", "read", "failed")] == [D, D, F]
    assert outcome_of("sent") is None and outcome_of("queued") is None


def test_fewer_than_twenty_outcomes_score_one() -> None:
    assert score([F] * (MIN_OUTCOMES - 1)) == 1.0
    assert score([]) == 1.0
    assert score([F] * MIN_OUTCOMES) == 0.0
    assert score([D] * 15 + [F] * 5) == 0.75


def test_only_the_newest_two_hundred_outcomes_count() -> None:
    newest_good = [D] * WINDOW + [F] * 500
    assert score(newest_good) == 1.0
    assert score([D] * 150 + [F] * 50 + [D] * 1000) == 0.75


def test_a_delivery_resets_the_consecutive_errors() -> None:
    assert consecutive_errors([F, F, D, F, F, F]) == 2
    assert consecutive_errors([D, F, F]) == 0
    assert consecutive_errors([F, F, F]) == 3
    assert consecutive_errors([]) == 0


def test_healthy_means_the_score_reaches_the_threshold() -> None:
    outcomes = [D] * 16 + [F] * 4  # 0.8
    assert assess(outcomes, DayCounts(), START, 0.8).healthy
    assert not assess(outcomes, DayCounts(), START, 0.81).healthy
    few = assess([F] * 5, DayCounts(), START, 0.8)
    assert (few.score, few.outcomes, few.healthy, few.consecutive_errors) == (1.0, 5, True, 5)


def test_assess_carries_today_and_counts_the_window_it_scored() -> None:
    found = assess([F, D] + [D] * 300, DayCounts(7, 3, 2), START, 0.8)
    assert (found.delivered_today, found.read_today, found.failed_today) == (7, 3, 2)
    assert (found.outcomes, found.consecutive_errors, found.today_starts_at) == (WINDOW, 1, START)
    assert found.score == (WINDOW - 1) / WINDOW


def test_a_run_of_errors_longer_than_the_window_goes_on_counting() -> None:
    assert assess([F] * WINDOW, DayCounts(), START, 0.8, errors_before=55).consecutive_errors == 255
    # A delivery inside the window ends the run there, whatever is older.
    ended = assess([F] * (WINDOW - 1) + [D], DayCounts(), START, 0.8, errors_before=55)
    assert ended.consecutive_errors == WINDOW - 1


@given(st.lists(st.sampled_from([D, F]), max_size=600), st.lists(st.sampled_from([D, F])))
def test_the_score_ignores_what_is_older_than_the_window(
    newest: list[Outcome], older: list[Outcome]
) -> None:
    found = score(newest + older)
    assert 0.0 <= found <= 1.0
    if len(newest) >= WINDOW:
        assert found == score(newest[:WINDOW])
    errors = consecutive_errors(newest + older)
    assert all(o is F for o in (newest + older)[:errors])
    assert errors == len(newest + older) or (newest + older)[errors] is D


def test_today_starts_at_midnight_in_the_zone() -> None:
    # 29 July 01:30 in Kolkata (UTC+5:30) is still 28 July in UTC.
    now = datetime(2026, 7, 28, 20, 0, tzinfo=UTC)
    assert day_bounds(now, "Asia/Kolkata") == (
        datetime(2026, 7, 28, 18, 30, tzinfo=UTC),
        datetime(2026, 7, 29, 18, 30, tzinfo=UTC),
    )
    assert day_bounds(now, "UTC") == (
        datetime(2026, 7, 28, tzinfo=UTC),
        datetime(2026, 7, 29, tzinfo=UTC),
    )
    # 02:00 UTC is 23:00 the day before in São Paulo (UTC-3).
    late = datetime(2026, 6, 30, 2, 0, tzinfo=UTC)
    assert day_bounds(late, "America/Sao_Paulo")[0] == datetime(2026, 6, 29, 3, tzinfo=UTC)


def test_days_that_change_the_clock_are_shorter_or_longer() -> None:
    # Berlin springs forward on 29 March 2026: that day lasts 23 hours.
    start, end = day_bounds(datetime(2026, 3, 29, 12, tzinfo=UTC), "Europe/Berlin")
    assert start == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert end - start == timedelta(hours=23)
    # São Paulo's clocks jumped from 00:00 to 01:00 on 4 November 2018: no midnight that day,
    # so it started at 01:00 local time (UTC-2 from then on).
    start, end = day_bounds(datetime(2018, 11, 4, 12, tzinfo=UTC), "America/Sao_Paulo")
    assert start == datetime(2018, 11, 4, 3, tzinfo=UTC)
    assert end == datetime(2018, 11, 5, 2, tzinfo=UTC)


def test_an_unknown_zone_counts_as_utc_and_a_naive_now_is_refused() -> None:
    now = datetime(2026, 7, 28, 20, 0, tzinfo=UTC)
    assert day_bounds(now, "Mars/Olympus") == day_bounds(now, "UTC")
    with pytest.raises(ValueError, match="naive"):
        day_bounds(datetime(2026, 7, 28, 20, 0), "UTC")


def test_every_connection_but_a_call_log_has_health() -> None:
    assert has_health("whatsapp") and has_health("sms") and has_health("email")
    assert not has_health("call")
