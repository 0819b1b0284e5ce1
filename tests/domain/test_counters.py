"""Campaign counters as a function of message states (docs/architecture.md, "Lifecycle")."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.domain.counters import COUNTERS, contribution, delta, rates
from tidings.domain.events import EventKind, NormalizedEvent
from tidings.domain.lifecycle import MessageState, advance

T = [datetime(2024, 5, 1, 12, tzinfo=UTC) + timedelta(minutes=m) for m in range(4)]


def ev(kind: str, minute: int, **fields: object) -> tuple[NormalizedEvent, datetime]:
    return NormalizedEvent(provider_message_id="m1", kind=EventKind(kind), **fields), T[minute]


def fold(*steps: tuple[NormalizedEvent, datetime]) -> MessageState:
    state = MessageState()
    for event, at in steps:
        state = advance(state, event, at)
    return state


def counts(*names: str) -> dict[str, int]:
    """A full contribution with 1 for each name given and 0 elsewhere."""
    return {name: int(name in names) for name in COUNTERS}


CONTRIBUTIONS = {
    "queued": ([], counts("total", "queued")),
    "sent": ([ev("sent", 0)], counts("total", "sent")),
    "delivered": ([ev("delivered", 1)], counts("total", "sent", "delivered")),
    "read": ([ev("read", 2)], counts("total", "sent", "delivered", "read")),
    "failed before send": ([ev("failed", 1)], counts("total", "failed")),
    "failed after send": ([ev("failed", 1, after_send=True)], counts("total", "sent", "failed")),
    "sent then refused is failed only": (
        [ev("sent", 0), ev("failed", 1, after_send=False)],
        counts("total", "failed"),
    ),
    "failed then delivered": (
        [ev("failed", 0), ev("delivered", 1)],
        counts("total", "sent", "delivered"),
    ),
    "read then failed": (
        [ev("read", 1), ev("failed", 2, after_send=True)],
        counts("total", "sent", "delivered", "read"),
    ),
    "opened": ([ev("opened", 1)], counts("total", "sent", "delivered", "read", "opened")),
    "clicked": (
        [ev("clicked", 1)],
        counts("total", "sent", "delivered", "read", "opened", "clicked"),
    ),
    "played is read, not opened": (
        [ev("played", 1)],
        counts("total", "sent", "delivered", "read"),
    ),
    "unsubscribed while queued": (
        [ev("unsubscribed", 1)],
        counts("total", "queued", "unsubscribed"),
    ),
    "complained after delivered": (
        [ev("delivered", 1), ev("complained", 2)],
        counts("total", "sent", "delivered", "complained"),
    ),
    "engagement counted once": (
        [ev("opened", 1), ev("opened", 2), ev("clicked", 3), ev("clicked", 2)],
        counts("total", "sent", "delivered", "read", "opened", "clicked"),
    ),
}


@pytest.mark.parametrize(("steps", "expected"), CONTRIBUTIONS.values(), ids=CONTRIBUTIONS.keys())
def test_contribution(steps, expected):
    assert contribution(fold(*steps)) == expected


def test_no_message_contributes_nothing():
    assert contribution(None) == counts()


DELTAS = {
    "new message": (None, [], {"total": 1, "queued": 1}),
    "queued to sent": ([], [ev("sent", 0)], {"queued": -1, "sent": 1}),
    "sent to delivered": ([ev("sent", 0)], [ev("delivered", 1)], {"delivered": 1}),
    "failed before send to delivered": (
        [ev("failed", 0)],
        [ev("delivered", 1)],
        {"failed": -1, "sent": 1, "delivered": 1},
    ),
    "sent to failed after send": (
        [ev("sent", 0)],
        [ev("failed", 1, after_send=True)],
        {"failed": 1},
    ),
    "earlier time only": ([ev("read", 2)], [ev("delivered", 1)], {}),
    "removed read message": (
        [ev("read", 2)],
        None,
        {"total": -1, "sent": -1, "delivered": -1, "read": -1},
    ),
}


@pytest.mark.parametrize(("before", "added", "expected"), DELTAS.values(), ids=DELTAS.keys())
def test_delta_lists_only_changes(before, added, expected):
    old = None if before is None else fold(*before)
    new = None if added is None else fold(*(before or []), *added)
    assert delta(old, new) == expected


step_strategy = st.tuples(
    st.builds(
        # A function, not the class: hypothesis reads a named tuple's field types from its
        # generated __new__, where they are unresolved strings.
        lambda provider_message_id, kind, failure_code, after_send: NormalizedEvent(
            provider_message_id, kind, failure_code=failure_code, after_send=after_send
        ),
        provider_message_id=st.just("m1"),
        kind=st.sampled_from(list(EventKind)),
        failure_code=st.sampled_from([None, "E1", "E2"]),
        after_send=st.booleans(),
    ),
    st.sampled_from(T[:3]),
)


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(step_strategy, min_size=1, max_size=12))
def test_deltas_along_a_fold_add_up_to_the_final_contribution(steps):
    states = [MessageState()]
    for event, at in steps:
        states.append(advance(states[-1], event, at))
    total: Counter[str] = Counter()
    for before, after in zip([None, *states], states, strict=False):
        change = delta(before, after)
        assert 0 not in change.values()
        total.update(change)
    final = contribution(states[-1])
    assert {name: total[name] for name in COUNTERS} == final
    # counts nest, so no rate can exceed 1
    assert final["read"] <= final["delivered"] <= final["sent"] <= final["total"] == 1
    assert final["clicked"] <= final["opened"] <= final["read"]
    assert final["queued"] + final["failed"] + final["delivered"] <= 1


ZERO_RATES = {"delivery": 0.0, "read": 0.0, "open": 0.0, "click": 0.0}


def test_rates_with_zero_divisors_are_zero():
    assert rates(counts()) == ZERO_RATES


def test_rates_with_nothing_delivered_are_zero():
    assert rates({**counts(), "sent": 5, "opened": 1}) == ZERO_RATES


def test_rates_are_fractions():
    campaign = {**counts(), "sent": 4, "delivered": 3, "read": 1, "opened": 2, "clicked": 1}
    assert rates(campaign) == pytest.approx(
        {"delivery": 0.75, "read": 1 / 3, "open": 2 / 3, "click": 1 / 3}
    )
