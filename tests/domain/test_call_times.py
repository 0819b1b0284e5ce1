"""Local call times to UTC: the zone rules of `domain.call_times`, with plain values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tidings.domain.call_times import Zones, call_start, read_stamp, zone_named, zones

KOLKATA = zones("Asia/Kolkata")
NOTHING = Zones()


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stamp", "where", "expected"),
    [
        ("2026-07-28 10:44:41 IST", KOLKATA, utc(2026, 7, 28, 5, 14, 41)),
        ("2026-07-28 10:44:41", KOLKATA, utc(2026, 7, 28, 5, 14, 41)),
        ("2026-07-28 10:44:41 UTC", KOLKATA, utc(2026, 7, 28, 10, 44, 41)),
        ("2026-07-28 10:44:41 GMT", NOTHING, utc(2026, 7, 28, 10, 44, 41)),
        ("2026-07-28T10:44:41Z", NOTHING, utc(2026, 7, 28, 10, 44, 41)),
        ("2026-07-28T10:44:41.250+05:30", NOTHING, utc(2026, 7, 28, 5, 14, 41, 250000)),
        ("2026-07-28 10:44:41 -0300", NOTHING, utc(2026, 7, 28, 13, 44, 41)),
        ("2026-01-15 10:00:00 CET", NOTHING, utc(2026, 1, 15, 9)),  # one offset everywhere
        ("2026-07-15 10:00:00 CEST", NOTHING, utc(2026, 7, 15, 8)),
        ("2026-07-15 10:00:00 CEST", KOLKATA, utc(2026, 7, 15, 8)),  # the stamp's zone wins
        ("28-07-2026 10:44:41", KOLKATA, utc(2026, 7, 28, 5, 14, 41)),  # day first
        ("28/07/2026 10:44 PM", KOLKATA, utc(2026, 7, 28, 17, 14)),
        ("15 Sep 2021 09:22:43", KOLKATA, utc(2021, 9, 15, 3, 52, 43)),
        (1785217481, NOTHING, utc(2026, 7, 28, 5, 44, 41)),
        ("1785217481000", NOTHING, utc(2026, 7, 28, 5, 44, 41)),
    ],
)
def test_stamps(stamp: object, where: Zones, expected: datetime) -> None:
    found, note = read_stamp(stamp, where)
    assert (found, note) == (expected, None)


def test_an_ambiguous_abbreviation_without_the_account_zone_is_read_in_the_fallback() -> None:
    found, note = read_stamp("2026-07-28 10:44:41 IST", zones(None, "Europe/Dublin"))
    assert found == utc(2026, 7, 28, 9, 44, 41)
    assert note is not None and "'IST' is ambiguous" in note and "Europe/Dublin" in note


def test_an_abbreviation_the_account_zone_does_not_use_is_read_in_it_with_a_note() -> None:
    found, note = read_stamp("2026-07-28 10:44:41 IST", zones("Europe/Warsaw"))
    assert found == utc(2026, 7, 28, 8, 44, 41)
    assert note is not None and "ambiguous" in note and "timezone option" not in note


def test_an_unknown_abbreviation_says_so() -> None:
    found, note = read_stamp("2026-07-28 10:44:41 QQQ", KOLKATA)
    assert found == utc(2026, 7, 28, 5, 14, 41)
    assert note is not None and "no zone tidings knows" in note


def test_the_repeated_hour_of_a_dst_change_is_told_apart_by_its_abbreviation() -> None:
    warsaw = zones("Europe/Warsaw")
    summer, _ = read_stamp("2026-10-25 02:30:00 CEST", warsaw)
    winter, _ = read_stamp("2026-10-25 02:30:00 CET", warsaw)
    assert (summer, winter) == (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30))


@pytest.mark.parametrize("stamp", ["", None])
def test_no_stamp_is_no_time_and_no_note(stamp: object) -> None:
    assert read_stamp(stamp, KOLKATA) == (None, None)


@pytest.mark.parametrize(
    "stamp", ["soon", "2026-13-01 10:00:00", "2026-02-30", "31 Foo 2026", "¹", "1e400"]
)
def test_an_unreadable_stamp_is_a_note(stamp: str) -> None:
    found, note = read_stamp(stamp, KOLKATA)
    assert found is None and note


def test_call_start_joins_date_and_time_in_the_account_zone() -> None:
    assert call_start("2026-07-28", "10:44:41", KOLKATA) == (utc(2026, 7, 28, 5, 14, 41), None)
    assert call_start("2026-07-28 10:44:41", None, KOLKATA) == (utc(2026, 7, 28, 5, 14, 41), None)
    assert call_start("2026-07-28", "10:44:41", NOTHING) == (utc(2026, 7, 28, 10, 44, 41), None)
    assert call_start(None, "10:00", KOLKATA) == (None, "the call has no call_date")
    found, note = call_start("2026-07-28", "25:00", KOLKATA)
    assert found is None and note


def test_zone_names() -> None:
    assert zone_named("Asia/Kolkata") is not None
    assert zone_named("Mars/Olympus") is None
    assert zone_named("../etc/passwd") is None
    assert zone_named("") is None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.integers(), st.floats(), st.none(), st.booleans()))
@example("0\x1f")  # str.strip takes the unit separator, float() does not: found by this test
def test_any_value_is_a_time_or_a_note_never_an_error(value: object) -> None:
    found, note = read_stamp(value, KOLKATA)
    assert found is None or found.tzinfo is UTC
    assert found is not None or note is not None or value is None or str(value).strip() == ""


def test_unix_seconds_with_a_control_character_around_them_are_read() -> None:
    found, note = read_stamp("1700000000\x1f", KOLKATA)
    assert found == datetime.fromtimestamp(1700000000, tz=UTC) and note is None
