"""Connection pages: every connection with its health and WhatsApp session, and one with its
intake URL, backfill state and, while an Evolution instance waits to be linked, its QR code."""

from __future__ import annotations

import re

import segno
from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.responses import Response

from tidings.api.routes import (
    connection_out,
    connections_health,
    connections_out,
    public_base,
)
from tidings.dashboard.auth import Viewer
from tidings.dashboard.rendering import PageError, render
from tidings.domain.errors import NotFound
from tidings.storage import backfill_runs, connections
from tidings.storage.db import Database

__all__ = ["qr_markup", "router"]

router = APIRouter()
_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]+")


def qr_markup(code: str | None) -> Markup | None:
    """The QR to scan: Evolution's own image when it sent one, else its pairing code drawn as
    an SVG here (never anything else from the webhook as markup)."""
    if not code:
        return None
    if _IMAGE.fullmatch(code):
        return Markup('<img alt="QR code to link WhatsApp" src="{}">').format(code)
    svg = segno.make(code, error="m").svg_inline(scale=4, border=2, omitsize=True)
    return Markup('<div role="img" aria-label="QR code to link WhatsApp">{}</div>').format(
        Markup(svg)  # noqa: S704 - segno writes only its own SVG; the code is data inside it
    )


@router.get("/connections")
def connections_page(request: Request, viewer: Viewer) -> Response:
    items = connections_out(request.app.state.db, request)
    return render(request, "connections.html", {"section": "connections", "connections": items})


@router.get("/connections/{name}")
def connection_page(name: str, request: Request, viewer: Viewer) -> Response:
    db: Database = request.app.state.db
    try:
        with db.read() as conn:
            found = connections.get_connection(conn, name)
            runs = backfill_runs.latest_runs(conn, [found.id])
            healths = connections_health(conn, request, [found])
    except NotFound:
        raise PageError(404, f"There is no connection {name!r}.") from None
    item = connection_out(found, public_base(request), runs.get(found.id), healths.get(found.id))
    qr = qr_markup(item.session_qrcode) if item.session_state == "qrcode" else None
    return render(request, "connection.html", {"section": "connections", "c": item, "qr": qr})
