"""Campaign pages: the list (`/`), one campaign with its chart, dispatch and messages, its CSV
export, one message's timeline, and failures grouped by reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from tidings import campaign_admin
from tidings.api.campaigns import campaign_out_of
from tidings.api.routes import Id, message_detail
from tidings.api.support import ApiError
from tidings.dashboard.auth import Posted, Viewer
from tidings.dashboard.charts import rate_chart
from tidings.dashboard.costly import Costly
from tidings.dashboard.csv_export import csv_download
from tidings.dashboard.paging import PAGE, cursor_of, kept, page_of
from tidings.dashboard.rendering import PageError, render
from tidings.domain.errors import Conflict, Invalid, NotFound
from tidings.domain.events import Status
from tidings.domain.recipients import InvalidRecipient, normalise_recipient
from tidings.domain.sending import Action
from tidings.logging import mask_text
from tidings.storage import campaigns, dispatches, message_lists
from tidings.storage.db import Database
from tidings.storage.message_lists import MessageFilter
from tidings.storage.message_summaries import GROUPS, failure_groups, outcomes_by_minute

__all__ = ["router"]

router = APIRouter()
STATES = [s.value for s in Status]
ACTIONS = {a.value: a for a in Action}


@router.get("/")
def campaign_list(request: Request, viewer: Viewer) -> Response:
    db: Database = request.app.state.db
    with db.read() as conn:
        rows = campaigns.list_campaigns(conn, cursor_of(request), PAGE + 1)
        found, after = page_of(rows)
        sent = dispatches.for_campaigns(conn, [v.id for v in found])
    items = [campaign_out_of(v, sent.get(v.id)) for v in found]
    return render(request, "campaigns.html", {"section": "campaigns", "campaigns": items,
                                              "after": after})  # fmt: skip


def _costly(request: Request) -> Costly:
    return kept(request, "costly", lambda: Costly(request.app.state.db))


def _filter(request: Request, key: str) -> MessageFilter:
    q = request.query_params
    state = q.get("state") or None
    if state is not None and state not in STATES:
        raise PageError(400, f"There is no state {state!r}; pick one from the list.")
    recipient = (q.get("recipient") or "").strip() or None
    if recipient is not None:
        try:
            recipient = normalise_recipient(recipient, request.app.state.settings.default_region)
        except InvalidRecipient as error:
            raise PageError(400, f"Recipient: {error}") from None
    return MessageFilter(campaign=key, status=state, recipient=recipient,
                         failure_reason=q.get("reason") or None)  # fmt: skip


@router.get("/campaigns/{key:path}/messages.csv")
def campaign_csv(key: str, request: Request, viewer: Viewer) -> Response:
    db: Database = request.app.state.db
    with db.read() as conn:
        if campaigns.get_campaign(conn, key) is None:
            raise PageError(404, f"There is no campaign {key!r}.")
    full = request.query_params.get("full") == "1"
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in key)[:80]
    where = _filter(request, key)
    return csv_download(
        db,
        f"{safe}-messages.csv",
        CSV_COLUMNS,
        lambda conn, after, limit: message_lists.list_messages(conn, where, after, limit),
        lambda row: _csv_row(row, full),
    )


@router.get("/campaigns/{key:path}")
def campaign_page(key: str, request: Request, viewer: Viewer) -> Response:
    db: Database = request.app.state.db
    where = _filter(request, key)
    with db.read() as conn:  # one snapshot: the counters agree with the messages listed
        view = campaigns.get_campaign(conn, key)
        if view is None:
            raise PageError(404, f"There is no campaign {key!r}.")
        campaign = campaign_out_of(view, dispatches.get(conn, key))
        rows = message_lists.list_messages(conn, where, cursor_of(request), PAGE + 1)
    found, after = page_of(rows)
    costly, campaign_id = _costly(request), view.id
    zone = ZoneInfo(request.app.state.settings.timezone)
    chart = costly.get(
        ("chart", campaign_id),
        lambda conn: rate_chart(outcomes_by_minute(conn, campaign_id), zone),
    )
    groups = costly.get(
        ("failures", campaign_id, None), lambda conn: failure_groups(conn, campaign_id, None)
    )
    return render(
        request,
        "campaign.html",
        {
            "section": "campaigns",
            "campaign": campaign,
            "messages": found,
            "after": after,
            "chart": chart,
            "failures": groups[:10],
            "states": STATES,
            "filters": request.query_params,
        },
    )


@router.post("/campaigns/{key:path}/{action}")
def campaign_action(key: str, action: str, request: Request, form: Posted) -> Response:
    if action not in ACTIONS:
        raise PageError(404, f"Campaigns cannot {action!r}.")
    try:
        campaign_admin.act(request.app.state.db, key, ACTIONS[action], datetime.now(UTC))
    except (NotFound, Conflict, Invalid) as error:
        raise PageError(409 if not isinstance(error, NotFound) else 404, str(error)) from None
    return RedirectResponse(f"/campaigns/{quote(key, safe='')}?done={action}", status_code=303)


CSV_COLUMNS = ["id", "recipient", "contact_ref", "state", "sent_at", "delivered_at", "read_at",
               "failed_at", "failure_code", "failure_reason", "provider_message_id"]  # fmt: skip
TIMES = ("sent_at", "delivered_at", "read_at", "failed_at")


def _csv_row(row: Any, full: bool) -> list[object]:
    """Numbers and emails masked unless asked for in full, wherever they are (a failure reason
    or a contact reference can hold one too)."""
    shown = (lambda v: v) if full else (lambda v: None if v is None else mask_text(v))
    times = [getattr(row, c).isoformat() if getattr(row, c) else "" for c in TIMES]
    return [row.id, shown(row.recipient), shown(row.contact_ref), row.state, *times,
            row.failure_code, shown(row.failure_reason), row.provider_message_id]  # fmt: skip


@router.get("/messages/{message_id}")
def message_page(message_id: Id, request: Request, viewer: Viewer) -> Response:
    try:
        found = message_detail(request.app.state.db, message_id)
    except ApiError:
        raise PageError(404, f"There is no message {message_id}.") from None
    return render(request, "message.html", {"section": "campaigns", "message": found})


@router.get("/failures")
def failures_page(request: Request, viewer: Viewer) -> Response:
    db: Database = request.app.state.db
    key = request.query_params.get("campaign") or None
    connection = request.query_params.get("connection") or None
    campaign_id = None
    with db.read() as conn:
        if key is not None:
            view = campaigns.get_campaign(conn, key)
            if view is None:
                raise PageError(404, f"There is no campaign {key!r}.")
            campaign_id = view.id
    groups = _costly(request).get(
        ("failures", campaign_id, connection),
        lambda conn: failure_groups(conn, campaign_id, connection),
    )
    context = {"section": "failures", "groups": groups, "campaign": key,
               "connection": connection, "most": GROUPS}  # fmt: skip
    return render(request, "failures.html", context)
