"""`/v1` routes. They translate HTTP to storage calls and back; they decide nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from sqlalchemy import Connection, Row

from tidings.api.campaigns import campaign_out, campaign_out_of
from tidings.api.models import (
    BackfillRunOut,
    BackfillStateOut,
    CampaignOut,
    ConnectionHealthOut,
    ConnectionOut,
    ErrorOut,
    EventOut,
    FailureOut,
    MessageDetail,
    MessageOut,
    Page,
    ReceiptDetail,
    ReceiptOut,
    RegisterMessage,
    RejectionOut,
)
from tidings.api.paging import Cursor, Limit, Since, Until, fetch_size, page
from tidings.api.sending import send, send_out, status_code
from tidings.api.support import ApiError, Db, decode_cursor, require_token
from tidings.backfill import PROVIDERS_WITH_BACKFILL
from tidings.domain.errors import Conflict, Invalid, NotFound
from tidings.domain.events import Status
from tidings.domain.health import ConnectionHealth, has_health
from tidings.domain.recipients import InvalidRecipient, normalise_recipient
from tidings.intake_urls import intake_url
from tidings.providers.registry import get_provider
from tidings.storage import (
    backfill_runs,
    campaigns,
    connections,
    dispatches,
    health,
    inbox,
    message_lists,
    rejections,
    sends,
)
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database
from tidings.storage.inbox import ReceiptStatus
from tidings.storage.limits import column_limit
from tidings.storage.schema import messages as messages_table
from tidings.unit_of_work import register as register_messages

__all__ = ["intake_url", "router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in (
        (400, "A parameter is not valid (e.g. a cursor this API did not return)."),
        (401, "No valid `Authorization: Bearer <token>`."),
        (404, "Not found."),
        (422, "The request does not match this schema."),
        (503, "The store cannot answer right now; retry."),
    )
}

router = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], responses=_ERRORS)

# Ids are 64-bit in the store; a larger number is simply not an id.
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]

_RECIPIENT_LIMIT = column_limit(messages_table, "recipient")


def _recipient(value: str | None, request: Request, where: str) -> str | None:
    """The recipient as it is stored and compared (E.164, or the email with its domain
    lower-cased); 422 naming `where` when it is neither a phone number nor an email."""
    if value is None:
        return None
    try:
        found = normalise_recipient(value, request.app.state.settings.default_region)
    except InvalidRecipient as error:
        raise ApiError(422, "invalid_recipient", f"{where}: {error}") from None
    if _RECIPIENT_LIMIT is not None and len(found) > _RECIPIENT_LIMIT:
        message = f"{where}: at most {_RECIPIENT_LIMIT} characters once normalised"
        raise ApiError(422, "invalid_request", message)
    return found


def message_out(row: Row[Any]) -> dict[str, Any]:
    failure = None
    if row.failure_at is not None:
        failure = FailureOut(
            code=row.failure_code, reason=row.failure_reason, permanent=row.failure_permanent
        )
    return {
        "id": row.id,
        "connection": row.connection_name,
        "provider": row.provider,
        "provider_message_id": row.provider_message_id,
        "campaign": row.campaign_key,
        "channel": row.channel,
        "recipient": row.recipient,
        "contact_ref": row.contact_ref,
        "metadata": row.metadata or {},
        "state": row.state,
        "sequence": row.sequence,
        "created_at": row.created_at,
        "registered_at": row.registered_at,
        "queued_at": row.queued_at,
        "sent_at": row.sent_at,
        "delivered_at": row.delivered_at,
        "read_at": row.read_at,
        "failed_at": row.failed_at,
        "failure": failure,
        "played_at": row.played_at,
        "opened_at": row.opened_at,
        "clicked_at": row.clicked_at,
        "unsubscribed_at": row.unsubscribed_at,
        "complained_at": row.complained_at,
    }


def message_detail(db: Database, message_id: int) -> MessageDetail:
    with db.read() as conn:
        row = message_lists.get_message(conn, message_id)
        if row is None:
            raise ApiError(404, "not_found", f"no message with id {message_id}")
        made_by = sends.by_message(conn, [message_id]).get(message_id)
        events = [
            EventOut(
                kind=e.kind,
                raw_status=e.raw_status,
                occurred_at=e.occurred_at,
                received_at=e.received_at,
                receipt=e.receipt_id,
                details=e.details or {},
            )
            for e in message_lists.list_events(conn, message_id)
        ]
    send = send_out(made_by) if made_by is not None else None
    return MessageDetail(**message_out(row), events=events, send=send)


@router.post(
    "/messages",
    status_code=201,
    response_model=MessageDetail,
    responses={200: {"model": MessageDetail}, 409: {"model": ErrorOut}},
)
def register(
    body: RegisterMessage,
    db: Db,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> MessageDetail:
    """Register a message sent elsewhere: 201 when new, 200 when already registered.

    With `"send": true`, send it through the connection's provider first: 201 with the
    message as the provider's answer left it (`sent`, or `failed` with the provider's
    reason and `send.http_status`/`error_code`), 202 when no answer came (kept `queued`, never
    sent again blindly), 200 when the `Idempotency-Key` was used before (nothing is sent)."""
    recipient = _recipient(body.recipient, request, "body.recipient")
    if body.send:
        assert recipient is not None  # the model requires one to send
        report = send(body, recipient, idempotency_key, db, request.app.state.settings)
        if report.send.message_id is None:
            raise ApiError(
                409,
                "send_in_progress",
                f"a send with Idempotency-Key {report.send.idempotency_key!r} has not been "
                f"answered yet (status {report.send.status.value}); try again shortly",
            )
        response.status_code = status_code(report)
        return message_detail(db, report.send.message_id)
    now = datetime.now(UTC)
    try:
        with db.read() as conn:
            connection = connections.get_connection(conn, body.connection)
        [(message_id, first)] = register_messages(
            db,
            connection,
            [body.registration(recipient, connection.provider)],
            now,
        )
    except NotFound as error:
        raise ApiError(404, "unknown_connection", str(error)) from None
    except Conflict as error:
        raise ApiError(409, "campaign_conflict", str(error)) from None
    except Invalid as error:
        raise ApiError(422, "invalid_request", str(error)) from None
    response.status_code = 201 if first else 200
    return message_detail(db, message_id)


@router.get("/messages", response_model=Page[MessageOut])
def list_messages(
    db: Db,
    request: Request,
    campaign: str | None = None,
    status: Status | None = None,
    channel: str | None = None,
    recipient: Annotated[
        str | None,
        Query(description="A phone number (any spelling: +, spaces, dashes) or an email."),
    ] = None,
    connection: str | None = None,
    provider_message_id: str | None = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Messages, newest first; `since`/`until` bound when they were first known (created)."""
    where = message_lists.MessageFilter(
        campaign=campaign,
        status=status.value if status else None,
        channel=channel,
        recipient=_recipient(recipient, request, "query.recipient"),
        connection=connection,
        provider_message_id=provider_message_id,
        since=since,
        until=until,
    )
    with db.read() as conn:
        rows = message_lists.list_messages(conn, where, decode_cursor(cursor), fetch_size(limit))
        found, next_cursor = page(rows, limit)
        made_by = sends.by_message(conn, [r.id for r in found])
    items = [
        {**message_out(r), "send": send_out(made_by[r.id]) if r.id in made_by else None}
        for r in found
    ]
    return {"items": items, "next_cursor": next_cursor}


@router.get("/messages/{message_id}", response_model=MessageDetail)
def get_message(message_id: Id, db: Db) -> MessageDetail:
    return message_detail(db, message_id)


@router.get("/campaigns", response_model=Page[CampaignOut])
def list_campaigns(db: Db, limit: Limit = 100, cursor: Cursor = None) -> dict[str, Any]:
    with db.read() as conn:
        views = campaigns.list_campaigns(conn, decode_cursor(cursor), fetch_size(limit))
        found, next_cursor = page(views, limit)
        sent = dispatches.for_campaigns(conn, [v.id for v in found])
    items = [campaign_out_of(v, sent.get(v.id)) for v in found]
    return {"items": items, "next_cursor": next_cursor}


@router.get("/campaigns/{key}", response_model=CampaignOut)
def get_campaign(key: str, db: Db) -> CampaignOut:
    """A campaign's counters and rates; for a campaign tidings sends, its dispatch too."""
    return campaign_out(db, key)


def connection_names(db: Database) -> dict[int, str]:
    with db.read() as conn:
        return {c.id: c.name for c in connections.list_connections(conn)}


def receipt_out(row: Row[Any], names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "connection": names.get(row.connection_id),
        "provider": row.provider,
        "received_at": row.received_at,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at,
        "processed_at": row.processed_at,
        "error": row.error,
        "notes": row.notes,
        "source": row.source,
    }


@router.get("/receipts", response_model=Page[ReceiptOut])
def list_receipts(
    db: Db,
    status: ReceiptStatus | None = None,
    connection: str | None = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Receipts, newest first; `since`/`until` bound when they were received."""
    names = connection_names(db)
    connection_id = None
    if connection is not None:
        ids = [i for i, n in names.items() if n == connection]
        if not ids:
            return {"items": [], "next_cursor": None}
        connection_id = ids[0]
    with db.read() as conn:
        rows = inbox.list_receipts(
            conn, status, connection_id, decode_cursor(cursor), fetch_size(limit), since, until
        )
    found, next_cursor = page(rows, limit)
    return {"items": [receipt_out(r, names) for r in found], "next_cursor": next_cursor}


@router.get("/receipts/{receipt_id}", response_model=ReceiptDetail)
def get_receipt(receipt_id: Id, db: Db) -> dict[str, Any]:
    with db.read() as conn:
        row = inbox.get_receipt(conn, receipt_id)
    if row is None:
        raise ApiError(404, "not_found", f"no receipt with id {receipt_id}")
    return {
        **receipt_out(row, connection_names(db)),
        "content_type": row.content_type,
        "headers": row.headers or {},
        "body": bytes(row.body).decode("utf-8", errors="replace"),
    }


@router.post("/receipts/{receipt_id}/replay", status_code=202, response_model=ReceiptOut)
def replay_receipt(receipt_id: Id, db: Db, request: Request) -> dict[str, Any]:
    """Apply a receipt again (safe: its events are deduplicated)."""
    with db.write() as conn:
        if inbox.get_receipt(conn, receipt_id) is None:
            raise ApiError(404, "not_found", f"no receipt with id {receipt_id}")
        inbox.replay(conn, ids=[receipt_id], status=None)
        row = inbox.get_receipt(conn, receipt_id)
    request.app.state.wake_worker()
    assert row is not None
    return receipt_out(row, connection_names(db))


_SECRET_OPTIONS = ("api_key", "secret", "token", "password")


def backfill_run_out(row: Row[Any], connection: str) -> BackfillRunOut:
    return BackfillRunOut(
        connection=connection,
        **{
            name: getattr(row, name) for name in BackfillRunOut.model_fields if name != "connection"
        },
    )


def _backfill_out(c: StoredConnection, last_run: Row[Any] | None) -> BackfillStateOut | None:
    if c.provider not in PROVIDERS_WITH_BACKFILL:
        return None
    rejected = c.credentials_rejected
    return BackfillStateOut(
        credentials_rejected=rejected,
        credentials_rejected_at=c.credentials_rejected_at if rejected else None,
        credentials_rejected_error=c.credentials_rejected_error if rejected else None,
        last_run=backfill_run_out(last_run, c.name) if last_run is not None else None,
    )


def connections_health(
    conn: Connection, request: Request, found: Sequence[StoredConnection]
) -> dict[int, ConnectionHealth]:
    """The health of those of `found` that send (every provider but callyzer), as of now."""
    settings = request.app.state.settings
    ids = [c.id for c in found if has_health(get_provider(c.provider).channel)]
    return health.connections_health(
        conn, ids, datetime.now(UTC), settings.timezone, settings.health_threshold
    )


def connection_out(
    c: StoredConnection,
    base: str,
    last_run: Row[Any] | None = None,
    found_health: ConnectionHealth | None = None,
) -> ConnectionOut:
    return ConnectionOut(
        name=c.name,
        provider=c.provider,
        auth_scheme=get_provider(c.provider).auth_scheme,
        intake_url=intake_url(base, c, with_secret=False),
        options={k: ("***" if k.endswith(_SECRET_OPTIONS) else v) for k, v in c.options.items()},
        created_at=c.created_at,
        last_event_at=c.last_event_at,
        session_state=c.session_state,
        session_qrcode=c.session_qrcode,
        session_updated_at=c.session_updated_at,
        backfill=_backfill_out(c, last_run),
        health=ConnectionHealthOut(**asdict(found_health)) if found_health else None,
    )


def public_base(request: Request) -> str:
    public: str | None = request.app.state.settings.public_url
    return public or str(request.base_url)


def connections_out(db: Database, request: Request) -> list[ConnectionOut]:
    """Every connection in use, as the API and the dashboard show it."""
    with db.read() as conn:
        found = connections.active_connections(conn)
        runs = backfill_runs.latest_runs(conn, [c.id for c in found])
        healths = connections_health(conn, request, found)
    base = public_base(request)
    return [connection_out(c, base, runs.get(c.id), healths.get(c.id)) for c in found]


@router.get("/connections", response_model=Page[ConnectionOut])
def list_connections(db: Db, request: Request) -> dict[str, Any]:
    return {"items": connections_out(db, request), "next_cursor": None}


@router.get("/connections/{name}", response_model=ConnectionOut)
def get_connection(name: str, db: Db, request: Request) -> ConnectionOut:
    try:
        with db.read() as conn:
            found = connections.get_connection(conn, name)
            runs = backfill_runs.latest_runs(conn, [found.id])
            healths = connections_health(conn, request, [found])
    except NotFound as error:
        raise ApiError(404, "not_found", str(error)) from None
    return connection_out(found, public_base(request), runs.get(found.id), healths.get(found.id))


@router.get("/connections/{name}/backfill-runs", response_model=Page[BackfillRunOut])
def list_backfill_runs(
    name: str, db: Db, limit: Limit = 100, cursor: Cursor = None
) -> dict[str, Any]:
    """The connection's backfill runs (the Callyzer verification poll), newest first: window,
    outcome and counts of each."""
    try:
        with db.read() as conn:
            found = connections.get_connection(conn, name)
            rows = backfill_runs.list_runs(conn, found.id, decode_cursor(cursor), fetch_size(limit))
    except NotFound as error:
        raise ApiError(404, "not_found", str(error)) from None
    runs, next_cursor = page(rows, limit)
    return {"items": [backfill_run_out(r, name) for r in runs], "next_cursor": next_cursor}


@router.get("/rejections", response_model=Page[RejectionOut])
def list_rejections(
    db: Db, since: Since = None, until: Until = None, limit: Limit = 100, cursor: Cursor = None
) -> dict[str, Any]:
    """Refused intake requests, newest first; `since`/`until` bound when they arrived."""
    with db.read() as conn:
        rows = rejections.list_rejections(
            conn, decode_cursor(cursor), fetch_size(limit), since, until
        )
    found, next_cursor = page(rows, limit)
    return {"items": [dict(r._mapping) for r in found], "next_cursor": next_cursor}
