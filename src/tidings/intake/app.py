"""`POST /hooks/{provider}/{connection}`: the durability contract (docs/architecture.md).

This is the only place that maps intake errors to HTTP statuses: 202 after commit; 400 for a
malformed body (stored as quarantined); 401 for bad credentials (logged as a rejection, never a
receipt); 404 for an unknown provider or connection; 413 over the size limit; 503 with
Retry-After when the store cannot commit in time. A plain ASGI app in front of the FastAPI app
keeps the hot path thin (framework routing alone costs about half the rate); parsing is left to
the worker.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from tidings import json_text
from tidings.config import Settings
from tidings.domain.errors import NotFound, SignatureError, StorageUnavailable
from tidings.intake.writer import ReceiptWriter, RejectionWriter
from tidings.logging import get_logger
from tidings.metrics import WEBHOOKS_RECEIVED
from tidings.providers.base import ConnectionAuth, Provider, RequestParts
from tidings.providers.registry import PROVIDERS, get_provider
from tidings.storage import connections, rejections
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database
from tidings.storage.inbox import NewReceipt, ReceiptStatus

__all__ = ["ConnectionCache", "Intake", "check_well_formed"]

log = get_logger("intake")

RETRY_AFTER_SECONDS = b"5"

# How long answers may wait, counted in the intake, before Prometheus's counter has them.
_COUNT_SECONDS = 1.0


_JSON = b"application/json"


class Answer(NamedTuple):
    """A whole intake response: status, JSON (or text) body and extra headers. (Named tuples:
    made for every request, they cost a fraction of a frozen dataclass.)"""

    status: int
    body: bytes
    content_type: bytes = _JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()


def _json(status: int, payload: Mapping[str, Any]) -> Answer:
    return Answer(status, json.dumps(payload, separators=(",", ":")).encode())


def _error(status: int, code: str, message: str, **extra: Any) -> Answer:
    return _json(status, {"error": {"code": code, "message": message}, **extra})


def _unavailable(message: str) -> Answer:
    answer = _error(503, "store_unavailable", message)
    return Answer(answer.status, answer.body, headers=((b"retry-after", RETRY_AFTER_SECONDS),))


@dataclass(frozen=True)
class KnownConnection:
    """A connection with what every request to it needs, worked out once per lookup."""

    connection: StoredConnection
    auth: ConnectionAuth
    unstored_headers: frozenset[str]  # credentials: never kept with a receipt

    @classmethod
    def of(cls, connection: StoredConnection) -> KnownConnection:
        auth = ConnectionAuth(
            connection.name, connection.provider, connection.secret, connection.options
        )
        custom = connection.options.get("auth_header", "").lower()
        return cls(connection, auth, frozenset({*rejections.SENSITIVE_HEADERS, custom}))


class ConnectionCache:
    """Connections looked up at most every `ttl` seconds, so intake reads the store rarely; a
    connection changed or removed (by any process) is seen within `ttl`. When an entry runs
    out under load, the requests that find it gone wait for one read of the store together
    (64 connections used to make 64 reads, each on a thread, every `ttl`)."""

    def __init__(self, db: Database, ttl: float = 1.0) -> None:
        self._db = db
        self._ttl = ttl
        self._entries: dict[tuple[str, str], tuple[float, KnownConnection]] = {}
        self._loading: dict[tuple[str, str], asyncio.Task[KnownConnection | None]] = {}

    def fresh(self, provider: str, name: str) -> KnownConnection | None:
        """The connection if its entry has not run out, without a wait (nearly every request);
        None otherwise: then `get` it."""
        hit = self._entries.get((provider, name))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    async def get(self, provider: str, name: str) -> KnownConnection | None:
        hit = self.fresh(provider, name)
        if hit is not None:
            return hit
        key = (provider, name)
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.create_task(self._refresh(key))
            loading.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: a request that goes away (its client hung up) leaves the read to the others.
        return await asyncio.shield(loading)

    async def _refresh(self, key: tuple[str, str]) -> KnownConnection | None:
        found = await asyncio.to_thread(self._load, *key)
        if found is None:  # misses are not kept: made-up names must not grow memory
            return None
        known = KnownConnection.of(found)
        self._entries[key] = (time.monotonic() + self._ttl, known)
        return known

    def _forget(self, key: tuple[str, str], done: asyncio.Task[KnownConnection | None]) -> None:
        """The read is over: the next request after a miss reads again. Its failure is taken
        here too: when every request waiting for it went away (on Python 3.12 and later a
        shield then leaves it unread), asyncio would log it as an error nobody retrieved;
        each request still waiting got it."""
        self._loading.pop(key, None)
        if not done.cancelled():
            done.exception()

    def _load(self, provider: str, name: str) -> StoredConnection | None:
        with self._db.read() as conn:
            return connections.find_connection(conn, provider, name)


def check_well_formed(body_format: str, body: bytes) -> str | None:
    """What is wrong with the body for its format, or None when it is well-formed (as the
    adapters will read it: `json_text.loads`)."""
    if body_format == "json":
        try:
            json_text.check(body)
        except (ValueError, UnicodeDecodeError) as error:
            return f"body is not valid JSON: {error}"
        except RecursionError:
            return "body is not valid JSON: nested too deeply"
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


class _Disconnected(Exception):
    pass


async def _read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        if not message.get("more_body", False):
            if not chunks:  # the whole body in one message: nearly every webhook
                return chunk
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


class Intake:
    """The intake endpoint, given its store, writer and settings by the composition root."""

    def __init__(
        self,
        db: Database,
        writer: ReceiptWriter,
        rejection_writer: RejectionWriter,
        settings: Settings,
    ) -> None:
        self._db = db
        self._writer = writer
        self._rejections = rejection_writer
        self._settings = settings
        self.cache = ConnectionCache(db)
        self._counters: dict[tuple[str, int], Any] = {}
        self._uncounted: dict[tuple[str, int], int] = {}
        self._counting: asyncio.TimerHandle | None = None

    def _count(self, provider: str, status: int) -> None:
        """Count the answer. In the multiprocess mode of `tidings serve` an increment of a
        Prometheus counter costs about 2 µs, a few per cent of a request, so answers are
        added up here and passed on a second later, or when /metrics is read."""
        key = (provider, status)
        self._uncounted[key] = self._uncounted.get(key, 0) + 1
        if self._counting is None:
            loop = asyncio.get_running_loop()
            self._counting = loop.call_later(_COUNT_SECONDS, self.flush_counts)

    def flush_counts(self) -> None:
        """Pass the answers counted so far to Prometheus (on the event loop's thread)."""
        if self._counting is not None:
            self._counting.cancel()
            self._counting = None
        uncounted, self._uncounted = self._uncounted, {}
        for (provider, status), answers in uncounted.items():
            counter = self._counters.get((provider, status))
            if counter is None:  # looked up once: prometheus_client's lookup costs more
                counter = WEBHOOKS_RECEIVED.labels(provider, str(status))
                self._counters[(provider, status)] = counter
            counter.inc(answers)

    def _request(
        self, scope: Scope, headers: dict[str, str], body: bytes, provider: Provider
    ) -> RequestParts:
        """What a provider checks of the request (made once, with its body); its URL only for a
        provider that signs it."""
        query_string = scope.get("query_string", b"").decode("latin-1")
        url = self._url(scope, headers, query_string) if provider.signs_url else ""
        # Positionally: a named tuple made with keywords costs twice as much.
        return RequestParts(scope["method"], url, _query(query_string), headers, body)

    def _url(self, scope: Scope, headers: Mapping[str, str], query_string: str) -> str:
        """The request's public URL: `public_url` if set, else as the request (or the proxy
        before it) names the host."""
        path = scope.get("raw_path") or scope["path"].encode()
        path_text = path.decode("latin-1") if isinstance(path, bytes) else str(path)
        if self._settings.public_url:
            base = self._settings.public_url.rstrip("/")
        else:
            host = headers.get("host") or "{}:{}".format(*scope.get("server") or ("localhost", 80))
            base = f"{scope.get('scheme', 'http')}://{host}"
        return base + path_text + (f"?{query_string}" if query_string else "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry for `/hooks/{provider}/{connection}`."""
        segments = scope["path"].split("/")
        provider_name = segments[2] if len(segments) > 2 else ""
        if len(segments) != 4 or not segments[3]:
            answer = _error(404, "not_found", "intake URLs are /hooks/{provider}/{connection}")
        elif scope["method"] not in ("POST", "GET"):
            answer = _error(405, "method_not_allowed", "use POST to deliver webhooks")
        else:
            try:
                answer = await self._handle(scope, receive, provider_name, segments[3])
            except _Disconnected:
                return
        self._count(provider_name if provider_name in PROVIDERS else "unknown", answer.status)
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", answer.content_type),
                    (b"content-length", b"%d" % len(answer.body)),
                    *answer.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    async def _handle(
        self, scope: Scope, receive: Receive, provider_name: str, name: str
    ) -> Answer:
        try:
            provider = get_provider(provider_name)
        except NotFound as error:
            return _error(404, "unknown_provider", str(error))
        try:
            known = self.cache.fresh(provider_name, name) or await self.cache.get(
                provider_name, name
            )
        except StorageUnavailable as error:
            return _unavailable(str(error))
        if known is None:
            return _error(
                404, "unknown_connection", f"no {provider_name} connection named {name!r}"
            )
        connection = known.connection
        now = datetime.now(UTC)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["method"] == "GET":
            return await self._handshake(scope, provider, known, headers, now)
        try:
            body = await _read_body(receive, headers, self._settings.max_body_bytes)
        except _TooLarge:
            limit = self._settings.max_body_bytes
            reason = f"body larger than the limit of {limit} bytes"
            await self._reject(scope, provider, connection, 413, reason, headers, b"", now)
            return _error(413, "too_large", reason)
        try:
            provider.verify(self._request(scope, headers, body, provider), known.auth)
        except SignatureError as error:
            await self._reject(scope, provider, connection, 401, str(error), headers, body, now)
            return _error(401, "unauthorized", str(error))
        reply = provider.reply(body)
        problem = None if reply is not None else check_well_formed(provider.body_format, body)
        unstored = known.unstored_headers
        # Positionally, as above.
        receipt = NewReceipt(
            connection.id,
            provider.name,
            now,
            headers.get("content-type", "")[:200],
            {k: v for k, v in headers.items() if k not in unstored},
            body,
            ReceiptStatus.QUARANTINED if problem else ReceiptStatus.PENDING,
            problem,
        )
        try:
            receipt_id = await self._writer.submit(receipt)
        except StorageUnavailable as error:
            log.warning("503 for %s connection %s: %s", provider.name, connection.name, error)
            return _unavailable("the store cannot take the webhook right now; retry later")
        if problem:
            return _error(400, "malformed_body", f"{provider.name}: {problem}", receipt=receipt_id)
        if reply is not None:
            return _json(reply[0], reply[1])
        return Answer(202, b'{"receipt":%d}' % receipt_id)

    async def _handshake(
        self,
        scope: Scope,
        provider: Provider,
        known: KnownConnection,
        headers: dict[str, str],
        now: datetime,
    ) -> Answer:
        """A GET: the provider's verification handshake, or its set answer, or 405."""
        try:
            challenge = provider.handshake(self._request(scope, headers, b"", provider), known.auth)
        except SignatureError as error:
            await self._reject(
                scope, provider, known.connection, 403, str(error), headers, b"", now
            )
            return _error(403, "forbidden", str(error))
        if challenge is not None:
            return Answer(200, challenge.encode(), b"text/plain; charset=utf-8")
        reply = provider.reply(b"")
        if reply is not None:
            return _json(reply[0], reply[1])
        return _error(405, "method_not_allowed", "use POST to deliver webhooks")

    async def _reject(
        self,
        scope: Scope,
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

        rejection = rejections.NewRejection(
            received_at=now,
            provider=provider.name,
            connection=connection.name,
            status_code=status,
            reason=reason,
            remote_addr=_client(scope),
            headers=safe_headers,
            body=body,
        )
        try:
            await self._rejections.submit(rejection)
        except StorageUnavailable as error:
            log.warning("could not log the rejection: %s", error)


def _query(query_string: str) -> dict[str, str]:
    """The query's parameters (the last of a repeated name wins). Plain `name=value` pairs,
    nearly every webhook's, are split directly; anything encoded goes through parse_qsl."""
    if "%" in query_string or "+" in query_string:
        return dict(parse_qsl(query_string, keep_blank_values=True))
    if "&" not in query_string:  # `?token=…` alone, the usual intake URL
        name, _, value = query_string.partition("=")
        return {name: value} if query_string else {}
    pairs = (field.partition("=") for field in query_string.split("&") if field)
    return {name: value for name, _, value in pairs}
