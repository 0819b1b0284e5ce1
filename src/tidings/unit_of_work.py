"""The one apply path: every kind of record a webhook or the API brings in is applied here.

A kind of record is its pure rules in `domain/`, its store module in `storage/`, and one entry
in `KINDS` below (docs/architecture.md, "Kinds of record"). For a batch, each kind's store loads
what its items touch, asks its rules for the changes and adds the writes to the unit of work;
`Database.apply` then makes them all in one transaction, with the receipts marked done.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tidings.domain.calls import CallRecord
from tidings.domain.errors import Conflict, Invalid
from tidings.domain.events import Incoming, NormalizedEvent, SessionUpdate, Source
from tidings.domain.message_changes import Registering, Registration
from tidings.storage import calls, connections, messages
from tidings.storage.db import Database, Reader
from tidings.storage.writes import Writes

__all__ = [
    "KINDS",
    "Kind",
    "Outcome",
    "Registering",
    "Registration",
    "apply_events",
    "apply_incoming",
    "kind_of",
    "register",
    "register_each",
]


@dataclass
class Outcome:
    """What a kind's store did with a batch's items."""

    applied: int = 0
    duplicates: int = 0
    notes: dict[int, list[str]] = field(default_factory=dict)  # by receipt id

    def add(self, other: Outcome) -> None:
        self.applied += other.applied
        self.duplicates += other.duplicates
        for receipt_id, notes in other.notes.items():
            self.notes.setdefault(receipt_id, []).extend(notes)


Apply = Callable[[Reader, Writes, Sequence[Incoming[Any]], datetime], Outcome]


@dataclass(frozen=True)
class Kind:
    """A kind of record: the parsed item type it takes, and how its store applies items."""

    name: str
    item: type
    apply: Apply


def _message_events(
    reader: Reader, writes: Writes, items: Sequence[Incoming[Any]], now: datetime
) -> Outcome:
    plan = messages.apply_items(reader, writes, items, now).plan
    return Outcome(plan.applied, plan.duplicates, plan.notes)


def _session_events(
    reader: Reader, writes: Writes, items: Sequence[Incoming[Any]], now: datetime
) -> Outcome:
    connections.apply_sessions(reader, writes, items, now)
    return Outcome(applied=len(items))


def _call_records(
    reader: Reader, writes: Writes, items: Sequence[Incoming[Any]], now: datetime
) -> Outcome:
    applied = calls.apply_records(reader, writes, items, now)
    return Outcome(applied.applied, applied.duplicates, applied.notes)


# Applied in this order, so a kind's rows may refer to rows of the kinds before it.
KINDS: tuple[Kind, ...] = (
    Kind("message event", NormalizedEvent, _message_events),
    Kind("session event", SessionUpdate, _session_events),
    Kind("call record", CallRecord, _call_records),
)
_BY_ITEM: Mapping[type, Kind] = {kind.item: kind for kind in KINDS}


def kind_of(item: object) -> Kind | None:
    """The kind this parsed item is a record of; None for notes (ignored or bad items)."""
    return _BY_ITEM.get(type(item))


def apply_incoming(
    reader: Reader, writes: Writes, incoming: Sequence[Incoming[Any]], now: datetime
) -> Outcome:
    """Apply parsed items of every kind, each kind's through its store."""
    grouped: dict[str, list[Incoming[Any]]] = {}
    for item in incoming:
        kind = kind_of(item.event)
        if kind is None:
            raise TypeError(f"{type(item.event).__name__} is no kind of record")
        grouped.setdefault(kind.name, []).append(item)
    outcome = Outcome()
    for kind in KINDS:
        if kind.name in grouped:
            outcome.add(kind.apply(reader, writes, grouped[kind.name], now))
    return outcome


def register(
    db: Database, connection: Source, registrations: Sequence[Registration], now: datetime
) -> list[tuple[int, bool]]:
    """Register messages sent elsewhere, in one transaction: (message id, first time?) each.

    The same path as webhook events (a registration is a `sent` event plus the fields it
    names), so the order of registration and events does not matter. Naming another campaign
    than the message's raises Conflict, and nothing is written."""
    items = [Registering(connection, reg, now) for reg in registrations]

    def plan(reader: Reader, writes: Writes) -> list[tuple[int, bool]]:
        applied = messages.apply_items(reader, writes, items, now)
        outcomes: list[tuple[int, bool]] = []
        for outcome in applied.plan.registered:
            assert isinstance(outcome, tuple)  # strict: a refusal raised instead
            key, first = outcome
            outcomes.append((applied.ids[key], first))
        return outcomes

    return db.apply(plan)


def register_each(
    db: Database, items: Sequence[Registering], now: datetime
) -> list[tuple[int, bool] | Conflict | Invalid]:
    """Register many messages in one transaction, each refused alone if it contradicts what is
    stored or cannot be stored: per item, (message id, first time?) or the refusal."""

    def plan(reader: Reader, writes: Writes) -> list[tuple[int, bool] | Conflict | Invalid]:
        applied = messages.apply_items(reader, writes, items, now, strict=False)
        return [
            (applied.ids[outcome[0]], outcome[1]) if isinstance(outcome, tuple) else outcome
            for outcome in applied.plan.registered
        ]

    return db.apply(plan)


def apply_events(
    db: Database, incoming: Sequence[Incoming[NormalizedEvent]], now: datetime
) -> Outcome:
    """Apply message events that did not come through the inbox (tests, tools)."""
    return db.apply(lambda reader, writes: apply_incoming(reader, writes, incoming, now))
