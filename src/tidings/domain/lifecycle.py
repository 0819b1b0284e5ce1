"""The canonical message lifecycle: queued → sent → delivered → read, or failed.

docs/architecture.md, "Lifecycle".

Pure: `advance` takes a message's state and one event and returns the new state. The state is
a function of the *set* of events seen, never of their order, so late, duplicated and
out-of-order webhooks all end in the same place:

- ranks only move up; each of `queued_at`/`sent_at`/`delivered_at`/`read_at` is the earliest
  time among events of that rank or higher (so `read` implies `delivered` implies `sent`);
- `failed` is the state only while no evidence of `delivered` or `read` exists;
- the failure kept is the earliest one, so its reason does not depend on arrival order;
- email `clicked` implies `opened`, and `opened` implies `read`; WhatsApp `played` counts as read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tidings.domain.events import EventKind, NormalizedEvent, Status

__all__ = ["RANKED_KINDS", "Failure", "MessageState", "advance", "register"]

# Rank that an event kind proves the message reached. Kinds absent here never move state.
RANKED_KINDS: dict[EventKind, int] = {
    EventKind.QUEUED: 0,
    EventKind.SENT: 1,
    EventKind.DELIVERED: 2,
    EventKind.READ: 3,
    EventKind.PLAYED: 3,
    EventKind.OPENED: 3,
    EventKind.CLICKED: 3,
}

_RANK_FIELDS = ("queued_at", "sent_at", "delivered_at", "read_at")
_STATUS_BY_RANK = (Status.QUEUED, Status.SENT, Status.DELIVERED, Status.READ)
_DELIVERED_RANK = 2


@dataclass(frozen=True)
class Failure:
    """Why a message failed, as the provider put it (the earliest one is kept)."""

    occurred_at: datetime
    code: str = ""
    reason: str = ""
    permanent: bool | None = None


@dataclass(frozen=True)
class MessageState:
    """Everything the lifecycle knows about one message. A new message is empty (queued)."""

    queued_at: datetime | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    failed_at: datetime | None = None
    failed_after_send: bool = False
    failure: Failure | None = None
    played_at: datetime | None = None
    opened_at: datetime | None = None
    clicked_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    complained_at: datetime | None = None
    sequence: int = 0

    @property
    def rank(self) -> int | None:
        """Highest rank with evidence, or None when no ranked event was seen."""
        return _rank(self.__dict__)

    @property
    def status(self) -> Status:
        """Current state: failed only while nothing proves the message arrived."""
        return _status(self.__dict__)


def _rank(values: Mapping[str, Any]) -> int | None:
    for rank in range(len(_RANK_FIELDS) - 1, -1, -1):
        if values[_RANK_FIELDS[rank]] is not None:
            return rank
    return None


def _status(values: Mapping[str, Any]) -> Status:
    """The status of a state given as its field values (so `advance` builds one state only)."""
    rank = _rank(values)
    if values["failed_at"] is not None and (rank is None or rank < _DELIVERED_RANK):
        return Status.FAILED
    return _STATUS_BY_RANK[rank or 0]


def _earliest(current: datetime | None, new: datetime) -> datetime:
    return new if current is None or new < current else current


def advance(state: MessageState, event: NormalizedEvent, at: datetime) -> MessageState:
    """Apply one event that happened at `at` (provider time, else receive time).

    Returns the new state; `sequence` counts the changes of the state (any time, the failure or
    the status moving), so a receiver of forwarded updates can keep the newest and drop a stale
    one (decision 0010).
    """
    changes: dict[str, object] = {}
    rank = RANKED_KINDS.get(event.kind)
    if rank is not None:
        for field in _RANK_FIELDS[: rank + 1]:
            changes[field] = _earliest(getattr(state, field), at)
    if event.kind is EventKind.FAILED:
        failure = Failure(
            occurred_at=at,
            code=event.failure_code or "",
            reason=event.failure_reason or "",
            permanent=event.failure_permanent,
        )
        changes["failed_at"] = _earliest(state.failed_at, at)
        changes["failed_after_send"] = state.failed_after_send or event.after_send
        if state.failure is None or _failure_key(failure) < _failure_key(state.failure):
            changes["failure"] = failure
    engagement = _ENGAGEMENT_FIELDS.get(event.kind, ())
    for field in engagement:
        changes[field] = _earliest(getattr(state, field), at)
    current = state.__dict__
    for name, value in changes.items():  # a loop, not all(…): no generator for every event
        if current[name] != value:
            break
    else:
        return state
    # Made without the dataclass's __init__, which sets each of the thirteen fields through
    # object.__setattr__ (a frozen class's way): that was a twentieth of applying an event.
    # The values are a complete set already: the old state's, some replaced.
    new = object.__new__(MessageState)
    new.__dict__.update(current, **changes, sequence=state.sequence + 1)
    return new


def register(state: MessageState, sent_at: datetime) -> MessageState:
    """Registration of a message the provider gave an id to: at least `sent`, at `sent_at`."""
    return advance(state, NormalizedEvent(provider_message_id="", kind=EventKind.SENT), sent_at)


def _failure_key(failure: Failure) -> tuple[datetime, str, str, int]:
    permanent = {None: 0, False: 1, True: 2}[failure.permanent]
    return (failure.occurred_at, failure.code, failure.reason, permanent)


_ENGAGEMENT_FIELDS: dict[EventKind, tuple[str, ...]] = {
    EventKind.PLAYED: ("played_at",),
    EventKind.OPENED: ("opened_at",),
    EventKind.CLICKED: ("clicked_at", "opened_at"),
    EventKind.UNSUBSCRIBED: ("unsubscribed_at",),
    EventKind.COMPLAINED: ("complained_at",),
}
