"""The intake routes as the OpenAPI document describes them.

`/hooks/{provider}/{connection}` is served by `tidings.intake` (a plain ASGI app in front of
FastAPI, for speed), so FastAPI never sees these requests. These stubs exist only so that the
document, `/docs` included, shows providers' integrators what the intake takes and answers;
the front app routes every `/hooks/` request to the intake before FastAPI could reach them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from tidings.api.models import ErrorOut
from tidings.providers.registry import PROVIDERS

__all__ = ["router"]


class Accepted(BaseModel):
    """The webhook is stored (committed): the provider may forget it."""

    receipt: int


class Malformed(ErrorOut):
    """The body is not what its format says; it is kept, quarantined, as this receipt."""

    receipt: int


router = APIRouter(prefix="/hooks", tags=["intake"])

Provider = Annotated[
    str,
    Path(description="The provider's name.", json_schema_extra={"enum": sorted(PROVIDERS)}),
]
Connection = Annotated[str, Path(description="The connection's name (`tidings connection add`).")]
Token = Annotated[
    str | None,
    Query(description="The connection secret, for providers that can only be given a URL."),
]

_JSON_ANSWER: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


_COMMON: dict[int | str, dict[str, Any]] = {
    404: _error("No such provider, or no connection of that name for it."),
    405: _error("This provider sends nothing with this method."),
    503: _error("The store cannot commit right now; the provider should retry (Retry-After)."),
}


@router.post(
    "/{provider}/{connection}",
    status_code=202,
    response_model=Accepted,
    response_description="Stored (committed): the provider may forget it.",
    summary="Receive a provider's webhook",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
            },
        }
    },
    responses={
        200: {
            "description": "The provider's own expected answer (e.g. a health check).",
            "content": _JSON_ANSWER,
        },
        400: {"model": Malformed, "description": Malformed.__doc__},
        401: _error("Credentials missing or wrong (kept in the rejection log, not stored)."),
        413: _error("The body is larger than `max_body_bytes`."),
        **_COMMON,
    },
)
def receive(provider: Provider, connection: Connection, token: Token = None) -> Accepted:
    """Store the webhook durably, then answer 202; the worker applies it later. Credentials:
    `?token=`, a header set on both sides, or the provider's own signature."""
    raise NotImplementedError("served by tidings.intake, never by FastAPI")


@router.get(
    "/{provider}/{connection}",
    summary="Answer a provider's verification handshake",
    responses={
        200: {
            "description": "The challenge echoed (Meta's `hub.challenge`), or the provider's "
            "expected answer.",
            "content": {"text/plain": {"schema": {"type": "string"}}, **_JSON_ANSWER},
        },
        403: _error("The verify token does not match the connection's secret."),
        **_COMMON,
    },
)
def handshake(provider: Provider, connection: Connection) -> None:
    """Meta's subscription check: `hub.mode=subscribe`, `hub.verify_token` (the connection's
    secret) and `hub.challenge`, echoed back as text."""
    raise NotImplementedError("served by tidings.intake, never by FastAPI")
