"""`/v1` routes that manage tidings itself: connections (add, change, remove) and API tokens.

They apply the same checks as the CLI (`tidings.connection_admin`); a running intake sees a
change within a second (its connection cache lives one second).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tidings import connection_admin
from tidings.api.models import ConnectionOut, ErrorOut, Page
from tidings.api.routes import (
    _ERRORS,
    connection_out,
    connections_health,
    intake_url,
    public_base,
)
from tidings.api.support import ApiError, Db, require_token
from tidings.domain.errors import Conflict, NotFound
from tidings.providers.options import InvalidConnection
from tidings.storage import backfill_runs, tokens

__all__ = ["router"]

router = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], responses=_ERRORS)


# A misspelt field ("secrt") must not be dropped silently (a 200 that changed nothing): it
# is refused by name, as a registration's is.
_FORBID = ConfigDict(extra="forbid")


class NewConnection(BaseModel):
    model_config = _FORBID

    provider: str = Field(description="evolution, callbell, meta, infobip, twilio or callyzer.")
    name: str = Field(description="Unique among connections in use; a segment of the URL.")
    secret: str | None = Field(
        default=None,
        description="Shared secret (Meta: the App Secret; Twilio: the auth token). Generated "
        "when omitted for providers that sign nothing.",
    )
    options: dict[str, str] = Field(default_factory=dict)


class ConnectionChange(BaseModel):
    model_config = _FORBID

    secret: str | None = Field(default=None, description="The new secret, when it changes.")
    options: dict[str, str | None] = Field(
        default_factory=dict,
        description="Options to set; an option given as null is removed; others are kept.",
    )


class CreatedConnection(ConnectionOut):
    secret: str | None = Field(description="The generated secret, shown once; else null.")


class TokenOut(BaseModel):
    name: str
    created_at: datetime
    last_used_at: datetime | None


def _invalid(error: Exception) -> ApiError:
    return ApiError(422, "invalid_connection", str(error))


@router.post(
    "/connections",
    status_code=201,
    response_model=CreatedConnection,
    responses={409: {"model": ErrorOut}},
)
def add_connection(body: NewConnection, db: Db, request: Request) -> CreatedConnection:
    """Add a connection; `intake_url` is the URL to give the provider (with `?token=` where the
    provider can only be given a URL)."""
    try:
        added = connection_admin.add(
            db, body.provider, body.name, body.secret, body.options, datetime.now(UTC)
        )
    except (InvalidConnection, NotFound) as error:  # NotFound: an unknown provider
        raise _invalid(error) from None
    except Conflict as error:
        raise ApiError(409, "conflict", str(error)) from None
    c, base = added.connection, public_base(request)
    with db.read() as conn:
        found_health = connections_health(conn, request, [c]).get(c.id)
    out = connection_out(c, base, found_health=found_health).model_dump()
    out["intake_url"] = intake_url(base, c, with_secret=True)
    return CreatedConnection(**out, secret=c.secret if added.secret_generated else None)


@router.patch("/connections/{name}", response_model=ConnectionOut)
def change_connection(name: str, body: ConnectionChange, db: Db, request: Request) -> ConnectionOut:
    """Change a connection's secret or options; the rest stays as it is."""
    to_set = {k: v for k, v in body.options.items() if v is not None}
    to_unset = [k for k, v in body.options.items() if v is None]
    try:
        changed = connection_admin.change(db, name, body.secret, to_set, to_unset)
    except NotFound as error:
        raise ApiError(404, "not_found", str(error)) from None
    except InvalidConnection as error:
        raise _invalid(error) from None
    with db.read() as conn:
        last_run = backfill_runs.latest_runs(conn, [changed.id]).get(changed.id)
        found_health = connections_health(conn, request, [changed]).get(changed.id)
    return connection_out(changed, public_base(request), last_run, found_health)


@router.delete("/connections/{name}", status_code=204, response_class=Response)
def remove_connection(name: str, db: Db) -> Response:
    """Remove a connection: its intake answers 404 from now on; messages and receipts stay."""
    try:
        connection_admin.remove(db, name, datetime.now(UTC))
    except NotFound as error:
        raise ApiError(404, "not_found", str(error)) from None
    return Response(status_code=204)


@router.get("/tokens", response_model=Page[TokenOut])
def list_tokens(db: Db) -> dict[str, Any]:
    """API tokens by name, never the tokens themselves."""
    with db.read() as conn:
        found = tokens.list_tokens(conn)
    items = [
        TokenOut(name=t.name, created_at=t.created_at, last_used_at=t.last_used_at) for t in found
    ]
    return {"items": items, "next_cursor": None}


@router.delete("/tokens/{name}", status_code=204, response_class=Response)
def revoke_token(name: str, db: Db) -> Response:
    """Revoke a token: every request with it is refused from now on."""
    try:
        with db.write() as conn:
            tokens.revoke_token(conn, name)
    except NotFound as error:
        raise ApiError(404, "not_found", str(error)) from None
    return Response(status_code=204)
