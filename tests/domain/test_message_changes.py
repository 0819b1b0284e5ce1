"""The message kind's rules with plain data: what a batch of events and registrations changes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from tidings.domain.errors import Conflict, Invalid
from tidings.domain.events import EventKind, Incoming, NormalizedEvent, Status
from tidings.domain.lifecycle import MessageState
from tidings.domain.message_changes import (
    MessageItem,
    Registering,
    Registration,
    StoredMessage,
    campaign_deltas,
    plan_messages,
    screen,
)

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
LIMITS = {"provider_message_id": 10, "campaign": 8, "contact_ref": 8, "recipient": 20}


@dataclass(frozen=True)
class Conn:
    id: int = 1
    name: str = "main"
    provider: str = "callbell"
    options: Mapping[str, str] = field(default_factory=lambda: {"campaign_key": "campaign"})


def event(
    pmid: str, kind: EventKind, receipt: int = 7, **values: object
) -> Incoming[NormalizedEvent]:
    return Incoming(
        Conn(), NormalizedEvent(pmid, kind, raw_status=kind.value, **values), receipt, T0
    )  # type: ignore[arg-type]


def registering(pmid: str, **values: object) -> Registering:
    return Registering(Conn(), Registration(pmid, **values), T0)  # type: ignore[arg-type]


def stored(message_id: int, **values: object) -> StoredMessage:
    return StoredMessage(message_id, MessageState(sent_at=T0), **values)  # type: ignore[arg-type]


def plan(
    items: list[MessageItem],
    known: dict[tuple[int, str], StoredMessage] | None = None,
    strict: bool = True,
):  # type: ignore[no-untyped-def]
    return plan_messages(known or {}, set(), screen(items, LIMITS), LIMITS, strict)


def test_events_of_one_message_fold_into_one_change_with_its_timeline() -> None:
    result = plan(
        [
            event("m1", EventKind.DELIVERED, occurred_at=T0, metadata={"campaign": "spring"}),
            event("m1", EventKind.READ, occurred_at=T0 + timedelta(seconds=5)),
            event("m1", EventKind.READ, occurred_at=T0 + timedelta(seconds=5)),  # a duplicate
        ]
    )
    (change,) = result.changes.values()
    assert change.stored is None and change.after.status is Status.READ
    assert change.campaign_key == "spring"
    assert (result.applied, result.duplicates, len(result.timeline)) == (2, 1, 2)
    assert campaign_deltas([change], {"spring": 4})[4]["read"] == 1


def test_a_registration_fills_what_is_unknown_and_never_overwrites() -> None:
    known = {(1, "m1"): stored(3, recipient="+5531982968010", metadata={"a": "1"})}
    result = plan(
        [
            registering(
                "m1", recipient="5531982968010", contact_ref="c-9", metadata={"a": "2", "b": "3"}
            )
        ],
        known,
    )
    (change,) = result.changes.values()
    assert change.fields["contact_ref"] == "c-9" and "recipient" not in change.fields
    assert change.fields["metadata"] == {"a": "1", "b": "3"}
    assert result.registered == [((1, "m1"), True)]


@pytest.mark.parametrize(
    ("existing", "given", "message"),
    [
        ({"campaign_key": "spring", "campaign_id": 4}, {"campaign": "autumn"}, "campaign 'spring'"),
        (
            {"recipient": "+5531982968010", "registered_at": T0},
            {"recipient": "+5531982968011"},
            "registered with another recipient",
        ),
        ({"contact_ref": "c-1", "registered_at": T0}, {"contact_ref": "c-2"}, "another contact"),
    ],
)
def test_a_registration_contradicting_the_message_is_a_conflict(
    existing: dict[str, object], given: dict[str, object], message: str
) -> None:
    known = {(1, "m1"): stored(3, **existing)}
    with pytest.raises(Conflict, match=message):
        plan([registering("m1", **given)], known)


def test_not_strict_refuses_a_registration_alone() -> None:
    known = {(1, "m1"): stored(3, contact_ref="c-1", registered_at=T0)}
    result = plan(
        [
            registering("m1", contact_ref="c-2"),
            registering("m2", campaign="x" * 9),
            registering("m3"),
        ],
        known,
        strict=False,
    )
    first, second, third = result.registered
    assert isinstance(first, Conflict) and isinstance(second, Invalid)
    assert "campaign is longer than 8 characters" in str(second)
    assert third == ((1, "m3"), True)
    assert set(result.changes) == {(1, "m3")}


def test_values_the_store_cannot_hold_are_noted_per_item() -> None:
    items: list[MessageItem] = [
        event("m" * 11, EventKind.SENT),
        event("m1", EventKind.SENT, metadata={"campaign": "x" * 9}),
        event("m2", EventKind.SENT, recipient="+" + "1" * 25),
        event("m3", EventKind.SENT, metadata={"note": "a\x00b"}),
    ]
    result = plan(items)
    assert screen(items, LIMITS).keys == {(1, "m1"), (1, "m2")}  # no message made for refused ones
    assert set(result.changes) == {(1, "m1"), (1, "m2")}
    assert result.changes[(1, "m1")].campaign_key is None
    assert "recipient" not in result.changes[(1, "m2")].fields
    notes = result.notes[7]
    assert (
        notes[0]
        == "item for 'mmmmmmmmmmm' not applied: provider_message_id longer than 10 characters"
    )
    assert "campaign longer than 8 characters left out" in notes
    assert "recipient longer than 20 characters left out" in notes
    assert "item for 'm3' not applied: a NUL character in a text field" in notes


def test_a_first_registration_is_not_held_to_what_a_webhook_spelled() -> None:
    known = {(1, "m1"): stored(3, recipient="4860999@s.whatsapp.net")}
    result = plan([registering("m1", recipient="+48601234567")], known)
    assert result.registered == [((1, "m1"), True)]
