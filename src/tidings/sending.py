"""Sending one message through a connection's provider API, recorded before and after.

The order is the point (decision 0012): the send is recorded under its idempotency key, then
the provider is called, then the message is registered from the answer. A repeated key finds
the first send and sends nothing; a refusal is a `failed` message with the provider's words;
no answer leaves the message `queued` with a note, never sent again blindly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from tidings.config import Settings
from tidings.domain.message_changes import Registration
from tidings.domain.sending import SendOutcome, SendStatus
from tidings.intake_urls import intake_base, intake_url
from tidings.logging import get_logger, mask_text
from tidings.providers.send import (
    Answer,
    Sender,
    SenderConfig,
    SendError,
    SendFailure,
    SendRequest,
    answer_to_error,
)
from tidings.providers.send_http import HttpSender
from tidings.providers.senders import make_sender
from tidings.storage import sends
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database
from tidings.storage.limits import column_limit, storable
from tidings.storage.schema import sends as send_table
from tidings.storage.sends import SendRecord

__all__ = [
    "Answer",
    "SendReport",
    "answer_to_error",
    "call",
    "outcome_of",
    "send_message",
    "sender_for",
]

log = get_logger("sending")

# What a send's row holds (provider_message_id is as long in messages).
_ID_LIMIT = column_limit(send_table, "provider_message_id") or 200
_CODE_LIMIT = column_limit(send_table, "error_code") or 100

# Failures that say nothing about the message: the connection (its credentials, its set-up)
# or the provider was the trouble and nothing went out. A campaign tries the contact again
# later; a single send records them as a refusal that is not permanent.
_CONNECTION_TROUBLE = frozenset(
    {SendFailure.RATE_LIMITED, SendFailure.UNAVAILABLE, SendFailure.AUTH, SendFailure.CONFIG}
)


@dataclass(frozen=True)
class SendReport:
    """What became of a send: its record (with the message it made), whether this call sent
    it (False: the idempotency key was used before), and a note when the message could not
    take what the send said (e.g. it belongs to another campaign already)."""

    send: SendRecord
    sent_now: bool
    note: str | None = None


def sender_for(
    settings: Settings, db: Database, connection: StoredConnection, http: httpx.Client | None
) -> HttpSender:
    """The connection's send client, its provider told to post statuses to its intake URL
    (without `http`, for a campaign's send process). SendError (kind CONFIG) when the
    connection lacks what sending needs."""
    callback = intake_url(intake_base(settings, db), connection, with_secret=True)
    config = SenderConfig(
        connection=connection.name,
        options=connection.options,
        secret=connection.secret,
        callback_url=callback,
        timeout=settings.send_timeout_seconds,
    )
    return make_sender(connection.provider, config, http)


def outcome_of(
    result: SendError | str, http_status: int | None = None, *, defer: bool
) -> SendOutcome:
    """The outcome to record: an id (sent), or the error. With `defer`, trouble of the
    connection rather than the message is deferred (a campaign retries the contact)."""
    if isinstance(result, str):
        if len(result) > _ID_LIMIT or storable(result) != result:
            return SendOutcome(
                SendStatus.UNKNOWN,
                http_status=http_status,
                error_kind=SendFailure.BAD_ANSWER.value,
                error_message="the provider answered a message id no store can keep "
                f"({storable(result)[:80]!r}); the message may have been sent",
            )
        return SendOutcome(SendStatus.SENT, provider_message_id=result, http_status=http_status)
    error = result
    if error.outcome_unknown:
        status = SendStatus.UNKNOWN
    elif defer and error.kind in _CONNECTION_TROUBLE:
        status = SendStatus.DEFERRED
    else:
        status = SendStatus.FAILED
    return SendOutcome(
        status,
        provider_message_id=error.provider_message_id if status is SendStatus.UNKNOWN else None,
        http_status=error.http_status,
        error_kind=error.kind.value,
        error_code=storable(error.code)[:_CODE_LIMIT] if error.code else error.code,
        error_message=storable(error.reason) if error.reason else error.reason,
        permanent=error.permanent,
    )


def call(sender: Sender, request: SendRequest) -> Answer:
    """The provider's answer to one send (`answer_to_error` when it raised)."""
    try:
        result = sender.send(request)
    except Exception as error:
        return answer_to_error(sender.provider, error)
    return result.provider_message_id, result.http_status


def send_message(
    db: Database,
    connection: StoredConnection,
    sender: Sender,
    request: SendRequest,
    registration: Registration,
    key: str,
) -> SendReport:
    """Send `request` once for `key` and register its message with `registration`'s campaign,
    recipient, contact and metadata."""
    record, fresh = sends.begin(db, connection.id, key, registration, datetime.now(UTC))
    if not fresh:
        return SendReport(record, sent_now=False)
    answer, http_status = call(sender, request)
    outcome = outcome_of(answer, http_status, defer=False)
    if isinstance(answer, SendError):
        log.warning(
            "send %d through %s to %s %s: %s",
            record.id,
            connection.name,
            mask_text(request.recipient),
            "may have gone out" if outcome.status is SendStatus.UNKNOWN else "was not sent",
            answer,
        )
    finished, note = sends.finish(db, connection, record.id, outcome, datetime.now(UTC))
    return SendReport(finished, sent_now=True, note=note)
