"""`POST /v1/messages/bulk`: many registrations in one request, each answered on its own.

A campaign of 50,000 messages is registered in a few calls instead of 50,000: items are
checked one by one (a bad item is that item's error, never the request's), then applied through
the same unit of work as a single registration, one transaction per chunk. Bulk never sends: a
send goes through POST /v1/messages, one message and one provider call at a time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from tidings.api.models import RegisterMessage
from tidings.api.support import Db, require_token
from tidings.domain.errors import Conflict
from tidings.domain.recipients import InvalidRecipient, normalise_recipient
from tidings.storage import connections
from tidings.storage.connections import StoredConnection
from tidings.unit_of_work import Registering, register_each

__all__ = ["MAX_ITEMS", "router"]

router = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], tags=["messages"])

MAX_ITEMS = 10_000
# Registrations per transaction: large enough to cost little per item, small enough that a
# transaction never holds SQLite's write lock for long.
_CHUNK = 1_000
# What only a send carries: an item with one would be sent by POST /v1/messages, not registered.
_SEND_ONLY = ("text", "template", "subject")
_NOT_A_SEND = (
    'bulk registers messages sent elsewhere; send one message with POST /v1/messages and "send": '
    "true (a registration has a provider_message_id and no send, text, template or subject)"
)
_BOOL = TypeAdapter(bool)


class BulkRegister(BaseModel):
    items: list[Any] = Field(
        max_length=MAX_ITEMS,
        description="Registrations of messages sent elsewhere, each shaped like the body of "
        'POST /v1/messages but with a provider_message_id and without "send", text, template '
        "or subject (an item that sends is that item's error).",
    )


class ItemError(BaseModel):
    code: str
    message: str


class BulkItem(BaseModel):
    index: int
    result: Literal["created", "exists", "error"]
    id: int | None = None
    error: ItemError | None = None


class BulkResult(BaseModel):
    items: list[BulkItem]


def _error(index: int, code: str, message: str) -> BulkItem:
    return BulkItem(index=index, result="error", error=ItemError(code=code, message=message))


@router.post("/messages/bulk", response_model=BulkResult)
def register_bulk(body: BulkRegister, db: Db, request: Request) -> BulkResult:
    """Register up to 10,000 messages sent elsewhere: one result per item, in order.

    Nothing is sent: an item with `"send": true`, `text`, `template` or `subject`, or without
    a `provider_message_id`, is that item's `invalid_request` error."""
    now = datetime.now(UTC)
    region = request.app.state.settings.default_region
    with db.read() as conn:
        known = {c.name: c for c in connections.active_connections(conn)}
    results: dict[int, BulkItem] = {}
    accepted: list[tuple[int, Registering]] = []
    for index, raw in enumerate(body.items):
        checked = _check(index, raw, known, region, now)
        if isinstance(checked, BulkItem):
            results[index] = checked
        else:
            accepted.append((index, checked))
    for start in range(0, len(accepted), _CHUNK):
        chunk = accepted[start : start + _CHUNK]
        outcomes = register_each(db, [item for _, item in chunk], now)
        for (index, _), outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, tuple):
                message_id, first = outcome
                results[index] = BulkItem(
                    index=index, result="created" if first else "exists", id=message_id
                )
            else:
                code = "conflict" if isinstance(outcome, Conflict) else "invalid_request"
                results[index] = _error(index, code, str(outcome))
    return BulkResult(items=[results[index] for index in range(len(body.items))])


def _check(
    index: int,
    raw: Any,
    known: dict[str, StoredConnection],
    region: str | None,
    now: datetime,
) -> Registering | BulkItem:
    """The item as a registration, or its error."""
    if _asks_to_send(raw):
        return _error(index, "invalid_request", f"items.{index}: {_NOT_A_SEND}")
    try:
        item = RegisterMessage.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in ('items', index, *e['loc']))}: {e['msg']}"
            for e in error.errors()
        )
        return _error(index, "invalid_request", problems)
    if item.send or item.provider_message_id is None:
        # Never reached past _asks_to_send, but a registration without the provider's id
        # would be stored under "" and collide with the next one.
        return _error(index, "invalid_request", f"items.{index}: {_NOT_A_SEND}")
    connection = known.get(item.connection)
    if connection is None:
        return _error(index, "unknown_connection", f"no connection named {item.connection!r}")
    recipient = item.recipient
    if recipient is not None:
        try:
            recipient = normalise_recipient(recipient, region)
        except InvalidRecipient as error:
            return _error(index, "invalid_recipient", f"items.{index}.recipient: {error}")
    return Registering(connection, item.registration(recipient, connection.provider), now)


def _asks_to_send(raw: Any) -> bool:
    """Whether the item is a send, or lacks the id only a send may lack: it is refused with why
    bulk does not send, not with the single route's advice to add `"send": true`."""
    if not isinstance(raw, dict):
        return False  # the model says what it should be
    try:
        send = _BOOL.validate_python(raw.get("send", False))
    except ValidationError:
        send = False  # the model names the bad value
    return (
        send
        or raw.get("provider_message_id") is None
        or any(raw.get(field) is not None for field in _SEND_ONLY)
    )
