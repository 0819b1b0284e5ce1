"""Callyzer's call history API: the client the verification poll fetches calls with.

What real accounts answer, beyond what Callyzer documents: `POST {api_url}/call-log/history`
with `Authorization: Bearer <api key>` and a JSON body (`synced_from`/`synced_to` in UNIX
seconds, `emp_numbers` written `<country code>-<number>`, `page_no` from 1, `page_size` at most
100) answers `{"message": "Success", "result": [flat calls], "total_records": N}`. Each account
may send one request every two seconds (a 429 with `Retry-After` otherwise), and now and then
the answer is a 400 whose body is a raw database error, which passes when asked again.

Every failure is one `CallyzerApiError`; its `kind` says what the caller can do:

    credentials_rejected   401 or 403: the api_key is wrong or revoked; asking again cannot help
    transient              time-out, connection refused, 5xx, the 400 database error, or 429s
                           past their budget, still failing after the tries ran out
    other                  any other answer: a 400 for a query Callyzer refuses, a 404 from a
                           wrong api_url, a body that is not the shape Callyzer sends
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

import httpx
import phonenumbers

from tidings.domain.errors import TidingsError
from tidings.providers.send_http import parse_retry_after

__all__ = [
    "HISTORY_PATH",
    "MAX_PAGE_SIZE",
    "CallyzerApiError",
    "CallyzerClient",
    "Clock",
    "HistoryPage",
    "HistoryQuery",
    "RateLimiter",
    "Retry",
    "SystemClock",
    "employee_number",
    "employee_numbers",
    "shared_limiter",
]

HISTORY_PATH: Final = "call-log/history"
MAX_PAGE_SIZE: Final = 100  # Callyzer's own cap
# One request per two seconds per account (developers.callyzer.co, "Rate limit").
MIN_INTERVAL_SECONDS: Final = 2.0
# A runaway paging loop (a `total_records` that grows forever) stops here.
MAX_PAGES: Final = 10_000

# A 400 whose body names the database is Callyzer's own store failing, not our query.
_DATABASE_ERROR_MARKERS: Final = (
    "sql",
    "jdbc",
    "database",
    "hibernate",
    "deadlock",
    "could not execute",
    "lock wait",
    "connection is closed",
)

ErrorKind = Literal["credentials_rejected", "transient", "other"]


class CallyzerApiError(TidingsError):
    """A call to Callyzer's API failed; `kind` says whether asking again can help."""

    def __init__(
        self, kind: ErrorKind, message: str, status: int | None = None, tries: int = 1
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.status = status
        self.tries = tries

    @property
    def credentials_rejected(self) -> bool:
        return self.kind == "credentials_rejected"


class Clock(Protocol):
    """Time as the client sees it: tests pass one that advances only when slept on."""

    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class RateLimiter:
    """At most one request per `interval` seconds, whichever thread of this process asks."""

    def __init__(self, interval: float = MIN_INTERVAL_SECONDS, clock: Clock | None = None) -> None:
        self.interval = interval
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._next = -math.inf

    def acquire(self) -> None:
        """Wait for the next free slot and take it. Waiters queue on the lock, so two threads
        never share a slot."""
        with self._lock:
            wait = self._next - self.clock.monotonic()
            if wait > 0:
                self.clock.sleep(wait)
            self._next = self.clock.monotonic() + self.interval

    def defer(self, seconds: float) -> None:
        """The server asked for a pause (429 Retry-After): no request before it has passed."""
        with self._lock:
            self._next = max(self._next, self.clock.monotonic() + seconds)


_LIMITERS: dict[str, RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(api_url: str, api_key: str) -> RateLimiter:
    """The limiter of one Callyzer account in this process: the two-second rule is per
    account, so every client of it (two connections with one key, a manual backfill beside
    the scheduled one) takes turns."""
    key = hashlib.sha256(f"{api_url.rstrip('/')}\n{api_key}".encode()).hexdigest()
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            limiter = _LIMITERS[key] = RateLimiter()
        return limiter


@dataclass(frozen=True)
class Retry:
    """How a request that failed for a reason that may pass is asked again.

    `tries` counts every attempt (3: the first and two more), with `backoff` seconds before the
    second, doubling up to `max_backoff`, each stretched by up to `jitter` of itself. A 429 is
    not a failure but a request to wait: it is honoured up to `rate_limited_waits` times per
    request, for at most `max_retry_after` seconds each."""

    tries: int = 3
    backoff: float = 2.0
    max_backoff: float = 30.0
    jitter: float = 0.1
    rate_limited_waits: int = 5
    max_retry_after: float = 120.0

    def delay(self, failed: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the `failed`-th failed attempt (1-based)."""
        base = min(self.max_backoff, self.backoff * 2.0 ** (failed - 1))
        return base * (1 + self.jitter * rng())


@dataclass(frozen=True)
class HistoryQuery:
    """Calls synced to Callyzer in [synced_from, synced_to] (sync time, not call time: phones
    sync late), of these employees (all of the account's when empty)."""

    synced_from: datetime
    synced_to: datetime
    emp_numbers: tuple[str, ...] = ()

    def body(self, page_no: int, page_size: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "synced_from": math.floor(self.synced_from.timestamp()),
            "synced_to": math.ceil(self.synced_to.timestamp()),
            "page_no": page_no,
            "page_size": page_size,
        }
        if self.emp_numbers:
            body["emp_numbers"] = list(self.emp_numbers)
        return body


@dataclass(frozen=True)
class HistoryPage:
    """One page of the call history: its calls as Callyzer sent them (flat objects), the total
    Callyzer announced (None when it said none), and how many requests this page took."""

    page_no: int
    calls: list[Any]
    total_records: int | None
    requests: int = 1
    body: bytes = field(default=b"", repr=False)


def employee_number(number: str) -> str:
    """An employee's number as Callyzer's filters take it: `<country code>-<national number>`
    (`+919876543210` → `91-9876543210`); a number that does not parse is sent as its digits."""
    try:
        parsed = phonenumbers.parse(number if number.startswith("+") else f"+{number}")
    except phonenumbers.NumberParseException:
        return "".join(ch for ch in number if ch.isdigit())
    return f"{parsed.country_code}-{parsed.national_number}"


class CallyzerClient:
    """The history API of one Callyzer account.

    `api_url` is what an admin configured (`--option api_url=`), e.g.
    `https://api1.callyzer.co/api/v2.2`; it is trusted and not checked against private
    addresses. `clock` and `limiter` are for tests (a clock that advances only when slept on);
    by default the limiter is the account's, shared in this process."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        page_size: int = MAX_PAGE_SIZE,
        retry: Retry | None = None,
        clock: Clock | None = None,
        limiter: RateLimiter | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1-{MAX_PAGE_SIZE}, not {page_size}")
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.page_size = page_size
        self.retry = retry or Retry()
        self.clock: Clock = clock or (limiter.clock if limiter else SystemClock())
        self.limiter = limiter or shared_limiter(api_url, api_key)
        self._rng = rng
        self.requests = 0  # every HTTP request sent, retries and 429s included
        self.retries = 0  # requests that repeated one that failed or was told to wait
        self._http = httpx.Client(
            base_url=self.api_url + "/",
            timeout=timeout,
            follow_redirects=False,
            headers={
                "authorization": f"Bearer {api_key}",
                "accept": "application/json",
                "user-agent": "tidings (verification poll)",
            },
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CallyzerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def history(self, query: HistoryQuery) -> Iterator[HistoryPage]:
        """Every page of the query, in order, until all `total_records` are fetched (or a page
        comes back short or empty, when Callyzer announced no total or a stale one)."""
        page_no = 1
        fetched = 0
        while True:
            page = self.history_page(query, page_no)
            yield page
            fetched += len(page.calls)
            if not page.calls or len(page.calls) < self.page_size:
                return
            if page.total_records is not None and fetched >= page.total_records:
                return
            page_no += 1
            if page_no > MAX_PAGES:
                raise CallyzerApiError(
                    "other", f"Callyzer kept sending full pages past page {MAX_PAGES}; stopped"
                )

    def history_page(self, query: HistoryQuery, page_no: int) -> HistoryPage:
        before = self.requests
        response = self._post(HISTORY_PATH, query.body(page_no, self.page_size))
        calls, total = _history_of(response)
        return HistoryPage(page_no, calls, total, self.requests - before, response.content)

    def _post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        """POST with the rate limit, 429 waits and retries; the 2xx response, else raises."""
        failures = 0
        waits = 0
        first = True
        while True:
            self.limiter.acquire()
            if not first:
                self.retries += 1
            first = False
            self.requests += 1
            try:
                response = self._http.post(path, json=dict(body))
            except httpx.TimeoutException:
                error = CallyzerApiError(
                    "transient", f"Callyzer did not answer within {self.timeout:g}s (time-out)"
                )
            except httpx.TransportError as exc:
                error = CallyzerApiError(
                    "transient", f"could not reach Callyzer at {self.api_url}: {exc}"
                )
            except httpx.DecodingError as exc:  # a body its Content-Encoding does not match
                error = CallyzerApiError(
                    "transient", f"Callyzer's answer could not be decoded ({exc})"
                )
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return response
                if status == 429:
                    wait = _retry_after(response, self.limiter.interval)
                    if waits < self.retry.rate_limited_waits and wait <= self.retry.max_retry_after:
                        waits += 1
                        self.limiter.defer(wait)
                        continue
                    raise CallyzerApiError(
                        "transient",
                        f"Callyzer kept answering 429 Too Many Requests (asked to wait {wait:g}s)",
                        status,
                        failures + waits + 1,
                    )
                error = _error_of(response)
                if error.kind != "transient":
                    error.tries = failures + 1
                    raise error
            failures += 1
            if failures >= self.retry.tries:
                raise CallyzerApiError(
                    error.kind, f"{error.message} (tried {failures} times)", error.status, failures
                )
            self.clock.sleep(self.retry.delay(failures, self._rng))


def _retry_after(response: httpx.Response, default: float) -> float:
    """Seconds the server asked to wait (`Retry-After`, read as every send client reads it),
    else `default`."""
    wait = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
    return default if wait is None else wait


def _message_of(response: httpx.Response) -> str:
    """What the server said, short: the JSON `message` (or `error`), else the text."""
    text = response.text
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            if isinstance(data.get(key), str) and data[key].strip():
                return " ".join(data[key].split())[:300]
    return " ".join(text.split())[:300] or response.reason_phrase


def _error_of(response: httpx.Response) -> CallyzerApiError:
    status = response.status_code
    said = _message_of(response)
    if status in (401, 403):
        return CallyzerApiError(
            "credentials_rejected",
            f"Callyzer rejected the API key (HTTP {status}: {said}); set the right one with "
            "--option api_key=KEY",
            status,
        )
    if status >= 500:
        return CallyzerApiError("transient", f"Callyzer failed (HTTP {status}: {said})", status)
    if status == 400 and any(marker in response.text.lower() for marker in _DATABASE_ERROR_MARKERS):
        return CallyzerApiError(
            "transient", f"Callyzer's database failed (HTTP 400: {said[:120]})", status
        )
    hint = " (is api_url right? e.g. https://api1.callyzer.co/api/v2.2)" if status == 404 else ""
    return CallyzerApiError(
        "other", f"Callyzer refused the request (HTTP {status}: {said}){hint}", status
    )


def _history_of(response: httpx.Response) -> tuple[list[Any], int | None]:
    """The calls and announced total of a history answer, in every shape seen: the documented
    `{"result": [...], "total_records": N}`, `data` for `result`, `total` for
    `total_records` (numbers or numeric strings), a `result` of null when nothing matched, or
    a bare list."""
    try:
        document = response.json()
    except ValueError:
        raise CallyzerApiError(
            "other",
            f"Callyzer's answer is not JSON (HTTP {response.status_code}: "
            f"{' '.join(response.text.split())[:120]})",
            response.status_code,
        ) from None
    if isinstance(document, list):
        return document, None
    if not isinstance(document, dict):
        raise CallyzerApiError(
            "other", "Callyzer's answer is neither a list of calls nor an object", 200
        )
    calls: Any = None
    for key in ("result", "data"):
        if key in document:
            calls = document[key]
            break
    if calls is None:
        calls = []
    if not isinstance(calls, list):
        raise CallyzerApiError(
            "other",
            f"Callyzer's answer has no list of calls (result is {type(calls).__name__}): "
            f"{_summary(document)}",
            200,
        )
    return calls, _total(document)


def _total(document: Mapping[str, Any]) -> int | None:
    for key in ("total_records", "total"):
        value = document.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
    return None


def _summary(document: Mapping[str, Any]) -> str:
    message = document.get("message")
    return str(message)[:120] if message else ", ".join(sorted(map(str, document))[:8])


def employee_numbers(numbers: Sequence[str]) -> tuple[str, ...]:
    """Employee numbers for a query, each once, in a stable order."""
    return tuple(sorted({employee_number(n) for n in numbers if n}))
