"""What every API route shares: the error shape, bearer auth, and opaque cursors."""

from __future__ import annotations

import base64
import binascii
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tidings.domain.errors import StorageUnavailable
from tidings.storage import tokens
from tidings.storage.db import Database

__all__ = [
    "ApiError",
    "decode_cursor",
    "encode_cursor",
    "error_response",
    "require_token",
    "validation_problems",
]


class ApiError(Exception):
    """An error the API answers as `{"error": {"code", "message"}}` with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> JSONResponse:
    response = JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def validation_problems(errors: Sequence[Any]) -> str:
    """FastAPI's validation errors on one line, each as `where: what`; a body that is not JSON
    says so, where, and why (FastAPI's own words are "body.22: JSON decode error")."""
    said = []
    for error in errors:
        if error.get("type") == "json_invalid":
            where = error["loc"][-1] if len(error["loc"]) > 1 else "?"
            why = (error.get("ctx") or {}).get("error", "")
            said.append(f"body: not valid JSON at character {where}" + (f": {why}" if why else ""))
        else:
            said.append(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}")
    return "; ".join(said)


_MAX_ID = 2**63 - 1  # ids are 64-bit in the store


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = text.partition(":")
        if prefix != "id" or not value.isdigit() or int(value) > _MAX_ID:
            raise ValueError(text)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "invalid_cursor", "cursor is not one this API returned") from None


class _TokenCheck:
    """Every call asks the store (one indexed read), so a revoked token is refused at once, even
    when another process revoked it; only the "last used" write is spaced out."""

    def __init__(self, touch_every: float = 30.0) -> None:
        self._touch_every = touch_every
        self._next_touch: dict[str, float] = {}

    def check(self, db: Database, token: str) -> bool:
        with db.read() as conn:  # a wrong token never takes the write lock
            ok = tokens.check_token(conn, token)
        if ok and self._next_touch.get(token, 0.0) <= time.monotonic():
            self._next_touch[token] = time.monotonic() + self._touch_every
            # "Last used" is best effort: a busy store must not turn a valid token away.
            with contextlib.suppress(StorageUnavailable), db.write() as conn:
                tokens.touch(conn, token, datetime.now(UTC))
        return ok


_tokens = _TokenCheck()


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


# The store, for a route: `db: Db`.
Db = Annotated[Database, Depends(get_db)]


# Declared through FastAPI's security dependency so the OpenAPI document names the scheme
# (and /docs has an Authorize button); it never answers itself (auto_error off): a missing or
# wrong header gets this API's own 401 shape below.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API token from `tidings token create`.",
)


def require_token(
    request: Request,
    db: Annotated[Database, Depends(get_db)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Bearer auth for `/v1`: 401 without a token we issued. Also refuses NUL characters in
    parameters, which no store can compare (PostgreSQL rejects them in any string)."""
    token = credentials.credentials.strip() if credentials else ""
    if not token:
        raise ApiError(
            401, "unauthorized", "send `Authorization: Bearer <token>` (tidings token create)"
        )
    if not _tokens.check(db, token):
        raise ApiError(401, "unauthorized", "the API token is not valid")
    values = [*request.query_params.values(), *map(str, request.path_params.values())]
    if any("\x00" in value for value in values):
        raise ApiError(400, "invalid_parameter", "parameters cannot contain NUL characters")
    _refuse_unknown_query(request)


# Every list takes these (a short one answers all it has, with no next cursor): a client that
# pages every list alike must not be refused on the short ones.
_EVERY_LIST = frozenset({"limit", "cursor"})


def _refuse_unknown_query(request: Request) -> None:
    """A misspelled filter (`?campain=spring`) is a 422 naming it, not a silently unfiltered
    list: the query may hold only the names the route declares."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant) | _EVERY_LIST
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise ApiError(
            422,
            "unknown_parameter",
            f"unknown query parameter {unknown[0]!r}; this route takes: {takes}",
        )


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route and its dependencies declare."""
    names = {field.alias for field in dependant.query_params}
    for inner in dependant.dependencies:
        names |= _query_names(inner)
    return names
