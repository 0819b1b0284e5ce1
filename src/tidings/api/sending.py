"""`POST /v1/messages` with `"send": true`: translate the request into one send, and its
record into an answer. Deciding what a send records is `tidings.sending`'s job."""

from __future__ import annotations

import uuid

import httpx

from tidings.api.models import RegisterMessage, SendOut
from tidings.api.support import ApiError
from tidings.config import Settings
from tidings.domain.errors import Conflict, NotFound
from tidings.domain.sending import SendStatus
from tidings.providers.send import SendError, SendRequest
from tidings.providers.senders import SENDS_TEMPLATES
from tidings.sending import SendReport, send_message, sender_for
from tidings.storage import connections
from tidings.storage.db import Database
from tidings.storage.limits import column_limit
from tidings.storage.schema import sends as sends_table
from tidings.storage.sends import SendRecord

__all__ = ["send", "send_out", "status_code"]

_KEY_LIMIT = column_limit(sends_table, "idempotency_key") or 200


def send(
    body: RegisterMessage,
    recipient: str,
    idempotency_key: str | None,
    db: Database,
    settings: Settings,
) -> SendReport:
    """Send the body's message once per idempotency key (a fresh one when none is given).
    422 when the connection cannot send (saying which option to set) or the request is
    incomplete for its provider (a template where it sends text only); 404 for an unknown
    connection."""
    key = (idempotency_key or "").strip() or f"api:{uuid.uuid4()}"
    if len(key) > _KEY_LIMIT:
        raise ApiError(422, "invalid_request", f"Idempotency-Key: at most {_KEY_LIMIT} characters")
    if key.startswith("campaign:"):  # the keys of campaign contacts' sends
        raise ApiError(422, "invalid_request", "Idempotency-Key: 'campaign:' keys are tidings' own")
    try:
        with db.read() as conn:
            connection = connections.get_connection(conn, body.connection)
    except NotFound as error:
        raise ApiError(404, "unknown_connection", str(error)) from None
    template = body.template
    try:
        request = SendRequest(
            recipient=recipient,
            text=body.text,
            template=template.name if template else None,
            language=template.language if template else None,
            variables=template.variables if template else (),
            subject=body.subject,
            campaign=body.campaign,
            contact_ref=body.contact_ref,
            metadata={str(k): str(v) for k, v in (body.metadata or {}).items()},
            idempotency_key=key,
        )
        # Straight to the provider, as a campaign's sends go (`providers/send_async.py`).
        with httpx.Client(follow_redirects=False, trust_env=False) as http:
            sender = sender_for(settings, db, connection, http)
            # As `campaign create` refuses it: a template the client cannot send is the
            # request's fault, not a failed message counted against the connection.
            if template is not None and connection.provider not in SENDS_TEMPLATES:
                raise ApiError(
                    422,
                    "cannot_send",
                    f"{connection.provider} sends text only: give text instead of a template",
                )
            return send_message(
                db,
                connection,
                sender,
                request,
                body.registration(recipient, connection.provider),
                key,
            )
    except SendError as error:  # found before anything was sent: nothing is recorded
        raise ApiError(422, "cannot_send", str(error)) from None
    except Conflict as error:  # the key was used for another message: nothing is sent
        raise ApiError(422, "idempotency_key_reused", str(error)) from None


def status_code(report: SendReport) -> int:
    """201 for a message this request made; 200 when the key was used before; 202 when the
    provider's answer never came (the message stays queued)."""
    if not report.sent_now:
        return 200
    return 202 if report.send.status is SendStatus.UNKNOWN else 201


def send_out(record: SendRecord) -> SendOut:
    return SendOut(
        status=record.status.value,
        idempotency_key=record.idempotency_key,
        http_status=record.http_status,
        error_kind=record.error_kind,
        error_code=record.error_code,
        error_message=record.error_message,
        created_at=record.created_at,
        finished_at=record.finished_at,
    )
