"""The message lifecycle (docs/architecture.md, "Lifecycle"), with plain data only."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.domain.counters import contribution
from tidings.domain.events import EventKind, NormalizedEvent, Status
from tidings.domain.lifecycle import Failure, MessageState, advance, register

T = [datetime(2024, 5, 1, 12, tzinfo=UTC) + timedelta(minutes=m) for m in range(4)]


def ev(kind: str, minute: int, **fields: object) -> tuple[NormalizedEvent, datetime]:
    """One event of message `m1` and the time it happened at (T[minute])."""
    return NormalizedEvent(provider_message_id="m1", kind=EventKind(kind), **fields), T[minute]


def fold(steps, state: MessageState | None = None) -> MessageState:
    state = MessageState() if state is None else state
    for event, at in steps:
        state = advance(state, event, at)
    return state


# (steps, expected attributes of the final state)
CASES = {
    "forward sent-delivered-read": (
        [ev("sent", 0), ev("delivered", 1), ev("read", 2)],
        {"status": Status.READ, "sent_at": T[0], "delivered_at": T[1], "read_at": T[2]},
    ),
    "backward arrival keeps each time": (
        [ev("read", 2), ev("delivered", 1), ev("sent", 0)],
        {"status": Status.READ, "sent_at": T[0], "delivered_at": T[1], "read_at": T[2]},
    ),
    "queued then sent": (
        [ev("queued", 0), ev("sent", 1)],
        {"status": Status.SENT, "queued_at": T[0], "sent_at": T[1], "delivered_at": None},
    ),
    "delivered does not go back to sent": (
        [ev("delivered", 1), ev("sent", 2)],
        {"status": Status.DELIVERED, "sent_at": T[1], "delivered_at": T[1]},
    ),
    "read implies delivered and sent": (
        [ev("read", 2)],
        {"status": Status.READ, "sent_at": T[2], "delivered_at": T[2], "read_at": T[2]},
    ),
    "delivered implies sent": (
        [ev("delivered", 1)],
        {"status": Status.DELIVERED, "sent_at": T[1], "delivered_at": T[1], "read_at": None},
    ),
    "late delivered with earlier time moves delivered_at back": (
        [ev("read", 2), ev("delivered", 1)],
        {"status": Status.READ, "sent_at": T[1], "delivered_at": T[1], "read_at": T[2]},
    ),
    "late delivered with later time changes nothing": (
        [ev("read", 1), ev("delivered", 3)],
        {"status": Status.READ, "delivered_at": T[1], "read_at": T[1]},
    ),
    "failed after read is recorded only": (
        [ev("read", 1), ev("failed", 2, failure_code="E1", after_send=True)],
        {
            "status": Status.READ,
            "read_at": T[1],
            "failed_at": T[2],
            "failure": Failure(T[2], "E1"),
        },
    ),
    "delivered after failed wins and keeps the failure": (
        [ev("failed", 0, failure_code="E1", failure_reason="boom"), ev("delivered", 1)],
        {
            "status": Status.DELIVERED,
            "delivered_at": T[1],
            "failed_at": T[0],
            "failure": Failure(T[0], "E1", "boom"),
        },
    ),
    "read after failed wins": (
        [ev("failed", 0, failure_code="E1"), ev("read", 1)],
        {"status": Status.READ, "read_at": T[1], "failed_at": T[0]},
    ),
    "sent after failed stays failed": (
        [ev("failed", 0), ev("sent", 1)],
        {"status": Status.FAILED, "sent_at": T[1], "failed_at": T[0]},
    ),
    "failed after sent is failed": (
        [ev("sent", 0), ev("failed", 1, after_send=True)],
        {"status": Status.FAILED, "sent_at": T[0], "failed_at": T[1]},
    ),
    "failure before send": (
        [ev("failed", 1, after_send=False)],
        {"status": Status.FAILED, "failed_after_send": False, "sent_at": None},
    ),
    "failure after send": (
        [ev("failed", 1, after_send=True)],
        {"status": Status.FAILED, "failed_after_send": True},
    ),
    "any failure after send sets the flag": (
        [ev("failed", 1, after_send=True), ev("failed", 2, after_send=False)],
        {"failed_after_send": True, "failed_at": T[1]},
    ),
    "clicked implies opened, read, delivered, sent": (
        [ev("clicked", 2)],
        {
            "status": Status.READ,
            "clicked_at": T[2],
            "opened_at": T[2],
            "read_at": T[2],
            "delivered_at": T[2],
            "sent_at": T[2],
        },
    ),
    "opened implies read but not clicked": (
        [ev("opened", 2)],
        {"status": Status.READ, "opened_at": T[2], "read_at": T[2], "clicked_at": None},
    ),
    "later click keeps the earlier open": (
        [ev("opened", 1), ev("clicked", 3)],
        {"opened_at": T[1], "clicked_at": T[3], "read_at": T[1]},
    ),
    "played counts as read": (
        [ev("delivered", 1), ev("played", 2)],
        {"status": Status.READ, "played_at": T[2], "read_at": T[2], "opened_at": None},
    ),
    "unsubscribed does not move a new message": (
        [ev("unsubscribed", 1)],
        {"status": Status.QUEUED, "unsubscribed_at": T[1], "sent_at": None},
    ),
    "unsubscribed does not move a delivered message": (
        [ev("delivered", 1), ev("unsubscribed", 2)],
        {"status": Status.DELIVERED, "unsubscribed_at": T[2], "read_at": None},
    ),
    "complained does not move a sent message": (
        [ev("sent", 0), ev("complained", 2)],
        {"status": Status.SENT, "complained_at": T[2], "delivered_at": None},
    ),
}


@pytest.mark.parametrize(("steps", "expected"), CASES.values(), ids=CASES.keys())
def test_fold(steps, expected):
    state = fold(steps)
    assert {name: getattr(state, name) for name in expected} == expected


@pytest.mark.parametrize("first_is_early", [True, False], ids=["early-first", "early-last"])
def test_earliest_failure_is_kept_whatever_the_order(first_is_early):
    early = ev("failed", 1, failure_code="EARLY", failure_reason="first")
    late = ev("failed", 3, failure_code="LATE", failure_reason="second", failure_permanent=True)
    state = fold([early, late] if first_is_early else [late, early])
    assert state.failed_at == T[1]
    assert state.failure == Failure(T[1], "EARLY", "first", None)


BASES = {
    "new": [],
    "sent": [ev("sent", 0)],
    "delivered": [ev("delivered", 1)],
    "failed": [ev("failed", 1, failure_code="E1")],
}


@pytest.mark.parametrize("kind", ["deleted", "mismatch", "received", "unknown"])
@pytest.mark.parametrize("base", BASES.values(), ids=BASES.keys())
def test_non_lifecycle_kinds_change_nothing(base, kind):
    state = fold(base)
    event, _ = ev(kind, 0, failure_code="X", after_send=True)
    assert advance(state, event, T[3]) == state


def test_register_puts_a_new_message_in_sent():
    state = register(MessageState(), T[2])
    assert (state.status, state.sent_at, state.delivered_at) == (Status.SENT, T[2], None)


@pytest.mark.parametrize(
    ("registered_at", "sent_at"),
    [(T[3], T[1]), (T[0], T[0])],
    ids=["later-registration", "earlier-registration"],
)
def test_register_after_delivered_keeps_delivered(registered_at, sent_at):
    state = register(fold([ev("delivered", 1)]), registered_at)
    assert state.status is Status.DELIVERED
    assert (state.sent_at, state.delivered_at) == (sent_at, T[1])


SEQUENCES = {
    "each forward move": ([ev("sent", 0), ev("delivered", 1), ev("read", 2)], 3),
    "read first then older evidence": ([ev("read", 2), ev("delivered", 1), ev("sent", 0)], 3),
    "earlier sent time only": ([ev("sent", 2), ev("sent", 0)], 2),
    "later sent time changes nothing": ([ev("sent", 0), ev("sent", 2)], 1),
    "queued on a new message": ([ev("queued", 0)], 1),
    "engagement without a move": ([ev("unsubscribed", 0), ev("complained", 1)], 2),
    "failed then delivered": ([ev("failed", 0), ev("delivered", 1)], 2),
    "delivered then failed": ([ev("delivered", 0), ev("failed", 1)], 2),
    "sent, failed, sent": ([ev("sent", 0), ev("failed", 1), ev("sent", 2)], 2),
    "unknown changes nothing": ([ev("sent", 0), ev("unknown", 1)], 1),
}


@pytest.mark.parametrize(("steps", "sequence"), SEQUENCES.values(), ids=SEQUENCES.keys())
def test_sequence_counts_state_changes(steps, sequence):
    assert fold(steps).sequence == sequence


@pytest.mark.parametrize("kind", list(EventKind))
@pytest.mark.parametrize("base", BASES.values(), ids=BASES.keys())
def test_duplicate_event_is_a_no_op(base, kind):
    step = ev(kind, 2, failure_code="E2", failure_reason="dup", after_send=True)
    once = fold([*base, step])
    assert fold([step], once) == once


# --- properties -----------------------------------------------------------------------------

PROP_TIMES = T[:3]  # few times, so ties happen

step_strategy = st.builds(
    lambda kind, at, code, reason, permanent, after_send: (
        NormalizedEvent(
            provider_message_id="m1",
            kind=kind,
            failure_code=code,
            failure_reason=reason,
            failure_permanent=permanent,
            after_send=after_send,
        ),
        at,
    ),
    st.sampled_from(list(EventKind)),
    st.sampled_from(PROP_TIMES),
    st.sampled_from([None, "E1", "E2"]),
    st.sampled_from([None, "", "expired", "blocked"]),
    st.sampled_from([None, False, True]),
    st.booleans(),
)
steps_strategy = st.lists(step_strategy, min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(steps=steps_strategy, data=st.data())
def test_order_and_duplicates_do_not_matter(steps, data):
    extras = data.draw(st.lists(st.sampled_from(steps), max_size=6), label="duplicates")
    shuffled = data.draw(st.permutations(steps + extras), label="arrival order")
    expected, actual = fold(steps), fold(shuffled)
    assert replace(actual, sequence=0) == replace(expected, sequence=0)
    assert actual.status is expected.status
    assert contribution(actual) == contribution(expected)


ALLOWED_NEXT = {
    Status.QUEUED: set(Status),
    Status.SENT: {Status.SENT, Status.DELIVERED, Status.READ, Status.FAILED},
    Status.FAILED: {Status.FAILED, Status.DELIVERED, Status.READ},
    Status.DELIVERED: {Status.DELIVERED, Status.READ},
    Status.READ: {Status.READ},
}


def _rank(state: MessageState) -> int:
    return -1 if state.rank is None else state.rank


@settings(max_examples=300, deadline=None)
@given(steps=steps_strategy)
def test_status_never_moves_back(steps):
    state = MessageState()
    for event, at in steps:
        new = advance(state, event, at)
        assert new.status in ALLOWED_NEXT[state.status], (state.status, event.kind, new.status)
        assert _rank(new) >= _rank(state)
        moved = replace(new, sequence=0) != replace(state, sequence=0)
        assert new.sequence == state.sequence + moved
        state = new
