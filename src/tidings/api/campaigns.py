"""`/v1/campaigns` for the campaigns tidings sends: create, add contacts (JSON or CSV), start,
pause, resume, cancel, list contacts. They translate to `campaign_admin`; they decide
nothing. (Reading any campaign's counters is in `api.routes`.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from tidings import campaign_admin
from tidings.api.campaign_models import (
    ContactResultOut,
    ContactsOut,
    CreateCampaign,
    CreatedCampaignOut,
    dispatch_out,
)
from tidings.api.models import CampaignOut, ErrorOut, Page
from tidings.api.paging import Cursor, Limit, fetch_size, page
from tidings.api.support import ApiError, Db, decode_cursor, require_token
from tidings.campaign_admin import RowResult
from tidings.domain.errors import Conflict, Invalid, NotFound
from tidings.domain.sending import Action, ContactStatus
from tidings.storage import campaigns, dispatches
from tidings.storage.campaigns import CampaignView
from tidings.storage.db import Database
from tidings.storage.dispatches import DispatchView

__all__ = ["campaign_out", "campaign_out_of", "router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 404, 409, 413, 422, 503)
}
router = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], responses=_ERRORS)

MAX_CONTACTS = 100_000  # per request; a larger list goes in several
MAX_UPLOAD = 32 * 1024 * 1024


def campaign_out_of(view: CampaignView, dispatch: DispatchView | None) -> CampaignOut:
    """A campaign's counters and rates, and its dispatch when tidings sends it."""
    return CampaignOut(
        key=view.key,
        created_at=view.created_at,
        counts=view.counts,
        rates=view.rates,
        dispatch=dispatch_out(dispatch) if dispatch is not None else None,
    )


def campaign_out(db: Database, key: str) -> CampaignOut:
    """Campaign `key` as the API shows it; 404 when there is none."""
    with db.read() as conn:
        view = campaigns.get_campaign(conn, key)
        dispatch = dispatches.get(conn, key)
    if view is None:
        raise ApiError(404, "not_found", f"no campaign with key {key!r}")
    return campaign_out_of(view, dispatch)


def _translate(error: Exception) -> ApiError:
    if isinstance(error, NotFound):
        return ApiError(404, "not_found", str(error))
    if isinstance(error, Conflict):
        return ApiError(409, "conflict", str(error))
    return ApiError(422, "invalid_request", str(error))


def _results(results: list[RowResult]) -> ContactsOut:
    added = sum(1 for r in results if r.added)
    return ContactsOut(
        added=added,
        errors=len(results) - added,
        results=[
            ContactResultOut(
                row=r.row,
                contact_ref=r.contact_ref,
                status="added" if r.added else "error",
                error=r.error,
            )
            for r in results
        ],
    )


@router.post("/campaigns", status_code=201, response_model=CreatedCampaignOut)
def create_campaign(
    body: CreateCampaign, db: Db, request: Request, response: Response
) -> CreatedCampaignOut:
    """A campaign for tidings to send, in `draft`; contacts may come with it (`contacts` in
    the answer says which were added: 207 when some were not)."""
    now = datetime.now(UTC)
    if body.contacts is not None and len(body.contacts) > MAX_CONTACTS:
        raise ApiError(422, "invalid_request", f"at most {MAX_CONTACTS} contacts per request")
    try:
        campaign_admin.create(
            db,
            key=body.key,
            connection=body.connection,
            text=body.text,
            template=body.template.model_dump() if body.template else None,
            rate_per_minute=body.rate_per_minute,
            start_at=body.start_at.astimezone(UTC) if body.start_at else None,
            name=body.name,
            now=now,
            contacts=body.contacts or (),  # a misspelled {{variable}}: refused, as by the CLI
        )
    except (NotFound, Conflict, Invalid) as error:
        raise _translate(error) from None
    added = None
    if body.contacts:
        region = request.app.state.settings.default_region
        added = _added(db, body.key, list(body.contacts), region, now)
        if added.errors:
            response.status_code = 207
    return CreatedCampaignOut(**campaign_out(db, body.key).model_dump(), contacts=added)


@router.post(
    "/campaigns/{key}/contacts",
    response_model=ContactsOut,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "text/csv": {"schema": {"type": "string"}},
            },
            "description": "A JSON list of contacts ({contact_ref, recipient, name, var1…}) "
            "or a CSV with the header contact_ref,recipient,name,var1,…",
        }
    },
)
async def add_contacts(key: str, db: Db, request: Request, response: Response) -> ContactsOut:
    """Add contacts; one result per row (its number, added or why not). 200 when all were
    added, 207 when some were not."""
    raw = await request.body()
    if len(raw) > MAX_UPLOAD:
        raise ApiError(413, "too_large", f"at most {MAX_UPLOAD // (1024 * 1024)} MiB per upload")
    content_type = request.headers.get("content-type", "")
    region = request.app.state.settings.default_region
    # Checking and writing up to 100,000 rows must not hold up the event loop (the intake).
    out = await run_in_threadpool(_add, db, key, content_type, raw, region)
    response.status_code = 207 if out.errors else 200
    return out


def _add(db: Database, key: str, content_type: str, raw: bytes, region: str | None) -> ContactsOut:
    return _added(db, key, _items(content_type, raw), region, datetime.now(UTC))


def _added(
    db: Database, key: str, items: list[Any], region: str | None, now: datetime
) -> ContactsOut:
    if len(items) > MAX_CONTACTS:
        raise ApiError(422, "invalid_request", f"at most {MAX_CONTACTS} contacts per request")
    try:
        return _results(campaign_admin.add_contacts(db, key, items, region, now))
    except (NotFound, Conflict, Invalid) as error:
        raise _translate(error) from None


def _items(content_type: str, raw: bytes) -> list[Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_body", "the contacts are not UTF-8 text") from None
    if "csv" in content_type or "text/plain" in content_type:
        try:
            return list(campaign_admin.read_csv(text))
        except Invalid as error:
            raise ApiError(422, "invalid_request", str(error)) from None
    try:
        found = json.loads(text)
    except json.JSONDecodeError as error:
        raise ApiError(400, "invalid_json", f"the body is not JSON: {error}") from None
    if isinstance(found, dict) and isinstance(found.get("contacts"), list):
        found = found["contacts"]
    if not isinstance(found, list):
        raise ApiError(422, "invalid_request", "send a JSON list of contacts (or a CSV)")
    return found


def _act(db: Database, key: str, action: Action) -> CampaignOut:
    try:
        campaign_admin.act(db, key, action, datetime.now(UTC))
    except (NotFound, Conflict, Invalid) as error:
        raise _translate(error) from None
    return campaign_out(db, key)


@router.post("/campaigns/{key}/start", response_model=CampaignOut)
def start(key: str, db: Db) -> CampaignOut:
    """Start sending (or schedule it for `start_at`)."""
    return _act(db, key, Action.START)


@router.post("/campaigns/{key}/pause", response_model=CampaignOut)
def pause(key: str, db: Db) -> CampaignOut:
    """Stop sending after the contact being sent; nothing is lost."""
    return _act(db, key, Action.PAUSE)


@router.post("/campaigns/{key}/resume", response_model=CampaignOut)
def resume(key: str, db: Db) -> CampaignOut:
    """Go on where it stopped, at its rate from now (no burst to catch up)."""
    return _act(db, key, Action.RESUME)


@router.post("/campaigns/{key}/cancel", response_model=CampaignOut)
def cancel(key: str, db: Db) -> CampaignOut:
    """Send nothing more; the contacts not sent stay `pending`."""
    return _act(db, key, Action.CANCEL)


@router.get("/campaigns/{key}/contacts", response_model=Page[dict[str, Any]])
def list_contacts(
    key: str,
    db: Db,
    status: Annotated[
        ContactStatus | None, Query(description="pending, sending, sent, failed or unknown")
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """A campaign's contacts in the order they are sent, with each one's status and message."""
    try:
        with db.read() as conn:
            rows = dispatches.list_contacts(
                conn, key, status, decode_cursor(cursor), fetch_size(limit)
            )
    except NotFound as error:
        raise _translate(error) from None
    found, next_cursor = page(rows, limit)
    items = [
        {
            "contact_ref": r.contact_ref,
            "recipient": r.recipient,
            "name": r.name,
            "variables": r.variables,
            "status": r.status,
            "attempts": r.attempts,
            "message_id": r.message_id,
            "error": r.error,
        }
        for r in found
    ]
    return {"items": items, "next_cursor": next_cursor}
