"""The POST of `send_http.post` over aiohttp, for sending many messages at once from one event
loop: a campaign's batch. Same request bytes (`Call.encoded`), same rules (a time-out on
every request, retries only where the earlier attempt cannot have sent anything), same
SendErrors; only the transport differs.

Why a second transport: a campaign against a provider that answers at once is bound by the
client's CPU, and httpx spent about 0.6 ms of it a request, more from threads contending for
its pool's lock (measured: 75% of a dispatching worker's time); aiohttp spends about 0.15 ms.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import httpx

from tidings.providers.send import SenderConfig, SendRequest, SendResult
from tidings.providers.send_http import (
    Call,
    HttpSender,
    answer_retry,
    broken,
    connect_retry,
    timed_out,
    undecodable,
    unusable_url,
)

__all__ = ["AioReply", "new_session", "post_async", "send_async"]


# What `_decoded` undoes. aiohttp would also ask for br and zstd where their libraries are
# installed, which it then decodes only itself.
_ACCEPTED_CODINGS = {"Accept-Encoding": "gzip, deflate"}


def new_session(concurrency: int) -> aiohttp.ClientSession:
    """The session `send_async` needs (make it in the event loop that will use it): at most
    `concurrency` connections; bodies left as they came, decoded by `_decoded` as httpx
    decodes them (aiohttp refuses a whole answer, its status too, in an encoding it lacks);
    no proxies from the environment (aiohttp's `trust_env` reads it and `~/.netrc` again for
    every request, a fifth of a dispatching worker's time, measured)."""
    connector = aiohttp.TCPConnector(
        limit=concurrency, limit_per_host=concurrency, ttl_dns_cache=60
    )
    return aiohttp.ClientSession(
        connector=connector, auto_decompress=False, headers=_ACCEPTED_CODINGS
    )


@dataclass(frozen=True, slots=True)
class AioReply:
    """An aiohttp answer as the senders read it (`send_http.Reply`). Why not an httpx.Response:
    building one from each answer took a sixth of the send process's time (measured)."""

    status_code: int
    reason_phrase: str
    headers: Mapping[str, str]
    content: bytes
    charset: str | None

    @property
    def text(self) -> str:
        """The body as text: by the charset the answer names, else UTF-8; bytes that do not
        decode are replaced, as an error message is only shown."""
        try:
            return self.content.decode(self.charset or "utf-8", errors="replace")
        except (LookupError, UnicodeError):  # a charset Python lacks, or a name it cannot read
            return self.content.decode("utf-8", errors="replace")

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


async def send_async(
    sender: HttpSender, session: aiohttp.ClientSession, request: SendRequest
) -> SendResult:
    """Send one message through `sender`'s provider over `session` (`new_session`); SendError
    as `send`."""
    call = sender.prepare(request)
    return sender.read(call, await post_async(session, sender.config, call))


async def post_async(session: aiohttp.ClientSession, config: SenderConfig, call: Call) -> AioReply:
    """POST the call and return the 2xx answer, or raise SendError."""
    try:
        body, headers = call.encoded()
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise unusable_url(call, exc) from None
    attempts = max(1, config.retry.attempts)
    for attempt in range(1, attempts + 1):
        try:
            response = await _exchange(session, config, call.url, body, headers)
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
            raise unusable_url(call, exc) from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            wait = connect_retry(config, call, exc, attempt)
            await asyncio.to_thread(config.sleep, wait)
            continue
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise timed_out(config, call, exc) from None
        except _Undecodable as exc:
            raise undecodable(call, exc) from None
        except aiohttp.ClientError as exc:
            raise broken(call, exc) from None
        retry_in = answer_retry(config, call, response, attempt)
        if retry_in is not None:
            await asyncio.to_thread(config.sleep, retry_in)
            continue
        return response
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


async def _exchange(
    session: aiohttp.ClientSession,
    config: SenderConfig,
    url: str,
    body: bytes,
    headers: list[tuple[str, str]],
) -> AioReply:
    # Each phase bounded as httpx bounds it: a connection not made in time sent nothing
    # (ConnectionTimeoutError); an answer not read in time may follow a sent message.
    timeout = aiohttp.ClientTimeout(
        total=None, connect=config.timeout, sock_connect=config.timeout, sock_read=config.timeout
    )
    async with session.post(
        url, data=body, headers=headers, allow_redirects=False, timeout=timeout
    ) as answer:
        content = await answer.read()
        # As httpx reads a reason: ASCII only (aiohttp keeps other bytes as lone surrogates,
        # which no store takes).
        reason = (answer.reason or "").encode("utf-8", "surrogateescape").decode("ascii", "ignore")
        try:
            content = _decoded(answer.headers.getall("Content-Encoding", []), content)
        except zlib.error as exc:
            raise _Undecodable(exc) from None
        return AioReply(answer.status, reason, answer.headers, content, answer.charset)


class _Undecodable(Exception):
    """A body that does not decode by its Content-Encoding."""


def _decoded(encodings: list[str], body: bytes) -> bytes:
    """The body as httpx reads it: the codings it always knows (gzip, deflate) undone, last
    applied first; any other left as it came (httpx decodes br and zstd only with libraries
    tidings does not install, and the session asks for neither). A stream cut short gives what
    it holds, as httpx's decoders do; zlib.error on one that does not decode at all."""
    named = [c.strip().lower() for value in encodings for c in value.split(",")]
    for coding in reversed([c for c in named if c in ("gzip", "deflate")]):
        if coding == "gzip":
            body = _inflate(body, zlib.MAX_WBITS | 16)
            continue
        try:  # zlib-wrapped, as HTTP says; some servers send it raw
            body = _inflate(body, zlib.MAX_WBITS)
        except zlib.error:
            body = _inflate(body, -zlib.MAX_WBITS)
    return body


def _inflate(body: bytes, wbits: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    return inflater.decompress(body) + inflater.flush()
