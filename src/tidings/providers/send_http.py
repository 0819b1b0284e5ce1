"""One request to a provider's API under tidings' rules: a time-out on every request, retries
only where the earlier attempt cannot have sent anything, and every failure as a SendError.

What is safe to try again (see `RetryPolicy`):

- the connection never opened (`httpx.ConnectError`, `ConnectTimeout`, `PoolTimeout`): not one
  byte of the request left this process, so the provider cannot have acted on it;
- the provider answered a status its client lists in `retry_statuses` (a 429, where the
  provider documents that the request was turned away) with a `Retry-After` no longer than
  `RetryPolicy.max_wait`.

Anything else after the request went out (a read time-out, a dropped connection) leaves the
outcome unknown and is never retried here: `SendError(outcome_unknown=True)`.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from tidings import json_text
from tidings.logging import get_logger, mask_text
from tidings.providers.send import SenderConfig, SendError, SendFailure, SendRequest, SendResult

__all__ = [
    "Call",
    "Endpoint",
    "HttpSender",
    "Reply",
    "answer_retry",
    "broken",
    "connect_retry",
    "json_body",
    "no_id",
    "parse_retry_after",
    "post",
    "refusal",
    "timed_out",
    "undecodable",
    "unusable_url",
]

_log = get_logger("providers.send")


class Reply(Protocol):
    """A provider's answer as a sender reads it: an httpx.Response (`post`), or the lighter
    answer of a campaign's aiohttp transport (`send_async`)."""

    @property
    def status_code(self) -> int: ...
    @property
    def reason_phrase(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    @property
    def is_success(self) -> bool: ...


@dataclass(frozen=True)
class Endpoint:
    """A provider's send endpoint as the transport sees it: which answers turned the request
    away without effect (so it may be tried again after `Retry-After`), and how a non-2xx
    answer becomes a SendError in that provider's terms."""

    provider: str
    retry_statuses: frozenset[int]
    refusal: Callable[[Reply, float | None], SendError]


@dataclass(frozen=True)
class Call:
    """One POST to a provider's send endpoint, as data, so that one sender's request goes out
    the same over either transport (`post` here, `send_async.post_async` for a campaign's
    batch). `recipient` is only for log lines, masked; `chosen_id` is the message id tidings
    chose where the provider lets it (Infobip), kept on an unknown outcome."""

    endpoint: Endpoint
    url: str
    recipient: str
    json: Any = None
    data: Mapping[str, str] | None = None
    files: Sequence[tuple[str, tuple[None, str]]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    chosen_id: str | None = None

    def content(self) -> dict[str, Any]:
        """The body (JSON, form or multipart) and headers, as httpx takes them."""
        return {"json": self.json, "data": self.data, "files": self.files, "headers": self.headers}

    def encoded(self) -> tuple[bytes, list[tuple[str, str]]]:
        """The body and headers `post` sends (without those a transport sets itself: Host,
        Content-Length), for another transport to send. A JSON body, what most providers
        take, is encoded here exactly as httpx encodes it, without the cost of an
        httpx.Request (its URL parsing was a twentieth of a campaign's time); a form or
        multipart body is left to httpx. Raises httpx.InvalidURL or UnicodeError where httpx
        would: a URL it cannot send to, a header that is not ASCII."""
        if self.data is None and self.files is None:
            _check_url(self.url)
            headers = list(self.headers.items())
            for name, value in headers:
                name.encode("ascii")
                value.encode("ascii")
            if self.json is None:
                return b"", headers
            if not any(name.lower() == "content-type" for name, _ in headers):
                headers.append(("Content-Type", "application/json"))
            body = json.dumps(self.json, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            return body.encode("utf-8"), headers
        request = httpx.Request("POST", self.url, **self.content())
        skip = {"host", "content-length"}
        return request.read(), [(k, v) for k, v in request.headers.multi_items() if k not in skip]


class HttpSender:
    """A send client in two pure halves around one POST: `prepare` turns a SendRequest into a
    Call (or raises SendError when it cannot be sent), `read` turns the 2xx answer into a
    SendResult. `send` joins them over httpx; a campaign joins them over aiohttp."""

    provider: str

    def __init__(self, config: SenderConfig, http: httpx.Client | None) -> None:
        self.config = config
        self._http = http

    def prepare(self, request: SendRequest) -> Call:
        raise NotImplementedError

    def read(self, call: Call, response: Reply) -> SendResult:
        raise NotImplementedError

    def send(self, request: SendRequest) -> SendResult:
        if self._http is None:
            raise TypeError(f"this {self.provider} client was made without an httpx.Client")
        call = self.prepare(request)
        return self.read(call, post(self._http, self.config, call))


def post(http: httpx.Client, config: SenderConfig, call: Call) -> httpx.Response:
    """POST the call and return the 2xx answer, or raise SendError."""
    attempts = max(1, config.retry.attempts)
    for attempt in range(1, attempts + 1):
        try:
            request = http.build_request(
                "POST", call.url, timeout=httpx.Timeout(config.timeout), **call.content()
            )
            response = http.send(request)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, UnicodeError) as exc:
            raise unusable_url(call, exc) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            config.sleep(connect_retry(config, call, exc, attempt))
            continue
        except httpx.TimeoutException as exc:
            raise timed_out(config, call, exc) from None
        except httpx.TransportError as exc:
            raise broken(call, exc) from None
        except httpx.DecodingError as exc:
            raise undecodable(call, exc) from None
        wait = answer_retry(config, call, response, attempt)
        if wait is not None:
            config.sleep(wait)
            continue
        return response
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


def unusable_url(call: Call, exc: BaseException) -> SendError:
    """Found before any byte left: the connection's api_url is not a URL a client can use."""
    provider = call.endpoint.provider
    return SendError(
        f"{provider}: the api_url {mask_text(call.url)!r} cannot be used "
        f"({type(exc).__name__}: {exc}); nothing was sent",
        provider=provider,
        kind=SendFailure.CONFIG,
    )


def connect_retry(config: SenderConfig, call: Call, exc: BaseException, attempt: int) -> float:
    """The wait before connecting again, when attempts are left; else the SendError (nothing
    was sent: the connection never opened)."""
    provider = call.endpoint.provider
    attempts = max(1, config.retry.attempts)
    if attempt < attempts:
        _log.warning(
            "%s: could not connect to send to %s (%s); trying again (attempt %d of %d)",
            provider,
            mask_text(call.recipient),
            type(exc).__name__,
            attempt + 1,
            attempts,
        )
        return config.retry.connect_backoff * attempt
    raise SendError(
        f"{provider}: could not connect to {_origin(call.url)} ({type(exc).__name__}); "
        "nothing was sent",
        provider=provider,
        kind=SendFailure.UNAVAILABLE,
    ) from None


def timed_out(config: SenderConfig, call: Call, exc: BaseException) -> SendError:
    provider = call.endpoint.provider
    return _unknown(
        call,
        SendError(
            f"{provider}: no answer within {config.timeout:g} s ({type(exc).__name__}); "
            "the message may have been sent",
            provider=provider,
            kind=SendFailure.TIMEOUT,
            outcome_unknown=True,
        ),
    )


def broken(call: Call, exc: BaseException) -> SendError:
    provider = call.endpoint.provider
    return _unknown(
        call,
        SendError(
            f"{provider}: the connection broke after the request was sent "
            f"({type(exc).__name__}); the message may have been sent",
            provider=provider,
            kind=SendFailure.CONNECTION_LOST,
            outcome_unknown=True,
        ),
    )


def undecodable(call: Call, exc: BaseException) -> SendError:
    """An answer whose body does not decode by its Content-Encoding (a corrupt gzip): the
    request was taken or refused, which cannot be told."""
    provider = call.endpoint.provider
    return _unknown(
        call,
        SendError(
            f"{provider} answered a body that does not decode ({exc}); "
            "the message may have been sent",
            provider=provider,
            kind=SendFailure.BAD_ANSWER,
            outcome_unknown=True,
        ),
    )


def _unknown(call: Call, error: SendError) -> SendError:
    error.provider_message_id = call.chosen_id
    return error


def answer_retry(config: SenderConfig, call: Call, response: Reply, attempt: int) -> float | None:
    """None for a 2xx answer; the wait before sending again for an answer that turned the
    request away and asked for a wait within bounds, when attempts are left; else the
    provider's refusal as a SendError."""
    if response.is_success:
        return None
    endpoint = call.endpoint
    policy = config.retry
    wait = parse_retry_after(response.headers.get("retry-after"), config.clock())
    if (
        response.status_code in endpoint.retry_statuses
        and wait is not None
        and wait <= policy.max_wait
        and attempt < max(1, policy.attempts)
    ):
        _log.warning(
            "%s: HTTP %d sending to %s; waiting %.3g s as Retry-After says (attempt %d of %d)",
            endpoint.provider,
            response.status_code,
            mask_text(call.recipient),
            wait,
            attempt + 1,
            max(1, policy.attempts),
        )
        return wait
    error = endpoint.refusal(response, wait)
    _log.info("%s: send to %s failed: %s", endpoint.provider, mask_text(call.recipient), error)
    raise error


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delay-seconds or an HTTP date), or None
    when there is none or it cannot be read.

    An answer that repeats the header reaches httpx as the values joined by commas ("5, 7"),
    while aiohttp gives the first alone: the first value is read in both cases, so a send waits
    the same whichever transport carried it. (An HTTP date holds one comma of its own.)"""
    if value is None or not value.strip():
        return None
    parts = [part.strip() for part in value.strip().split(",")]
    for candidate in (parts[0], ", ".join(parts[:2])):  # seconds, or a date's two pieces
        wait = _retry_after(candidate, now)
        if not isinstance(wait, _Unreadable):
            return wait
    return None


class _Unreadable:
    """What `_retry_after` says of a text that is neither seconds nor a date."""


_UNREADABLE = _Unreadable()


def _retry_after(text: str, now: datetime) -> float | _Unreadable | None:
    """One `Retry-After` value: seconds, None when it says no usable wait, or `_UNREADABLE`."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return _UNREADABLE
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def json_body(response: Reply) -> Any:
    """The decoded JSON answer, or None when it is not JSON."""
    try:
        return json_text.loads(response.content)
    except (ValueError, RecursionError):
        return None


def no_id(
    provider: str,
    response: Reply,
    answer: Any,
    where: str,
    provider_message_id: str | None = None,
) -> SendError:
    """A 2xx answer without the message's id where the provider documents it: the request
    was taken, so the message may have gone out (an unknown outcome, never sent again)."""
    return SendError(
        f"{provider} answered HTTP {response.status_code} without {where}; "
        "the message may have been sent",
        provider=provider,
        kind=SendFailure.BAD_ANSWER,
        http_status=response.status_code,
        outcome_unknown=True,
        provider_message_id=provider_message_id,
        raw=answer,
    )


def refusal(
    response: Reply,
    *,
    provider: str,
    code: str | None,
    message: str | None,
    retry_after: float | None,
    kind: SendFailure | None = None,
    permanent: bool | None = None,
) -> SendError:
    """A non-2xx answer as a SendError. `kind` and `permanent` default from the HTTP status:
    401/403 credentials, 404 and redirects the connection's URL or account, 429 rate limit,
    5xx unavailable (none of them permanent); any other 4xx a permanent refusal."""
    status = response.status_code
    if kind is None:
        kind = _kind_of(status)
    if permanent is None:
        permanent = kind in (SendFailure.REFUSED, SendFailure.INVALID)
    text = (message or "").strip() or response.reason_phrase or "no reason given"
    said = f"{code}: {text}" if code else text
    hint = _HINTS.get(kind, "")
    return SendError(
        f"{provider} answered HTTP {status}: {said}{hint}",
        provider=provider,
        kind=kind,
        http_status=status,
        code=code,
        provider_message=text,
        permanent=permanent,
        retry_after=retry_after,
        raw=json_body(response) if response.content else None,
    )


def _kind_of(status: int) -> SendFailure:
    if status in (401, 403):
        return SendFailure.AUTH
    if status == 404 or 300 <= status < 400:
        return SendFailure.CONFIG
    if status == 429:
        return SendFailure.RATE_LIMITED
    if status >= 500 or status == 408:
        return SendFailure.UNAVAILABLE
    return SendFailure.REFUSED


_HINTS = {
    SendFailure.AUTH: " (check the connection's api_key / secret)",
    SendFailure.CONFIG: " (check the connection's api_url and account options)",
}


@functools.lru_cache(maxsize=256)
def _check_url(url: str) -> None:
    """Refuse what httpx refuses (a control character, no host, another scheme); a
    campaign's URL is checked once, not for each of its messages."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise httpx.InvalidURL(f"not an http(s) URL with a host: {url!r}")


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"
