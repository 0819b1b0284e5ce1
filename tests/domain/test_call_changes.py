"""The call kind's rules with plain data: one record per call, the latest `modified_at` wins
whatever the order versions arrive in, older ones are ignored with a note, and a waiting call
is matched to the oldest lead with its client's number."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.domain.call_changes import (
    CallItem,
    StoredVersion,
    Verdict,
    is_newer,
    lead_for,
    plan_calls,
)
from tidings.domain.calls import CallRecord, CallType

NOW = datetime(2026, 7, 28, 12, tzinfo=UTC)
T0 = datetime(2026, 7, 28, 5, tzinfo=UTC)
KEY = (1, "c1")


def record(minutes: int | None, number: str | None = "+919123456780") -> CallRecord:
    modified = None if minutes is None else T0 + timedelta(minutes=minutes)
    return CallRecord(
        "c1",
        CallType.OUTGOING,
        "Outgoing",
        modified_at=modified,
        client_number=number,
        duration_seconds=minutes or 0,
    )


def item(minutes: int | None, receipt: int = 1, **kwargs: str | None) -> CallItem:
    return CallItem(KEY, record(minutes, **kwargs), receipt)


def test_a_new_call_is_created_and_matched_to_the_oldest_lead_with_its_number() -> None:
    plan = plan_calls([item(1)], {}, {"+919123456780": [7, 3]}, NOW)
    [change] = plan.changes
    assert change.verdict is Verdict.CREATED
    assert change.match is not None and (change.match.lead_id, change.match.attempts) == (3, 1)
    assert change.match.at == NOW


def test_a_call_whose_number_no_lead_has_waits_with_its_first_attempt_counted() -> None:
    [change] = plan_calls([item(1)], {}, {}, NOW).changes
    assert change.match is not None and (change.match.lead_id, change.match.attempts) == (None, 1)


def test_a_later_version_updates_and_a_matched_call_keeps_its_lead() -> None:
    stored = {KEY: StoredVersion(T0 + timedelta(minutes=1), lead_id=3, match_attempts=1)}
    [change] = plan_calls([item(2)], stored, {"+919123456780": [1]}, NOW).changes
    assert change.verdict is Verdict.UPDATED and change.match is None


def test_a_later_version_of_a_waiting_call_tries_matching_again() -> None:
    stored = {KEY: StoredVersion(T0 + timedelta(minutes=1), lead_id=None, match_attempts=2)}
    [change] = plan_calls([item(2)], stored, {"+919123456780": [4]}, NOW).changes
    assert change.match is not None and (change.match.lead_id, change.match.attempts) == (4, 3)


def test_the_same_version_again_changes_nothing() -> None:
    stored = {KEY: StoredVersion(T0 + timedelta(minutes=1), None, 1)}
    plan = plan_calls([item(1)], stored, {}, NOW)
    assert (plan.changes, plan.same, plan.older, plan.notes) == ([], 1, 0, {})


def test_an_older_version_is_ignored_with_a_note_on_its_receipt() -> None:
    stored = {KEY: StoredVersion(T0 + timedelta(minutes=5), None, 1)}
    plan = plan_calls([item(1, receipt=9)], stored, {}, NOW)
    assert (plan.changes, plan.same, plan.older) == ([], 0, 1)
    [note] = plan.notes[9]
    assert note.startswith("call c1: ignored, modified at 2026-07-28T05:01:00+00:00, older")


def test_a_version_without_modified_at_only_creates() -> None:
    assert [c.verdict for c in plan_calls([item(None)], {}, {}, NOW).changes] == [Verdict.CREATED]
    stored = {KEY: StoredVersion(None, None, 1)}
    assert plan_calls([item(None)], stored, {}, NOW).changes == []
    assert is_newer(T0, None) and not is_newer(None, T0) and not is_newer(None, None)


def test_record_notes_go_to_their_receipt() -> None:
    noted = CallItem(KEY, replace(record(1), notes=("call c1: no call_type",)), 4)
    assert plan_calls([noted], {}, {}, NOW).notes == {4: ["call c1: no call_type"]}


def test_lead_for_takes_the_oldest() -> None:
    assert lead_for([5, 2, 9]) == 2
    assert lead_for([]) is None


@settings(max_examples=200, deadline=None)
@given(
    versions=st.lists(st.one_of(st.none(), st.integers(0, 5)), min_size=1, max_size=6),
    stored=st.one_of(st.none(), st.integers(0, 5)),
    order=st.randoms(use_true_random=False),
)
def test_any_order_of_versions_leaves_the_latest(
    versions: list[int | None], stored: int | None, order: object
) -> None:
    """Whatever order the versions of one call arrive in, in one batch or several, what is
    written last is the latest version (the stored one when it is the latest)."""
    shuffled = list(versions)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    current = None if stored is None else StoredVersion(T0 + timedelta(minutes=stored), None, 1)
    # One at a time, as separate batches would apply them.
    for minutes in shuffled:
        plan = plan_calls([item(minutes)], {KEY: current} if current else {}, {}, NOW)
        for change in plan.changes:
            current = StoredVersion(change.item.record.modified_at, None, 1)
    in_one_batch = plan_calls([item(m) for m in shuffled], {}, {}, NOW).changes
    latest = max((m for m in versions if m is not None), default=None)
    candidates = [m for m in (latest, stored) if m is not None]
    expected = T0 + timedelta(minutes=max(candidates)) if candidates else None
    assert current is not None and current.modified_at == expected
    assert len(in_one_batch) == 1
    if latest is not None:
        assert in_one_batch[0].item.record.modified_at == T0 + timedelta(minutes=latest)
