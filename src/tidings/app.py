"""The ASGI application: intake, `/v1` API, health and metrics, plus the embedded worker and
scheduler when this process runs them. The composition root: everything is wired here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from tidings import __version__
from tidings.api.routes import router
from tidings.api.support import ApiError, error_response
from tidings.config import Settings
from tidings.domain.errors import StorageUnavailable
from tidings.intake.app import Intake
from tidings.intake.writer import ReceiptWriter
from tidings.scheduler.embedded import EmbeddedScheduler
from tidings.scheduler.jobs import JobContext
from tidings.storage.db import Database
from tidings.worker.process import Worker

__all__ = ["create_app"]


def create_app(
    settings: Settings, *, run_worker: bool = True, db: Database | None = None
) -> FastAPI:
    """Build the app. With `run_worker`, the worker and scheduler run in this process."""
    db = db or Database(settings.database_url, settings.store_timeout_seconds)
    worker = Worker(db, settings) if run_worker else None
    wake = worker.wake if worker else (lambda: None)
    writer = ReceiptWriter(db, on_commit=wake)
    scheduler = EmbeddedScheduler(JobContext(db, settings, wake)) if run_worker else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await writer.start()
        if worker and scheduler:
            worker.start()
            scheduler.start()
        try:
            yield
        finally:
            if worker and scheduler:
                scheduler.stop()
                worker.stop()
            await writer.stop()
            db.dispose()

    app = FastAPI(
        title="tidings",
        version=__version__,
        summary="What became of every message you sent.",
        lifespan=lifespan,
    )
    app.state.db = db
    app.state.settings = settings
    app.state.wake_worker = wake
    app.include_router(router)

    intake = Intake(db, writer, settings)
    app.add_route("/hooks/{provider}/{connection}", intake.endpoint, methods=["POST", "GET"])
    app.state.intake = intake

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> Response:
        return error_response(error.status, error.code, error.message)

    @app.exception_handler(StorageUnavailable)
    async def _store_down(request: Request, error: StorageUnavailable) -> Response:
        response = error_response(503, "store_unavailable", str(error))
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        return error_response(422, "invalid_request", problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
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

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
