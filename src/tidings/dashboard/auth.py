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
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from tidings import user_admin
from tidings.dashboard.rendering import PageError, render
from tidings.storage import users, web_sessions
from tidings.storage.web_sessions import SessionView
from tidings.user_admin import TooManyAttempts

__all__ = ["COOKIE", "Viewer", "checked_form", "router", "viewer"]

COOKIE = "tidings_session"
LOGIN_COOKIE = "tidings_login_csrf"
router = APIRouter()


class LoginRequired(Exception):
    """No live session: pages send the browser to /login, streams answer 401."""


def _secure(request: Request) -> bool:
    public: str | None = request.app.state.settings.public_url
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded == "https" or bool(
        public and public.startswith("https:")
    )


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
    """The logged-in person; without one, the page redirects to /login."""
    return _session(request)


Viewer = Annotated[SessionView, Depends(viewer)]


async def checked_form(request: Request, session: SessionView) -> FormData:
    """The posted form, once its CSRF token matches the session's (403 otherwise)."""
    form = await request.form()
    given = form.get("csrf")
    if not isinstance(given, str) or not secrets.compare_digest(given, session.csrf_token):
        raise PageError(403, "This form has expired or did not come from this dashboard. "
                             "Reload the page and try again.")  # fmt: skip
    return form


def _safe_next(value: object) -> str:
    """Only a path on this site: never `//elsewhere` or a full URL (no open redirect)."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//"):
        return value if "\\" not in value else "/"
    return "/"


def _login_page(request: Request, message: str | None, status: int = 200,
                email: str = "") -> Response:  # fmt: skip
    token = secrets.token_urlsafe(24)
    with request.app.state.db.read() as conn:
        nobody = users.count_users(conn) == 0
    response = render(
        request,
        "login.html",
        {
            "message": message,
            "login_csrf": token,
            "next": _safe_next(request.query_params.get("next")),
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


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    given, expected = form.get("csrf"), request.cookies.get(LOGIN_COOKIE)
    if not (isinstance(given, str) and expected and secrets.compare_digest(given, expected)):
        return _login_page(request, "The login form expired; please try again.", status=403)
    email = str(form.get("email") or "").strip()
    password = str(form.get("password") or "")
    try:
        done = user_admin.log_in(request.app.state.db, email, password, datetime.now(UTC))
    except TooManyAttempts as error:
        return _login_page(request, str(error).capitalize() + ".", status=429, email=email)
    if done is None:
        return _login_page(request, "Wrong email or password.", status=401, email=email)
    target = _safe_next(form.get("next"))
    response = RedirectResponse(target, status_code=303)
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


@router.post("/logout")
async def logout(request: Request, session: Viewer) -> Response:
    await checked_form(request, session)
    token = request.cookies.get(COOKIE)
    if token:
        with request.app.state.db.write() as conn:
            web_sessions.end_session(conn, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def install(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, error: LoginRequired) -> Response:
        if request.url.path in ("/live",) or request.url.path.startswith("/reveal"):
            return Response("log in first", status_code=401, media_type="text/plain")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

