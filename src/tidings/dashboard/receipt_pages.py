"""Receipts (raw webhooks as they arrived, dead-lettered ones first) and outbound deliveries,
each with a replay button."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from tidings.api.outbound import delivery_out
from tidings.api.routes import Id, connection_names, receipt_out
from tidings.dashboard.auth import Posted, Viewer
from tidings.dashboard.paging import PAGE, cursor_of
from tidings.dashboard.rendering import PageError, render
from tidings.logging import mask_text, mask_value
from tidings.storage import deliveries, inbox, subscriptions
from tidings.storage.db import Database
from tidings.storage.deliveries import DeliveryStatus
from tidings.storage.inbox import ReceiptStatus

__all__ = ["router"]

router = APIRouter()
# Counted on each page view: the few in each of these states. Done receipts and delivered
# deliveries are most of their tables, so they are listed, never counted.
_RECEIPTS_COUNTED = [s for s in ReceiptStatus if s is not ReceiptStatus.DONE]
_DELIVERIES_COUNTED = [s for s in DeliveryStatus if s is not DeliveryStatus.DELIVERED]


def _choice(request: Request, name: str, kinds: type[Any]) -> Any:
    value = request.query_params.get(name) or None
    if value is None:
        return None
    try:
        return kinds(value)
    except ValueError:
        allowed = ", ".join(k.value for k in kinds)
        raise PageError(400, f"There is no {name} {value!r}; use one of {allowed}.") from None


@router.get("/receipts")
def receipts_page(request: Request, viewer: Viewer) -> Response:
    db: Database = request.app.state.db
    status = _choice(request, "status", ReceiptStatus)
    names = connection_names(db)
    connection = request.query_params.get("connection") or None
    connection_id = next((i for i, n in names.items() if n == connection), None)
    rows: list[Any] = []
    if connection is None or connection_id is not None:
        with db.read() as conn:
            rows = inbox.list_receipts(conn, status, connection_id, cursor_of(request), PAGE + 1)
    after = rows[PAGE - 1].id if len(rows) > PAGE else None
    with db.read() as conn:
        counts = inbox.count_with(conn, _RECEIPTS_COUNTED)
    return render(request, "receipts.html", {
        "section": "receipts",
        "receipts": [receipt_out(r, names) for r in rows[:PAGE]],
        "after": after,
        "status": status.value if status else "",
        "statuses": [s.value for s in ReceiptStatus],
        "counts": counts,
        "connection": connection or "",
        "connections": sorted(set(names.values())),
    })  # fmt: skip


@router.get("/receipts/{receipt_id}")
def receipt_page(receipt_id: Id, request: Request, viewer: Viewer) -> Response:
    db: Database = request.app.state.db
    with db.read() as conn:
        row = inbox.get_receipt(conn, receipt_id)
    if row is None:
        raise PageError(404, f"There is no receipt {receipt_id}.")
    receipt = receipt_out(row, connection_names(db))
    body = mask_text(bytes(row.body).decode("utf-8", errors="replace"))
    headers = mask_value(dict(row.headers or {}))
    return render(request, "receipt.html", {"section": "receipts", "receipt": receipt,
                                            "body": body, "headers": headers})  # fmt: skip


@router.post("/receipts/{receipt_id}/replay")
def replay_receipt(receipt_id: Id, request: Request, form: Posted) -> Response:
    db: Database = request.app.state.db
    with db.write() as conn:
        if inbox.get_receipt(conn, receipt_id) is None:
            raise PageError(404, f"There is no receipt {receipt_id}.")
        inbox.replay(conn, ids=[receipt_id], status=None)
    request.app.state.wake_worker()
    return RedirectResponse(f"/receipts/{receipt_id}?replayed=1", status_code=303)


@router.get("/deliveries")
def deliveries_page(request: Request, viewer: Viewer) -> Response:
    db: Database = request.app.state.db
    status = _choice(request, "status", DeliveryStatus)
    where = deliveries.DeliveryFilter(None, status, None, None)
    with db.read() as conn:
        rows = deliveries.list_deliveries(conn, where, cursor_of(request), PAGE + 1)
        found = rows[:PAGE]
        attempts = deliveries.attempts_of(conn, [r.id for r in found])
        counts = deliveries.count_with(conn, _DELIVERIES_COUNTED)
        has_subscriptions = bool(subscriptions.list_subscriptions(conn))
    after = rows[PAGE - 1].id if len(rows) > PAGE else None
    return render(request, "deliveries.html", {
        "section": "deliveries",
        "deliveries": [delivery_out(r, attempts.get(r.id, [])) for r in found],
        "after": after,
        "status": status.value if status else "",
        "statuses": [s.value for s in DeliveryStatus],
        "counts": counts,
        "has_subscriptions": has_subscriptions,
    })  # fmt: skip


@router.post("/deliveries/{delivery_id}/replay")
def replay_delivery(delivery_id: Id, request: Request, form: Posted) -> Response:
    if not deliveries.replay(request.app.state.db, [delivery_id], datetime.now(UTC)):
        raise PageError(404, f"There is no delivery {delivery_id}.")
    request.app.state.wake_worker()
    back = request.headers.get("referer") or "/deliveries"
    target = back if back.startswith(str(request.base_url)) else "/deliveries"
    return RedirectResponse(target, status_code=303)
