"""`/v1` routes of outbound webhooks: subscriptions, and the deliveries made for them.

They translate HTTP to `subscription_admin` and `storage.deliveries` and back; the checks
(a URL tidings may send to, known event types) are the same as the CLI's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from tidings import subscription_admin
from tidings.api.models import ErrorOut, Page
from tidings.api.paging import Cursor, Limit, Since, as_utc, fetch_size, page
from tidings.api.routes import _ERRORS
from tidings.api.support import ApiError, Db, decode_cursor, require_token
from tidings.config import Settings
from tidings.domain.errors import Invalid, NotFound
from tidings.domain.outbound import EVENT_TYPES
from tidings.storage import connections, deliveries
from tidings.storage.db import Database
from tidings.storage.deliveries import DeliveryStatus
from tidings.storage.subscriptions import StoredSubscription, get_subscription, list_subscriptions

__all__ = ["router"]

router = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], responses=_ERRORS)

Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
_YEAR = 365 * 86400.0

_TYPES = (
    "Event types, exact (`message.delivered`) or a family (`message.*`), or `*` for all "
    f"(the default). Known: {', '.join(EVENT_TYPES)}."
)


# A misspelt field ("enabld") must not be dropped silently (a 200 that changed nothing): it
# is refused by name, as a registration's is.
_FORBID = ConfigDict(extra="forbid")


class NewSubscription(BaseModel):
    model_config = _FORBID

    url: str = Field(description="Where to POST events: an http(s) URL on a public address.")
    event_types: list[str] = Field(default_factory=list, description=_TYPES)
    connection: str | None = Field(default=None, description="Only this connection's events.")
    campaign: str | None = Field(default=None, description="Only this campaign's messages.")
    description: str | None = None
    include_contact: bool = Field(
        default=False,
        description="Send recipients' phone numbers and emails as they are; masked otherwise.",
    )


class SubscriptionChange(BaseModel):
    """Fields given are changed (null clears connection, campaign or description); others
    stay. Enabling a disabled subscription sends its waiting deliveries again."""

    model_config = _FORBID

    url: str | None = None
    event_types: list[str] | None = None
    connection: str | None = None
    campaign: str | None = None
    description: str | None = None
    include_contact: bool | None = None
    enabled: bool | None = None


class SubscriptionOut(BaseModel):
    id: int
    url: str
    event_types: list[str]
    connection: str | None
    campaign: str | None
    description: str | None
    include_contact: bool
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the secret before the last rotation signs too."
    )
    created_at: datetime
    updated_at: datetime


class SubscriptionWithSecret(SubscriptionOut):
    secret: str = Field(description="The signing secret (`whsec_…`), shown only here.")


class Rotation(BaseModel):
    model_config = _FORBID

    overlap_seconds: float | None = Field(
        default=None,
        ge=0,
        le=_YEAR,
        allow_inf_nan=False,
        description="How long the old secret keeps signing too (default "
        "TIDINGS_OUTBOUND_SECRET_OVERLAP_SECONDS, 24 h); 0 retires it at once.",
    )


class ReplayRange(BaseModel):
    model_config = _FORBID

    since: Annotated[AwareDatetime, AfterValidator(as_utc)] = Field(
        description="Events recorded from this time on (inclusive)."
    )
    until: Annotated[AwareDatetime | None, AfterValidator(as_utc)] = Field(
        default=None, description="Events recorded before this time (exclusive); default now."
    )


class Replayed(BaseModel):
    replayed: int = Field(description="How many deliveries are queued to be sent again.")


class AttemptOut(BaseModel):
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response_body: str | None = Field(description="The first 1 KiB of the answer.")


class DeliveryOut(BaseModel):
    id: int
    subscription: int
    event_type: str
    webhook_id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    attempt_log: list[AttemptOut] = Field(description="Every attempt, oldest first.")


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _out(db: Database, found: StoredSubscription) -> dict[str, Any]:
    name = None
    if found.connection_id is not None:
        with db.read() as conn:
            names = {c.id: c.name for c in connections.list_connections(conn)}
        name = names.get(found.connection_id)
    return {
        "id": found.id,
        "url": found.url,
        "event_types": list(found.event_types),
        "connection": name,
        "campaign": found.campaign,
        "description": found.description,
        "include_contact": found.include_contact,
        "enabled": found.enabled,
        "disabled_reason": found.disabled_reason,
        "failing_since": found.failing_since,
        "previous_secret_expires_at": found.previous_secret_expires_at,
        "created_at": found.created_at,
        "updated_at": found.updated_at,
    }


def _refused(error: Exception) -> ApiError:
    if isinstance(error, NotFound):
        return ApiError(422, "unknown_connection", str(error))
    return ApiError(422, "invalid_subscription", str(error))


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=SubscriptionWithSecret,
    responses={422: {"model": ErrorOut}},
)
def add_subscription(body: NewSubscription, db: Db, request: Request) -> dict[str, Any]:
    """Subscribe a URL to events. The answer carries the signing secret, once; a URL that
    resolves to a private, loopback or other internal address is refused (422)."""
    try:
        added = subscription_admin.add(
            db,
            _settings(request),
            body.url,
            body.event_types,
            body.connection,
            body.campaign,
            body.description,
            body.include_contact,
            now=datetime.now(UTC),
        )
    except (Invalid, NotFound) as error:
        raise _refused(error) from None
    return {**_out(db, added), "secret": added.secret}


@router.get("/subscriptions", response_model=Page[SubscriptionOut])
def list_all(db: Db) -> dict[str, Any]:
    with db.read() as conn:
        found = list_subscriptions(conn)
    return {"items": [_out(db, s) for s in found], "next_cursor": None}


def _get(db: Database, subscription_id: int) -> StoredSubscription:
    try:
        with db.read() as conn:
            return get_subscription(conn, subscription_id)
    except NotFound as error:
        raise ApiError(404, "not_found", str(error)) from None


@router.get("/subscriptions/{subscription_id}", response_model=SubscriptionOut)
def get_one(subscription_id: Id, db: Db) -> dict[str, Any]:
    return _out(db, _get(db, subscription_id))


@router.patch("/subscriptions/{subscription_id}", response_model=SubscriptionOut)
def change_subscription(
    subscription_id: Id, body: SubscriptionChange, db: Db, request: Request
) -> dict[str, Any]:
    _get(db, subscription_id)
    given = body.model_dump(exclude_unset=True)
    for name in ("url", "event_types", "include_contact", "enabled"):
        if name in given and given[name] is None:
            raise ApiError(422, "invalid_subscription", f"{name} cannot be null")
    try:
        changed = subscription_admin.change(
            db, _settings(request), subscription_id, now=datetime.now(UTC), **given
        )
    except (Invalid, NotFound) as error:
        raise _refused(error) from None
    return _out(db, changed)


@router.delete("/subscriptions/{subscription_id}", status_code=204, response_class=Response)
def remove_subscription(subscription_id: Id, db: Db) -> Response:
    """Delete a subscription with its deliveries; nothing more is sent to it."""
    try:
        subscription_admin.remove(db, subscription_id)
    except NotFound as error:
        raise ApiError(404, "not_found", str(error)) from None
    return Response(status_code=204)


@router.post(
    "/subscriptions/{subscription_id}/rotate-secret", response_model=SubscriptionWithSecret
)
def rotate_secret(
    subscription_id: Id,
    db: Db,
    request: Request,
    body: Annotated[Rotation | None, Body()] = None,
) -> dict[str, Any]:
    """A new signing secret (in the answer, once). The old one keeps signing beside it for
    the overlap window, so both verify until the receiver has switched."""
    overlap = body.overlap_seconds if body and body.overlap_seconds is not None else None
    if overlap is None:
        overlap = _settings(request).outbound_secret_overlap_seconds
    try:
        rotated = subscription_admin.rotate(db, subscription_id, overlap, now=datetime.now(UTC))
    except NotFound as error:
        raise ApiError(404, "not_found", str(error)) from None
    return {**_out(db, rotated), "secret": rotated.secret}


@router.post("/subscriptions/{subscription_id}/replay", status_code=202, response_model=Replayed)
def replay_range(
    subscription_id: Id, body: ReplayRange, db: Db, request: Request
) -> dict[str, int]:
    """Send again every event of this subscription recorded in [since, until), with the same
    webhook ids (receivers that already have one can drop it)."""
    _get(db, subscription_id)
    until = body.until or datetime.now(UTC)
    if until <= body.since:
        raise ApiError(422, "invalid_range", "until must be after since")
    count = deliveries.replay_range(db, subscription_id, body.since, until, datetime.now(UTC))
    request.app.state.wake_worker()
    return {"replayed": count}


@router.get("/deliveries", response_model=Page[DeliveryOut])
def list_deliveries(
    db: Db,
    subscription: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    status: DeliveryStatus | None = None,
    event_type: str | None = None,
    since: Since = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Deliveries, newest first, each with its attempts; `since` bounds when they were made."""
    where = deliveries.DeliveryFilter(subscription, status, event_type, since)
    with db.read() as conn:
        rows = deliveries.list_deliveries(conn, where, decode_cursor(cursor), fetch_size(limit))
        found, next_cursor = page(rows, limit)
        attempts = deliveries.attempts_of(conn, [row.id for row in found])
    return {
        "items": [delivery_out(row, attempts.get(row.id, [])) for row in found],
        "next_cursor": next_cursor,
    }


@router.get("/deliveries/{delivery_id}", response_model=DeliveryOut)
def get_delivery(delivery_id: Id, db: Db) -> dict[str, Any]:
    with db.read() as conn:
        row = deliveries.get_delivery(conn, delivery_id)
        if row is None:
            raise ApiError(404, "not_found", f"no delivery with id {delivery_id}")
        attempts = deliveries.attempts_of(conn, [delivery_id])
    return delivery_out(row, attempts.get(delivery_id, []))


@router.post("/deliveries/{delivery_id}/replay", status_code=202, response_model=DeliveryOut)
def replay_delivery(delivery_id: Id, db: Db, request: Request) -> dict[str, Any]:
    """Send a delivery again now, whatever its status, with the same webhook id; it gets a
    fresh retry schedule."""
    count = deliveries.replay(db, [delivery_id], datetime.now(UTC))
    if not count:
        raise ApiError(404, "not_found", f"no delivery with id {delivery_id}")
    request.app.state.wake_worker()
    return get_delivery(delivery_id, db)


def delivery_out(row: Any, attempts: list[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "subscription": row.subscription_id,
        "event_type": row.type,
        "webhook_id": row.webhook_id,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "delivered_at": row.delivered_at,
        "created_at": row.created_at,
        "attempt_log": [
            {
                "attempted_at": a.attempted_at,
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "error": a.error,
                "response_body": a.response_body,
            }
            for a in attempts
        ],
    }
