"""What tidings forwards to subscribers, and to whom: event types, filters, payload data, the
webhook id of an event, and the retry schedule. Pure (docs/architecture.md, "Outbound").

An outbound event is one normalized event (a message's status, a connection's session change,
a receipt dead-lettered) as a subscriber sees it: `{"type", "timestamp", "data"}`. Its webhook
id is derived from what makes the event unique, so it stays the same across retries, replays
and even a batch applied again after a crash.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tidings.domain.errors import Invalid
from tidings.domain.events import EventKind, NormalizedEvent, SessionUpdate, Source
from tidings.domain.lifecycle import MessageState

__all__ = [
    "ALL",
    "EVENT_TYPES",
    "EventFilter",
    "MessageFacts",
    "RetryPolicy",
    "call_data",
    "dead_letter_data",
    "iso",
    "masked_for",
    "message_data",
    "message_event_type",
    "parse_event_types",
    "session_data",
    "session_event_type",
    "webhook_id",
]

# Every type a subscriber can ask for; each kind's store writes its own through
# `storage.outbox`.
EVENT_TYPES: tuple[str, ...] = (
    "message.queued",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "message.played",
    "message.opened",
    "message.clicked",
    "message.unsubscribed",
    "message.complained",
    "connection.connected",
    "connection.disconnected",
    "connection.qr",
    "receipt.dead_lettered",
    "call.created",
    "call.updated",
    "call.matched",
)
ALL = "*"

# The message events forwarded; the other kinds (deleted, mismatch, received, unknown) stay in
# the timeline only: they change no state a subscriber acts on.
_MESSAGE_TYPES: Mapping[EventKind, str] = {
    kind: f"message.{kind.value}" for kind in EventKind if f"message.{kind.value}" in EVENT_TYPES
}

# Evolution's connection.update states (Baileys: open, connecting, close, refused) and our
# own `qrcode` state for qrcode.updated. `connecting` is a passing state and is not forwarded.
_SESSION_TYPES: Mapping[str, str] = {
    "open": "connection.connected",
    "close": "connection.disconnected",
    "refused": "connection.disconnected",
    "qrcode": "connection.qr",
}


def message_event_type(kind: EventKind) -> str | None:
    """The outbound type of a message event of this kind; None for kinds not forwarded."""
    return _MESSAGE_TYPES.get(kind)


def session_event_type(state: str) -> str | None:
    """The outbound type of a session update in this state; None when it is not forwarded."""
    return _SESSION_TYPES.get(state.lower())


def _families() -> set[str]:
    return {name.split(".", 1)[0] for name in EVENT_TYPES}


def parse_event_types(patterns: Iterable[str]) -> tuple[str, ...]:
    """The patterns a subscriber gave (`message.delivered`, `message.*`, `*`), checked and
    without duplicates, in the order given; no pattern at all means every event (`*`).

    Raises:
        Invalid: a pattern names no known event type; the message lists the known ones.
    """
    parsed: list[str] = []
    families = _families()
    for raw in patterns:
        pattern = raw.strip()
        if not pattern:
            continue
        family, _, rest = pattern.partition(".")
        known = pattern == ALL or pattern in EVENT_TYPES or (rest == "*" and family in families)
        if not known:
            raise Invalid(
                f"unknown event type {pattern!r}; known: {', '.join(EVENT_TYPES)}, "
                f"a family such as message.* or {ALL} for all"
            )
        if pattern not in parsed:
            parsed.append(pattern)
    return tuple(parsed) or (ALL,)


@dataclass(frozen=True)
class EventFilter:
    """Which events one subscription takes: types (with wildcards), and optionally only one
    connection's or one campaign's. An event without a campaign never matches a campaign
    filter."""

    types: tuple[str, ...] = (ALL,)
    connection_id: int | None = None
    campaign: str | None = None

    def matches(self, event_type: str, connection_id: int | None, campaign: str | None) -> bool:
        if self.connection_id is not None and connection_id != self.connection_id:
            return False
        if self.campaign is not None and campaign != self.campaign:
            return False
        return self.wants(event_type)

    def wants(self, event_type: str) -> bool:
        family = event_type.partition(".")[0]
        return any(p in (ALL, event_type) or p == f"{family}.*" for p in self.types)


def webhook_id(*parts: object) -> str:
    """The webhook id of the event that these parts identify (e.g. the message's connection,
    its provider id and the event's deduplication key): the same parts, the same id."""
    text = "\x1f".join(str(part) for part in parts).encode()
    digest = hashlib.sha256(text).digest()[:15]
    return "msg_" + base64.b32encode(digest).decode().lower()


# Fields of event data that may hold a phone number or an email address.
_CONTACT_FIELDS = ("recipient", "client_number")


def masked_for(data: Mapping[str, Any], include_contact: bool, mask: Any) -> Mapping[str, Any]:
    """The data as a subscriber may see it: contact details masked by `mask` (a text → text
    function) unless the subscriber asked for them."""
    if include_contact or not any(data.get(name) for name in _CONTACT_FIELDS):
        return data
    return {
        **data,
        **{name: mask(data[name]) for name in _CONTACT_FIELDS if data.get(name)},
    }


@dataclass(frozen=True)
class RetryPolicy:
    """Seconds to wait before each retry (`TIDINGS_OUTBOUND_RETRY_SCHEDULE`); after the last
    one the delivery is dead. Each delay is stretched by up to `jitter` of itself, so the
    retries of many deliveries that failed together do not arrive together."""

    delays: Sequence[float]
    jitter: float = 0.1

    def next_delay(self, attempts: int, draw: float) -> float | None:
        """The delay after the `attempts`-th failed attempt (1 for the first), `draw` a number
        in [0, 1); None when no retry is left."""
        if attempts > len(self.delays):
            return None
        delay = float(self.delays[attempts - 1])
        return delay + delay * self.jitter * draw


def iso(value: datetime | None) -> str | None:
    """A time as subscribers read it: ISO 8601 in UTC with a `Z`."""
    if value is None:
        return None
    text = value.isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


_STATE_TIMES = (
    "queued_at",
    "sent_at",
    "delivered_at",
    "read_at",
    "failed_at",
    "played_at",
    "opened_at",
    "clicked_at",
    "unsubscribed_at",
    "complained_at",
)


@dataclass(frozen=True)
class MessageFacts:
    """What a message's event data says besides its state: who and where it is."""

    message_id: int
    connection: Source
    provider_message_id: str
    campaign: str | None
    channel: str | None
    recipient: str | None
    contact_ref: str | None
    metadata: Mapping[str, Any]


def message_data(
    facts: MessageFacts,
    state: MessageState,
    event: NormalizedEvent,
    occurred_at: datetime,
    received_at: datetime,
) -> dict[str, Any]:
    """The canonical message as it stood right after `event`: its state and times, campaign,
    contact reference and metadata, with the `sequence` of that state and when the event
    occurred, so a receiver can keep the newest and drop a stale update."""
    failure = state.failure
    return {
        "id": facts.message_id,
        "connection": facts.connection.name,
        "provider": facts.connection.provider,
        "provider_message_id": facts.provider_message_id,
        "campaign": facts.campaign,
        "channel": facts.channel,
        "recipient": facts.recipient,
        "contact_ref": facts.contact_ref,
        "metadata": dict(facts.metadata),
        "state": state.status.value,
        "sequence": state.sequence,
        "occurred_at": iso(occurred_at),
        "event": {
            "kind": event.kind.value,
            "raw_status": event.raw_status,
            "occurred_at": iso(occurred_at),
            "received_at": iso(received_at),
        },
        **{name: iso(getattr(state, name)) for name in _STATE_TIMES},
        "failure": (
            {"code": failure.code or None, "reason": failure.reason or None,
             "permanent": failure.permanent}
            if failure is not None
            else None
        ),
    }  # fmt: skip


def session_data(
    connection: Source, update: SessionUpdate, occurred_at: datetime
) -> dict[str, Any]:
    """A connection's session change as subscribers see it; the QR code as a data URI (a PNG)
    when the provider sent its image, with the raw pairing text beside it."""
    qrcode = update.details.get("qrcode") if isinstance(update.details, Mapping) else None
    image = code = pairing = None
    if isinstance(qrcode, Mapping):
        image = qrcode.get("base64") if isinstance(qrcode.get("base64"), str) else None
        code = qrcode.get("code") if isinstance(qrcode.get("code"), str) else None
        pairing = qrcode.get("pairingCode") if isinstance(qrcode.get("pairingCode"), str) else None
    if image and not image.startswith("data:"):
        image = "data:image/png;base64," + image
    reason = update.details.get("statusReason") if isinstance(update.details, Mapping) else None
    return {
        "connection": connection.name,
        "provider": connection.provider,
        "state": update.state,
        "status_reason": reason if isinstance(reason, int | str) else None,
        "qrcode": image or None,
        "qrcode_text": code or None,
        "pairing_code": pairing or None,
        "occurred_at": iso(occurred_at),
    }


def dead_letter_data(
    connection: Source,
    receipt_id: int,
    received_at: datetime,
    attempts: int,
    error: str,
) -> dict[str, Any]:
    """A receipt that will not be applied without a person: which, from where, and why."""
    return {
        "receipt": receipt_id,
        "connection": connection.name,
        "provider": connection.provider,
        "received_at": iso(received_at),
        "attempts": attempts,
        "error": error,
    }


def call_data(
    call: Mapping[str, Any], connection: str, employee: str | None, lead: str | None
) -> dict[str, Any]:
    """A call as subscribers see it (`call` holds the calls table's columns): the employee by
    code and the lead by the business's external id, never by tidings' own ids alone."""
    return {
        "id": call["id"],
        "connection": connection,
        "provider_call_id": call["provider_call_id"],
        "employee": employee,
        "lead": lead,
        "client_name": call.get("client_name"),
        "client_number": call.get("client_number"),
        "type": call.get("type"),
        "raw_type": call.get("raw_type"),
        "duration_seconds": call.get("duration_seconds"),
        "started_at": iso(call.get("started_at")),
        "recording_url": call.get("recording_url") or None,
        "crm_status": call.get("crm_status"),
        "modified_at": iso(call.get("modified_at")),
        "match_attempts": call.get("match_attempts"),
    }
