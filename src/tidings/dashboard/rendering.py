"""How pages are drawn: the Jinja2 environment, its filters, and HTML error pages.

Phone numbers and emails go through `masked` everywhere: a page never carries one in full (the
reveal button asks the server for one at a time).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from tidings.api.support import encode_cursor
from tidings.logging import mask_text

__all__ = [
    "STATIC",
    "PageError",
    "error_page",
    "install_error_pages",
    "is_page",
    "refuse_nul",
    "render",
    "with_query",
]

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")


class PageError(Exception):
    """A page that cannot be shown (unknown campaign, wrong form…): an HTML page with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _masked(value: object) -> str:
    return "" if value is None else mask_text(str(value))


def _percent(value: float | None) -> str:
    return "\u2013" if value is None else f"{value * 100:.1f}%"


def _when(value: datetime | None, zone: str = "UTC") -> str:
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | int | None) -> str:
    if value is None:
        return ""
    minutes, seconds = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


templates.env.filters["masked"] = _masked
templates.env.filters["segment"] = lambda value: quote(str(value), safe="")  # one path part
templates.env.filters["percent"] = _percent
templates.env.filters["when"] = _when
templates.env.filters["duration"] = _seconds
templates.env.globals["cursor_for"] = encode_cursor


def refuse_nul(request: Request) -> None:
    """A NUL byte in a dashboard URL is a clear 400: no store keeps one (PostgreSQL refuses it
    outright), so it can name nothing."""
    path: str = request.scope.get("path", "")
    if "\x00" in path or any("\x00" in v for v in request.query_params.values()):
        raise PageError(400, "The link holds a character that cannot be stored (NUL); check it.")


def with_query(request: Request, **changes: object) -> str:
    """This page's URL with some query parameters changed (None drops one): filters and
    pagination stay in the URL, so every view can be shared as a link."""
    params = {k: v for k, v in request.query_params.items()}
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = str(value)
    query = urlencode(params)
    return f"{request.url.path}?{query}" if query else request.url.path


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    status: int = 200,
    live: bool = True,
) -> Response:
    """A page. With a viewer and `live`, it opens the live stream, telling it what the store
    looked like before the page read it (`auth.viewer`; one cheap read)."""
    viewer = getattr(request.state, "viewer", None)
    settings = request.app.state.settings
    live_url = None
    if viewer is not None:
        from tidings.dashboard.live import LIVE_PATH, page_tag  # live imports this module

        seen = getattr(request.state, "seen", None) or page_tag(request.app.state.db)
        live_url = f"{LIVE_PATH}?seen={seen}" if live else LIVE_PATH
    full = {
        "request": request,
        "viewer": viewer,
        "live_url": live_url,
        "zone": settings.timezone,
        "with_query": lambda **changes: with_query(request, **changes),
        **context,
    }
    response = templates.TemplateResponse(request, template, full, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = _POLICY
    return response


# Scripts and styles from this server only; images may be inline (a QR code sent as data:).
_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
_NOT_PAGES = ("/v1", "/hooks/", "/openapi.json", "/docs", "/redoc", "/metrics", "/healthz",
              "/readyz", "/static/", "/live", "/reveal/")  # fmt: skip


def is_page(request: Request) -> bool:
    """Whether an error here should be an HTML page: a browser asking for a dashboard path."""
    path = request.url.path
    return not path.startswith(_NOT_PAGES) and "text/html" in request.headers.get("accept", "")


def error_page(request: Request, status: int, message: str) -> Response:
    """Also drawn on the event loop (exception handlers): no store read for the live tag."""
    return render(request, "error.html", {"message": message}, status=status, live=False)


def install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(PageError)
    async def _page_error(request: Request, error: PageError) -> Response:
        return error_page(request, error.status, error.message)
