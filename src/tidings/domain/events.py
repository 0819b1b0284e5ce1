"""The canonical vocabulary every provider's dialect is turned into.

Adapters produce these plain, frozen values from raw bytes; the lifecycle consumes them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from tidings.domain.calls import CallRecord

__all__ = [
    "BadItem",
    "EventKind",
    "Ignored",
    "Incoming",
    "NormalizedEvent",
    "ParsedItem",
    "SessionUpdate",
    "Source",
    "Status",
]


class Status(StrEnum):
    """A message's lifecycle state (docs/architecture.md, "Lifecycle")."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class EventKind(StrEnum):
    """Every kind of event a message's timeline can hold (the API's event kinds)."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    PLAYED = "played"
    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"
    DELETED = "deleted"
    MISMATCH = "mismatch"
    RECEIVED = "received"
    UNKNOWN = "unknown"


class _Nothing(Mapping[str, Any]):
    """The default of an event's mappings: empty, shared, so it cannot change; and, unlike a
    read-only view of a dict, it pickles and copies (as itself)."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "{}"

    def __reduce__(self) -> str:
        return "_NOTHING"


_NOTHING: Mapping[str, Any] = _Nothing()


class NormalizedEvent(NamedTuple):
    """One thing a provider said about one message.

    `occurred_at` is the provider's time when it gives a trustworthy one, else None (the
    worker then uses the receive time). `provider_event_id` distinguishes two events of the
    same kind for one message when the provider numbers its events. `raw_status` keeps the
    provider's own word so `unknown` events can name it. For failures, `after_send` says
    whether the provider had accepted the message.

    A named tuple, not a frozen dataclass: the worker makes one for nearly every receipt, and
    a frozen dataclass's `__init__`, which sets each of its thirteen fields through
    `object.__setattr__`, cost three times as much.
    """

    provider_message_id: str
    kind: EventKind
    raw_status: str = ""
    occurred_at: datetime | None = None
    provider_event_id: str | None = None
    channel: str | None = None
    recipient: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    failure_permanent: bool | None = None
    after_send: bool = False
    metadata: Mapping[str, str] = _NOTHING
    details: Mapping[str, Any] = _NOTHING


@dataclass(frozen=True)
class SessionUpdate:
    """A change of a connection's WhatsApp session (Evolution connection.update, qrcode.updated)."""

    state: str
    qrcode: str | None = None
    occurred_at: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ignored:
    """A genuine item we deliberately do not act on (e.g. a status of a message we did not send)."""

    reason: str

    @property
    def note(self) -> str:
        return f"ignored: {self.reason}"


@dataclass(frozen=True)
class BadItem:
    """One item of a multi-item body that could not be understood; the others still apply."""

    index: int
    error: str

    @property
    def note(self) -> str:
        return f"item {self.index} not applied: {self.error}"


ParsedItem = NormalizedEvent | SessionUpdate | CallRecord | Ignored | BadItem


class Source(Protocol):
    """The connection an item came through, as the domain's rules need it."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def options(self) -> Mapping[str, str]: ...


E = TypeVar("E")


class Incoming(NamedTuple, Generic[E]):
    """One parsed item of a record kind, with where and when it arrived (`receipt_id` is None
    for what did not come through a webhook, like a registration's own event). (A named
    tuple: the worker makes one per event.)"""

    connection: Source
    event: E
    receipt_id: int | None
    received_at: datetime
