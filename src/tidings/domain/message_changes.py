"""What a batch of message events and registrations does to the messages they name. Pure.

The message kind's rules (docs/architecture.md, "Kinds of record"): given the messages as
stored and the deduplication keys already recorded, fold each new item through the lifecycle
and say what changes: each message's new state, the fields it learns, the campaign it joins,
the timeline entries to record, and a note for every item (or part of one) the store cannot
hold. Writing those changes is `storage.messages`' job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from tidings.domain.counters import COUNTERS, delta
from tidings.domain.dedup import dedup_key
from tidings.domain.errors import Conflict, Invalid
from tidings.domain.events import EventKind, Incoming, NormalizedEvent, Source
from tidings.domain.lifecycle import MessageState, advance
from tidings.domain.recipients import same_party

__all__ = [
    "MessageChange",
    "MessageItem",
    "MessageKey",
    "MessagePlan",
    "Registering",
    "Registration",
    "Screened",
    "StoredMessage",
    "campaign_deltas",
    "plan_messages",
    "screen",
]

MessageKey = tuple[int, str]  # (connection id, provider message id)


@dataclass(frozen=True)
class Registration:
    """A message sent elsewhere, as the API registers it (docs/architecture.md, "Lifecycle")."""

    provider_message_id: str
    campaign: str | None = None
    recipient: str | None = None
    contact_ref: str | None = None
    metadata: Mapping[str, Any] | None = None
    channel: str | None = None
    sent_at: datetime | None = None
    # A message tidings is about to send itself: recorded `queued` before its provider is
    # called (the send's provisional id until the provider names its own).
    queued: bool = False


@dataclass(frozen=True)
class Registering:
    """A registration through a connection at a time."""

    connection: Source
    registration: Registration
    at: datetime


MessageItem = Incoming[NormalizedEvent] | Registering


@dataclass(frozen=True)
class StoredMessage:
    """A message as stored. `campaign_key` is known only where a registration needs it."""

    id: int
    state: MessageState
    campaign_id: int | None = None
    campaign_key: str | None = None
    channel: str | None = None
    recipient: str | None = None
    contact_ref: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    registered_at: datetime | None = None


@dataclass
class MessageChange:
    """What the batch does to one message; `stored` is None for a message it creates."""

    key: MessageKey
    stored: StoredMessage | None
    before: MessageState
    after: MessageState
    fields: dict[str, Any] = field(default_factory=dict)
    campaign_key: str | None = None  # the campaign this batch puts it in

    def known(self, name: str) -> Any:
        """A field's value as stored or as learned earlier in this batch."""
        if name in self.fields:
            return self.fields[name]
        return getattr(self.stored, name) if self.stored is not None else None


class TimelineEntry(NamedTuple):
    """An event the batch applies, in order. (A named tuple: one per event, and a frozen
    dataclass's seven fields cost a microsecond more.)"""

    key: MessageKey
    dedup_key: str
    event: NormalizedEvent
    receipt_id: int | None
    received_at: datetime
    # The connection it came through and the message's state right after it (what an
    # outbound event announces).
    connection: Source | None = None
    after: MessageState | None = None


@dataclass
class MessagePlan:
    changes: dict[MessageKey, MessageChange] = field(default_factory=dict)
    timeline: list[TimelineEntry] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0
    notes: dict[int, list[str]] = field(default_factory=dict)  # by receipt id
    # Each registration's outcome, in order: (key, first time?), or why it was refused.
    registered: list[tuple[MessageKey, bool] | Conflict | Invalid] = field(default_factory=list)

    def note(self, receipt_id: int | None, text: str) -> None:
        if receipt_id is not None:
            self.notes.setdefault(receipt_id, []).append(text)


@dataclass(frozen=True)
class Screened:
    """Items split before anything is loaded: those the store can hold, and a note on each
    receipt for those it cannot hold at all (no message is even created for them)."""

    accepted: list[MessageItem]
    notes: dict[int, list[str]]
    keys: set[MessageKey]  # the messages to load (a registration naming no storable id: none)


def screen(items: Iterable[MessageItem], limits: Mapping[str, int]) -> Screened:
    accepted: list[MessageItem] = []
    notes: dict[int, list[str]] = {}
    keys: set[MessageKey] = set()
    id_limit = limits.get("provider_message_id")
    for item in items:
        if isinstance(item, Registering):
            accepted.append(item)  # checked whole by `_register`, which refuses loudly
            pmid = item.registration.provider_message_id
            if pmid and "\x00" not in pmid and (id_limit is None or len(pmid) <= id_limit):
                keys.add(_key(item))
            continue
        refused = _refusal(item.event, limits)
        if refused is None:
            accepted.append(item)
            keys.add(_key(item))
        elif item.receipt_id is not None:
            pmid = item.event.provider_message_id[:60]
            notes.setdefault(item.receipt_id, []).append(
                f"item for {pmid!r} not applied: {refused}"
            )
    return Screened(accepted, notes, keys)


def _key(item: MessageItem) -> MessageKey:
    if isinstance(item, Incoming):
        return (item.connection.id, item.event.provider_message_id)
    return (item.connection.id, item.registration.provider_message_id)


def plan_messages(
    stored: Mapping[MessageKey, StoredMessage],
    known: set[tuple[MessageKey, str]],
    screened: Screened,
    limits: Mapping[str, int],
    strict: bool = True,
) -> MessagePlan:
    """Fold the items, in order, over the stored messages. `known` holds the (message, dedup
    key) pairs already recorded; `limits` the longest value each stored text may have.

    A registration that contradicts the message (another campaign, recipient or contact) raises
    Conflict, and one the store cannot hold raises Invalid; with `strict=False` it is refused
    alone instead (its outcome in `registered`) and the other items still apply."""
    plan = MessagePlan(notes={k: list(v) for k, v in screened.notes.items()})
    for item in screened.accepted:
        if isinstance(item, Registering):
            try:
                _register(plan, stored, item, limits)
            except (Conflict, Invalid) as error:
                if strict:
                    raise
                plan.registered.append(error)
                continue
            _fold(plan, stored, known, _registration_event(item), limits)
        else:
            _fold(plan, stored, known, item, limits)
    return plan


def _change(
    plan: MessagePlan, stored: Mapping[MessageKey, StoredMessage], key: MessageKey
) -> MessageChange:
    change = plan.changes.get(key)
    if change is None:
        change = plan.changes[key] = _unchanged(stored, key)
    return change


# A message the batch creates starts from this state. One for all: a state is never changed
# (`advance` makes a new one), and making thirteen frozen fields per new message cost more
# than a microsecond.
_NEW = MessageState()


def _unchanged(stored: Mapping[MessageKey, StoredMessage], key: MessageKey) -> MessageChange:
    found = stored.get(key)
    state = found.state if found is not None else _NEW
    return MessageChange(key, found, state, state)


def _fold(
    plan: MessagePlan,
    stored: Mapping[MessageKey, StoredMessage],
    known: set[tuple[MessageKey, str]],
    item: Incoming[NormalizedEvent],
    limits: Mapping[str, int],
) -> None:
    event, receipt = item.event, item.receipt_id
    key = (item.connection.id, event.provider_message_id)
    dedup = dedup_key(event)
    if (key, dedup) in known:
        plan.duplicates += 1
        return
    known.add((key, dedup))
    plan.applied += 1
    if event.kind is EventKind.UNKNOWN:
        plan.note(receipt, f"unknown status {event.raw_status[:60]!r}: recorded, state unchanged")
    event = _cut(plan, receipt, event, limits)
    change = _change(plan, stored, key)
    metadata = {str(k): str(v) for k, v in event.metadata.items()}
    campaign, contact = _named(item.connection.options, metadata)
    for name, value in (
        ("channel", event.channel),
        ("recipient", event.recipient),
        ("contact_ref", contact),
    ):
        _fill(plan, receipt, change, name, value, limits)
    _merge_metadata(change, metadata)
    joins = change.campaign_key is None and change.known("campaign_id") is None
    if campaign and joins and _fits(plan, receipt, "campaign", campaign, limits):
        change.campaign_key = campaign
    change.after = advance(change.after, event, event.occurred_at or item.received_at)
    plan.timeline.append(
        TimelineEntry(key, dedup, event, receipt, item.received_at, item.connection, change.after)
    )


def _register(
    plan: MessagePlan,
    stored: Mapping[MessageKey, StoredMessage],
    item: Registering,
    limits: Mapping[str, int],
) -> None:
    reg = item.registration
    too_long = [
        name
        for name, value in (
            ("provider_message_id", reg.provider_message_id),
            ("campaign", reg.campaign),
            ("recipient", reg.recipient),
            ("contact_ref", reg.contact_ref),
            ("channel", reg.channel),
        )
        if value is not None and len(value) > limits.get(name, len(value))
    ]
    if too_long:
        raise Invalid(
            "; ".join(f"{name} is longer than {limits[name]} characters" for name in too_long)
        )
    key = _key(item)
    change = plan.changes.get(key) or _unchanged(stored, key)  # kept only if accepted
    current = change.campaign_key or (change.stored.campaign_key if change.stored else None)
    where = f"message {reg.provider_message_id!r} on connection {item.connection.name!r}"
    if reg.campaign is not None and current is not None and current != reg.campaign:
        raise Conflict(f"{where} already belongs to campaign {current!r}, not {reg.campaign!r}")
    first = change.known("registered_at") is None
    for name in ("recipient", "contact_ref"):  # a webhook's spelling never conflicts
        given, known_value = getattr(reg, name), change.known(name)
        if first or given is None or known_value is None or same_party(given, known_value):
            continue
        raise Conflict(f"{where} was registered with another {name.replace('_', ' ')}")
    plan.changes[key] = change
    plan.registered.append((key, first))
    for name in ("channel", "recipient", "contact_ref"):
        value = getattr(reg, name)
        if value is not None and change.known(name) is None:
            change.fields[name] = value
    _merge_metadata(change, reg.metadata or {})
    if first:
        change.fields["registered_at"] = item.at
    if reg.campaign and current is None and change.known("campaign_id") is None:
        change.campaign_key = reg.campaign


def _registration_event(item: Registering) -> Incoming[NormalizedEvent]:
    """Registration puts the message at least in `sent`, through the same fold as a webhook's
    event, so the order of registration and events does not matter (decision 0002). A send's
    own record puts it in `queued` instead: nothing has gone out yet."""
    queued = item.registration.queued
    sent = NormalizedEvent(
        provider_message_id=item.registration.provider_message_id,
        kind=EventKind.QUEUED if queued else EventKind.SENT,
        raw_status="queued for sending" if queued else "registered",
        occurred_at=item.registration.sent_at or item.at,
        provider_event_id="send" if queued else "registration",
        details={"source": "send" if queued else "registration"},
    )
    return Incoming(item.connection, sent, None, item.at)


def _refusal(event: NormalizedEvent, limits: Mapping[str, int]) -> str | None:
    """Why this event cannot be recorded at all: it names no message the store can hold."""
    pmid = event.provider_message_id
    if not pmid:
        return "no message id"
    limit = limits.get("provider_message_id")
    if limit is not None and len(pmid) > limit:
        return f"provider_message_id longer than {limit} characters"
    texts = [pmid, event.raw_status, event.channel or "", event.recipient or ""]
    texts += [str(k) + str(v) for k, v in event.metadata.items()]
    if any("\x00" in text for text in texts):
        return "a NUL character in a text field"
    return None


def _cut(
    plan: MessagePlan, receipt: int | None, event: NormalizedEvent, limits: Mapping[str, int]
) -> NormalizedEvent:
    """A failure code longer than the store holds is cut, and the cut noted."""
    limit = limits.get("failure_code")
    code = event.failure_code
    if limit is None or code is None or len(code) <= limit:
        return event
    plan.note(receipt, f"failure_code of {event.provider_message_id[:60]!r} cut to {limit}")
    return event._replace(failure_code=code[:limit])


def _fits(
    plan: MessagePlan, receipt: int | None, name: str, value: str, limits: Mapping[str, int]
) -> bool:
    limit = limits.get(name)
    if limit is None or len(value) <= limit:
        return True
    plan.note(receipt, f"{name} longer than {limit} characters left out")
    return False


def _fill(
    plan: MessagePlan,
    receipt: int | None,
    change: MessageChange,
    name: str,
    value: str | None,
    limits: Mapping[str, int],
) -> None:
    """Fill a field a later source knows; never overwrite what is already known."""
    if value is None or change.known(name) is not None:
        return
    if _fits(plan, receipt, name, value, limits):
        change.fields[name] = value


def _merge_metadata(change: MessageChange, extra: Mapping[str, Any]) -> None:
    current = change.known("metadata") or {}
    added = {k: v for k, v in extra.items() if k not in current}
    if added:
        change.fields["metadata"] = {**current, **added}


def _named(
    options: Mapping[str, str], metadata: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """The campaign and contact named by the connection's `campaign_key`/`contact_ref_key`."""
    campaign_key = options.get("campaign_key")
    contact_key = options.get("contact_ref_key")
    campaign = metadata.get(campaign_key) if campaign_key else None
    contact = metadata.get(contact_key) if contact_key else None
    return (campaign or None), (contact or None)


def campaign_deltas(
    changes: Iterable[MessageChange], campaign_ids: Mapping[str, int]
) -> dict[int, dict[str, int]]:
    """How much each campaign's counters move: a message already counted moves by the change
    of its state, one that joins a campaign adds its whole contribution."""
    deltas: dict[int, dict[str, int]] = {}
    for change in changes:
        campaign_id = change.known("campaign_id")
        previous: MessageState | None = change.before
        if campaign_id is None and change.campaign_key:
            campaign_id = campaign_ids[change.campaign_key]
            previous = None
        if campaign_id is None:
            continue
        moved = delta(previous, change.after)
        sums = deltas.setdefault(campaign_id, dict.fromkeys(COUNTERS, 0))
        for name, value in moved.items():
            sums[name] += value
    return {cid: sums for cid, sums in deltas.items() if any(sums.values())}
