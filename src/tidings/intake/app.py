"""`POST /hooks/{provider}/{connection}`: the durability contract of DESIGN.md section 2.

This is the only place that maps intake errors to HTTP statuses: 202 after commit; 400 for a
malformed body (stored as quarantined); 401 for bad credentials (logged as a rejection, never a
receipt); 404 for an unknown provider or connection; 413 over the size limit; 503 with
Retry-After when the store cannot commit in time. A plain Starlette route keeps the hot path
thin; parsing is left to the worker.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from tidings.config import Settings
from tidings.domain.errors import NotFound, SignatureError, StorageUnavailable
from tidings.intake.writer import ReceiptWriter
from tidings.logging import get_logger
from tidings.metrics import WEBHOOKS_RECEIVED
from tidings.providers.base import ConnectionAuth, Provider, RequestParts
from tidings.providers.registry import get_provider
from tidings.storage import connections, rejections
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database
from tidings.storage.inbox import NewReceipt, ReceiptStatus

__all__ = ["ConnectionCache", "Intake", "check_well_formed"]

log = get_logger("intake")

RETRY_AFTER_SECONDS = "5"


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}, **extra}, status_code=status)


def _unavailable(message: str) -> JSONResponse:
    response = _error(503, "store_unavailable", message)
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


class ConnectionCache:
    """Connections looked up at most every `ttl` seconds, so intake reads the store rarely."""

    def __init__(self, db: Database, ttl: float = 2.0) -> None:
        self._db = db
        self._ttl = ttl
        self._entries: dict[tuple[str, str], tuple[float, StoredConnection | None]] = {}

    async def get(self, provider: str, name: str) -> StoredConnection | None:
        key = (provider, name)
        hit = self._entries.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        found = await asyncio.to_thread(self._load, provider, name)
        self._entries[key] = (time.monotonic() + self._ttl, found)
        return found

    def _load(self, provider: str, name: str) -> StoredConnection | None:
        with self._db.read() as conn:
            return connections.find_connection(conn, provider, name)


def check_well_formed(body_format: str, body: bytes) -> str | None:
    """What is wrong with the body for its format, or None when it is well-formed."""
    if body_format == "json":
        try:
            json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            return f"body is not valid JSON: {error}"
        return None
    try:
        text = body.decode("utf-8")
        if not text:
            return "body is empty; expected form-encoded parameters"
        parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except (ValueError, UnicodeDecodeError) as error:
        return f"body is not form-encoded: {error}"
    return None


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class Intake:
    """The intake endpoint, given its store, writer and settings by the composition root."""

    def __init__(self, db: Database, writer: ReceiptWriter, settings: Settings) -> None:
        self._db = db
        self._writer = writer
        self._settings = settings
        self.cache = ConnectionCache(db)

    def _url(self, request: Request) -> str:
        if self._settings.public_url:
            url = self._settings.public_url.rstrip("/") + request.url.path
            return url + (f"?{request.url.query}" if request.url.query else "")
        return str(request.url)

    async def endpoint(self, request: Request) -> Response:
        provider_name = request.path_params["provider"]
        name = request.path_params["connection"]
        response = await self._handle(request, provider_name, name)
        WEBHOOKS_RECEIVED.labels(provider_name, str(response.status_code)).inc()
        return response

    async def _handle(self, request: Request, provider_name: str, name: str) -> Response:
        try:
            provider = get_provider(provider_name)
        except NotFound as error:
            return _error(404, "unknown_provider", str(error))
        try:
            connection = await self.cache.get(provider_name, name)
        except StorageUnavailable as error:
            return _unavailable(str(error))
        if connection is None:
            return _error(
                404, "unknown_connection", f"no {provider_name} connection named {name!r}"
            )
        now = datetime.now(UTC)
        headers = {k.lower(): v for k, v in request.headers.items()}
        if request.method == "GET":
            return await self._handshake(request, provider, connection, headers, now)
        try:
            body = await _read_body(request, self._settings.max_body_bytes)
        except _TooLarge:
            limit = self._settings.max_body_bytes
            reason = f"body larger than the limit of {limit} bytes"
            await self._reject(request, provider, connection, 413, reason, headers, b"", now)
            return _error(413, "too_large", reason)
        parts = RequestParts(
            method=request.method,
            url=self._url(request),
            query=dict(request.query_params),
            headers=headers,
            body=body,
        )
        try:
            provider.verify(parts, _auth(connection))
        except SignatureError as error:
            await self._reject(request, provider, connection, 401, str(error), headers, body, now)
            return _error(401, "unauthorized", str(error))
        reply = provider.reply(body)
        problem = None if reply is not None else check_well_formed(provider.body_format, body)
        receipt = NewReceipt(
            connection_id=connection.id,
            provider=provider.name,
            received_at=now,
            content_type=headers.get("content-type", ""),
            headers=_stored_headers(headers, connection),
            body=body,
            status=ReceiptStatus.QUARANTINED if problem else ReceiptStatus.PENDING,
            error=problem,
        )
        try:
            receipt_id = await self._writer.submit(receipt)
        except StorageUnavailable as error:
            log.warning("503 for %s connection %s: %s", provider.name, connection.name, error)
            return _unavailable("the store cannot take the webhook right now; retry later")
        if problem:
            return _error(400, "malformed_body", f"{provider.name}: {problem}", receipt=receipt_id)
        if reply is not None:
            return JSONResponse(reply[1], status_code=reply[0])
        return JSONResponse({"receipt": receipt_id}, status_code=202)

    async def _handshake(
        self,
        request: Request,
        provider: Provider,
        connection: StoredConnection,
        headers: Mapping[str, str],
        now: datetime,
    ) -> Response:
        """A GET: the provider's verification handshake, or its set answer, or 405."""
        parts = RequestParts("GET", self._url(request), dict(request.query_params), headers, b"")
        try:
            challenge = provider.handshake(parts, _auth(connection))
        except SignatureError as error:
            await self._reject(request, provider, connection, 403, str(error), headers, b"", now)
            return _error(403, "forbidden", str(error))
        if challenge is not None:
            return PlainTextResponse(challenge)
        reply = provider.reply(b"")
        if reply is not None:
            return JSONResponse(reply[1], status_code=reply[0])
        return _error(405, "method_not_allowed", "use POST to deliver webhooks")

    async def _reject(
        self,
        request: Request,
        provider: Provider,
        connection: StoredConnection,
        status: int,
        reason: str,
        headers: Mapping[str, str],
        body: bytes,
        now: datetime,
    ) -> None:
        log.warning("%s for %s connection %s: %s", status, provider.name, connection.name, reason)
        safe_headers = rejections.masked_headers(headers, connection.options.get("auth_header", ""))
        remote = request.client.host if request.client else None

        def write() -> None:
            with self._db.write() as conn:
                rejections.log_rejection(
                    conn,
                    now=now,
                    provider=provider.name,
                    connection=connection.name,
                    status_code=status,
                    reason=reason,
                    remote_addr=remote,
                    headers=safe_headers,
                    body=body,
                )

        try:
            await asyncio.to_thread(write)
        except StorageUnavailable as error:
            log.warning("could not log the rejection: %s", error)


def _auth(connection: StoredConnection) -> ConnectionAuth:
    return ConnectionAuth(
        connection.name, connection.provider, connection.secret, connection.options
    )


def _stored_headers(headers: Mapping[str, str], connection: StoredConnection) -> dict[str, str]:
    """Headers kept with the receipt: what parsing and later checks need, minus credentials."""
    drop = {*rejections.SENSITIVE_HEADERS, connection.options.get("auth_header", "").lower()}
    return {k: v for k, v in headers.items() if k not in drop}
