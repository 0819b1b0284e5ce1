"""The dashboard: server-rendered pages under `/` for people, live through server-sent events.

It reads what the `/v1` API reads (the same read models) and changes only what the API can
change (pause, resume, replay), after a login and a CSRF check.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from starlette.staticfiles import StaticFiles

from tidings.dashboard import (
    auth,
    call_pages,
    campaign_pages,
    connection_pages,
    live,
    receipt_pages,
    reveal,
)
from tidings.dashboard.rendering import STATIC, install_error_pages, refuse_nul

__all__ = ["add_dashboard"]

NO_NUL = Depends(refuse_nul)


def add_dashboard(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (
        auth,
        campaign_pages,
        receipt_pages,
        connection_pages,
        call_pages,
        live,
        reveal,
    ):
        app.include_router(module.router, include_in_schema=False, dependencies=[NO_NUL])
    install_error_pages(app)
    auth.install(app)
