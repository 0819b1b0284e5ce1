"""One phone number or email in full, asked for by a logged-in person (the reveal button):
pages only ever carry them masked."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from tidings.api.routes import Id
from tidings.dashboard.auth import Viewer
from tidings.logging import get_logger
from tidings.storage import message_lists

__all__ = ["router"]

router = APIRouter()
log = get_logger("dashboard")


def revealed(value: str | None, what: str, viewer_email: str) -> Response:
    if value is None:
        return JSONResponse({"error": f"no {what}"}, status_code=404)
    log.info("revealed %s to %s", what, viewer_email)  # masked by the log filter
    return JSONResponse({"value": value}, headers={"Cache-Control": "no-store"})


@router.get("/reveal/message/{message_id}")
def reveal_message(message_id: Id, request: Request, viewer: Viewer) -> Response:
    with request.app.state.db.read() as conn:
        row = message_lists.get_message(conn, message_id)
    return revealed(row.recipient if row else None, f"recipient of message {message_id}",
                    viewer.email)  # fmt: skip
