"""Logging in and out, the session a page runs under, and the CSRF check on every form.

The session cookie is HttpOnly and SameSite=Lax, and Secure when the dashboard is reached over
HTTPS (directly, behind a proxy that says so, or as TIDINGS_PUBLIC_URL says). Every form carries
the session's CSRF token; the login form, which comes before any session, carries a token that
must match a cookie of its own (double submit).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from tidings import user_admin
from tidings.dashboard.rendering import PageError, render
from tidings.storage import users, web_sessions
from tidings.storage.web_sessions import SessionView
from tidings.user_admin import TooManyAttempts

__all__ = ["COOKIE", "Posted", "Viewer", "checked_form", "plain_form", "router", "viewer"]

COOKIE = "tidings_session"
LOGIN_COOKIE = "tidings_login_csrf"
router = APIRouter()


class LoginRequired(Exception):
    """No live session: pages send the browser to /login, streams answer 401."""


def _secure(request: Request) -> bool:
    """HTTPS as the browser sees it: uvicorn sets the scheme from X-Forwarded-Proto when a
    trusted proxy (TIDINGS_TRUSTED_PROXIES) sends it, or TIDINGS_PUBLIC_URL says so."""
    public: str | None = request.app.state.settings.public_url
    return request.url.scheme == "https" or bool(public and public.startswith("https:"))


def _session(request: Request) -> SessionView:
    token = request.cookies.get(COOKIE)
    if not token:
        raise LoginRequired
    with request.app.state.db.read() as conn:
        found = web_sessions.find_session(conn, token, datetime.now(UTC))
    if found is None:
        raise LoginRequired
    request.state.viewer = found
    return found


def viewer(request: Request) -> SessionView:
    """The logged-in person; without one, the page redirects to /login. A page's live tag
    (what the store looked like) is read here, before the page reads what it shows: a change
    in between then makes its stream refresh it once instead of leaving it stale."""
    found = _session(request)
    if request.method == "GET":
        from tidings.dashboard.live import page_tag  # live imports this module

        request.state.seen = page_tag(request.app.state.db)
    return found


Viewer = Annotated[SessionView, Depends(viewer)]


async def plain_form(request: Request) -> FormData:
    """The posted form; a value holding a NUL byte (which no store keeps) is a 400 page."""
    form = await request.form()
    if any(isinstance(v, str) and "\x00" in v for v in form.values()):
        raise PageError(400, "A form field holds a character that cannot be stored (NUL).")
    return form


async def checked_form(request: Request, session: SessionView) -> FormData:
    """The posted form, once its CSRF token matches the session's (403 otherwise)."""
    form = await plain_form(request)
    given = form.get("csrf")
    if not isinstance(given, str) or not secrets.compare_digest(given, session.csrf_token):
        raise PageError(403, "This form has expired or did not come from this dashboard. "
                             "Reload the page and try again.")  # fmt: skip
    return form


async def _posted(request: Request, session: Viewer) -> FormData:
    return await checked_form(request, session)


# A form posted under a live session with its CSRF token checked; a route that takes it can be
# a plain `def`, so its store work runs off the event loop.
Posted = Annotated[FormData, Depends(_posted)]


def _safe_next(value: object) -> str:
    """Only a path on this site: never `//elsewhere` or a full URL (no open redirect)."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//"):
        return value if "\\" not in value else "/"
    return "/"


def _login_page(
    request: Request, message: str | None, status: int = 200, email: str = "",
    target: object = None,
) -> Response:  # fmt: skip
    token = secrets.token_urlsafe(24)
    with request.app.state.db.read() as conn:
        nobody = users.count_users(conn) == 0
    given = target if target is not None else request.query_params.get("next")
    response = render(
        request,
        "login.html",
        {
            "message": message,
            "login_csrf": token,
            "next": _safe_next(given),
            "nobody": nobody,
            "email": email,
        },
        status=status,
    )
    response.set_cookie(
        LOGIN_COOKIE, token, httponly=True, samesite="lax", secure=_secure(request), path="/login"
    )
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request, None)


def _client(request: Request) -> str:
    """Where the attempt came from (behind a trusted proxy, uvicorn puts the real address)."""
    return request.client.host if request.client else "unknown"


def _log_in(request: Request, form: FormData) -> Response:
    given, expected = form.get("csrf"), request.cookies.get(LOGIN_COOKIE)
    target = form.get("next")
    if not (isinstance(given, str) and expected and secrets.compare_digest(given, expected)):
        return _login_page(request, "The login form expired; please try again.", status=403,
                           target=target)  # fmt: skip
    email = str(form.get("email") or "").strip()
    password = str(form.get("password") or "")
    now = datetime.now(UTC)
    try:
        done = user_admin.log_in(request.app.state.db, email, password, _client(request), now)
    except TooManyAttempts as error:
        return _login_page(request, str(error).capitalize() + ".", status=429, email=email,
                           target=target)  # fmt: skip
    if done is None:
        return _login_page(request, "Wrong email or password.", status=401, email=email,
                           target=target)  # fmt: skip
    response = RedirectResponse(_safe_next(target), status_code=303)
    response.set_cookie(
        COOKIE,
        done.session.token,
        max_age=int(user_admin.SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    """Argon2 takes a tenth of a second a check: off the event loop, where webhooks wait."""
    form = await plain_form(request)
    return await run_in_threadpool(_log_in, request, form)


def _log_out(request: Request) -> Response:
    token = request.cookies.get(COOKIE)
    if token:
        with request.app.state.db.write() as conn:
            web_sessions.end_session(conn, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, form: Posted) -> Response:
    return _log_out(request)


def install(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, error: LoginRequired) -> Response:
        if request.url.path in ("/live",) or request.url.path.startswith("/reveal"):
            return Response("log in first", status_code=401, media_type="text/plain")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
