"""The ASGI application: intake, `/v1` API, health and metrics, plus the embedded worker and
scheduler when this process runs them. The composition root: everything is wired here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings import __version__, collector
from tidings.api import admin, bulk, calls, campaigns, intake_docs, outbound
from tidings.api.body_limit import BodyLimit
from tidings.api.docs_pages import add_docs_pages
from tidings.api.routes import router
from tidings.api.support import ApiError, error_response, validation_problems
from tidings.config import Settings
from tidings.dashboard import add_dashboard
from tidings.dashboard.rendering import error_page, is_page
from tidings.domain.errors import StorageUnavailable
from tidings.intake.app import Intake
from tidings.intake.writer import ReceiptWriter, RejectionWriter
from tidings.logging import get_logger
from tidings.metrics import CONTENT_TYPE_LATEST
from tidings.metrics import render as render_metrics
from tidings.storage import inbox
from tidings.storage.db import Database
from tidings.worker.child_process import WorkerChildProcess
from tidings.worker.embedded_threads import WorkerAndSchedulerThreads
from tidings.worker.wake import Wakeable

__all__ = ["create_app"]

log = get_logger("serve")


class _Front:
    """Sends `/hooks/…` straight to the intake and everything else (lifespan too) to FastAPI."""

    def __init__(self, intake: Intake, api: FastAPI) -> None:
        self.intake = intake
        self.api = api
        self._capped = BodyLimit(api)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/hooks/"):
            await self.intake(scope, receive, send)
        else:
            await self._capped(scope, receive, send)


class _Background(Wakeable, Protocol):
    """What runs beside the app, started and stopped with it and woken after each commit: the
    worker and scheduler threads, the worker child process, or a web node's broker waker."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


def create_app(
    settings: Settings,
    *,
    run_worker: bool = True,
    worker_process: bool = False,
    db: Database | None = None,
) -> ASGIApp:
    """Build the app. With `run_worker`, the worker and scheduler run beside it: as threads, or
    with `worker_process` in a child process of their own (a second core for applying).
    Without `run_worker` and with a broker configured (scale-out), commits send wake-ups to the
    Celery workers through the broker instead."""
    db = db or Database(settings.database_url, settings.store_timeout_seconds)
    worker: _Background | None = None
    if run_worker:
        worker = (
            WorkerChildProcess(settings)
            if worker_process
            else WorkerAndSchedulerThreads(db, settings)
        )
    elif not settings.embedded:
        # Scale-out web node: commits wake the Celery workers through the broker, from a
        # thread of its own, so the broker never holds up (or fails) a webhook's answer.
        from tidings.worker.celery.waker import BrokerWaker

        worker = BrokerWaker(settings)
    wake = worker.wake if worker else (lambda: None)
    writer = ReceiptWriter(db, on_commit=wake)
    rejection_writer = RejectionWriter(db)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await writer.start()
        await rejection_writer.start()
        if worker:
            worker.start()
        collector.settle()  # everything built so far lives as long as the process
        try:
            yield
        except asyncio.CancelledError:
            # A second Ctrl-C: uvicorn leaves without the shutdown and asyncio cancels this.
            # Stopping below is all that is left to do; were the cancellation let through,
            # Starlette would log it as a failed shutdown, traceback and all.
            log.info("shutting down without waiting (the app's shutdown was cancelled)")
        finally:
            intake.flush_counts()  # the last second's answers, before this process's files close
            if worker:
                worker.stop()
            await writer.stop()
            await rejection_writer.stop()
            db.dispose()

    app = FastAPI(
        title="tidings",
        version=__version__,
        summary="What became of every message you sent.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from add_docs_pages, with assets served here
        redoc_url=None,
    )
    app.state.db = db
    app.state.settings = settings
    app.state.wake_worker = wake
    app.include_router(router)
    app.include_router(bulk.router)
    app.include_router(admin.router)
    app.include_router(intake_docs.router)
    app.include_router(calls.router)
    app.include_router(outbound.router)
    app.include_router(campaigns.router)
    add_docs_pages(app)
    add_dashboard(app)

    intake = Intake(db, writer, rejection_writer, settings)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> Response:
        if is_page(request):
            return error_page(request, error.status, error.message)
        return error_response(error.status, error.code, error.message)

    @app.exception_handler(StorageUnavailable)
    async def _store_down(request: Request, error: StorageUnavailable) -> Response:
        response = (
            error_page(request, 503, f"The store is not answering ({error}); try again shortly.")
            if is_page(request)
            else error_response(503, "store_unavailable", str(error))
        )
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        if is_page(request):
            return error_page(request, 404, "There is no such page (check the link).")
        return error_response(422, "invalid_request", validation_problems(error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        if is_page(request):
            return error_page(request, error.status_code, str(error.detail))
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return error_response(error.status_code, code, str(error.detail))

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {}})
    def readyz() -> Any:
        """The store answers; load balancers route here only when it does."""
        try:
            with db.read() as conn:
                conn.execute(text("SELECT 1"))
        except StorageUnavailable as error:
            return JSONResponse({"status": "unavailable", "error": str(error)}, status_code=503)
        return {"status": "ok"}

    def count_receipts() -> dict[str, int]:
        with db.read() as conn:
            return inbox.count_by_status(conn)

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics() -> Response:
        intake.flush_counts()  # on the event loop, where the intake counts
        page = await run_in_threadpool(render_metrics, count_receipts)
        return Response(page, media_type=CONTENT_TYPE_LATEST)

    return _Front(intake, app)
