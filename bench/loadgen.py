"""A keep-alive HTTP/1.1 load generator on raw asyncio streams, for loopback benchmarks.

Why our own: on a 2-core machine an HTTP client library's per-request overhead (httpx,
aiohttp) would make the load generator the bottleneck instead of the server under test, and
the CPU it takes is CPU the server does not get. Here every request is prebuilt bytes, each of
`concurrency` connections (an asyncio Protocol, driven by callbacks rather than a task per
request) sends one request at a time and reads the whole reply before the next, and a reply is
parsed only as far as needed.

Each body is sent exactly once (never retried: a retry could store a webhook twice and blur the
ledger). A connection the server closes is reopened; a request that loses its connection
before the whole reply arrived is counted as unanswered and as an error.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import math
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["LoadResult", "Reply", "percentile", "percentiles", "run_load", "run_load_blocking"]

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_CONNECT_RETRY_SECONDS = 0.05
_MAX_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Reply:
    """What came back for one request: its status, body and latency (send to last byte)."""

    status: int
    body: bytes
    latency: float


@dataclass
class LoadResult:
    """One run. `replies[i]` answers `bodies[i]`; None when it was unsent or unanswered."""

    sent: int
    status_counts: Counter[int]
    latencies: list[float]
    started_at: float  # wall clock (time.time()), comparable with timestamps in a store
    finished_at: float
    errors: int  # connections lost or refused, replies that could not be read
    replies: list[Reply | None] = field(default_factory=list)
    timed_out: bool = False
    cpu_seconds: float = 0.0  # this process's CPU from the first request to the last answer

    @property
    def duration(self) -> float:
        return self.finished_at - self.started_at

    @property
    def unanswered(self) -> int:
        """Requests written to a connection that gave no complete reply."""
        return self.sent - sum(self.status_counts.values())

    def count(self, low: int, high: int) -> int:
        """Replies with a status in [low, high)."""
        return sum(n for status, n in self.status_counts.items() if low <= status < high)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; nan when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 90, 99)) -> dict[float, float]:
    """Several nearest-rank percentiles, sorting once."""
    ordered = sorted(values)
    return {q: percentile(ordered, q) for q in qs}


def _build_request(
    host: str, port: int, path: str, body: bytes, content_type: str, headers: Mapping[str, str]
) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _BadReply(Exception):
    pass


_UNTIL_CLOSE = -1  # a reply without framing: its body runs to the end of the connection


def _parse_reply(buffer: bytearray) -> tuple[int, bytes, bool, int] | None:
    """(status, body, keep-alive, bytes used) of the reply at the start of `buffer`, or None
    while it is incomplete. Bytes used is `_UNTIL_CLOSE` for a reply framed by closing."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > _MAX_HEAD_BYTES:
            raise _BadReply("reply head too large")
        return None
    lines = bytes(buffer[:end]).split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    try:
        status = int(rest[:3])
    except ValueError:
        raise _BadReply(f"bad status line {lines[0]!r}") from None
    length: int | None = None
    chunked = False
    keep_alive = version == b"HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            keep_alive = b"close" not in value and (keep_alive or b"keep-alive" in value)
    start = end + 4
    if chunked:
        return _parse_chunked(buffer, start, status, keep_alive)
    if length is not None:
        if len(buffer) < start + length:
            return None
        return status, bytes(buffer[start : start + length]), keep_alive, start + length
    if status in (204, 304) or 100 <= status < 200:
        return status, b"", keep_alive, start
    return status, b"", False, _UNTIL_CLOSE


def _parse_chunked(
    buffer: bytearray, at: int, status: int, keep_alive: bool
) -> tuple[int, bytes, bool, int] | None:
    parts: list[bytes] = []
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";", 1)[0].strip(), 16)
        at = line_end + 2
        if size == 0:
            while True:  # trailers, up to the empty line
                line_end = buffer.find(b"\r\n", at)
                if line_end < 0:
                    return None
                empty = line_end == at
                at = line_end + 2
                if empty:
                    return status, b"".join(parts), keep_alive, at
        if len(buffer) < at + size + 2:
            return None
        parts.append(bytes(buffer[at : at + size]))
        at += size + 2


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending its run's requests one at a time, from callbacks:
    no task switch per request, so the client costs far less than the server it loads."""

    def __init__(self, run: _Run, opened_at: float, closed: asyncio.Future[None]) -> None:
        self._run = run
        self._opened_at = opened_at
        self._closed = closed
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._index: int | None = None
        self._started = 0.0
        self._until_close = False
        self._status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self._send_next(self._opened_at)

    def _send_next(self, started: float | None = None) -> None:
        assert self._transport is not None
        index = next(self._run.jobs, None)
        if index is None:
            self._run.exhausted = True
            self._transport.close()
            return
        self._index = index
        self._started = time.perf_counter() if started is None else started
        self._run.written[index] = True
        self._transport.write(self._run.requests[index])

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        self._buffer += data
        if self._until_close or self._index is None:
            return
        try:
            reply = _parse_reply(self._buffer)
        except (_BadReply, ValueError):
            self._transport.close()  # connection_lost counts the request as an error
            return
        if reply is None:
            return
        status, body, keep_alive, used = reply
        if used == _UNTIL_CLOSE:
            self._until_close = True
            self._status = status
            return
        del self._buffer[:used]
        self._record(status, body)
        if keep_alive:
            self._send_next()
        else:
            self._transport.close()

    def _record(self, status: int, body: bytes) -> None:
        assert self._index is not None
        self._run.replies[self._index] = Reply(status, body, time.perf_counter() - self._started)
        self._index = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._index is not None:
            if self._until_close and exc is None:
                end = self._buffer.find(b"\r\n\r\n")
                self._record(self._status, bytes(self._buffer[end + 4 :]))
            else:
                self._run.errors += 1  # the request lost its connection before its reply
        if not self._closed.done():
            self._closed.set_result(None)


class _Run:
    """State shared by the connections of one run (all on one event loop, so no locks)."""

    def __init__(self, host: str, port: int, requests: list[bytes]) -> None:
        self.host = host
        self.port = port
        self.requests = requests
        self.jobs: Iterator[int] = iter(range(len(requests)))
        self.exhausted = False
        self.replies: list[Reply | None] = [None] * len(requests)
        self.written = [False] * len(requests)
        self.errors = 0

    async def client(self) -> None:
        """Keep one connection open (reopening it when the server closes it) until every
        request of the run has been sent and answered."""
        loop = asyncio.get_running_loop()
        while not self.exhausted:
            opened_at = time.perf_counter()
            closed: asyncio.Future[None] = loop.create_future()
            try:
                transport, _ = await loop.create_connection(
                    functools.partial(_Connection, self, opened_at, closed), self.host, self.port
                )
            except OSError:
                self.errors += 1  # refused or reset on connect: nothing was sent, try again
                await asyncio.sleep(_CONNECT_RETRY_SECONDS)
                continue
            try:
                await closed
            finally:
                transport.close()


async def run_load(
    host: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    concurrency: int = 64,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
    timeout: float = 600.0,
) -> LoadResult:
    """POST every body once to http://host:port/path over `concurrency` keep-alive connections.

    Stops after `timeout` seconds whatever is left; requests in flight then count as unanswered
    and `timed_out` is set. Only loopback hosts are accepted: this is a benchmark tool.
    """
    if host not in LOOPBACK:
        raise ValueError(f"run_load only targets loopback, not {host!r}")
    requests = [
        _build_request(host, port, path, body, content_type, headers or {}) for body in bodies
    ]
    run = _Run(host, port, requests)
    started_at, cpu_started = time.time(), time.process_time()
    tasks = [asyncio.create_task(run.client()) for _ in range(max(1, concurrency))]
    try:
        done, pending = await asyncio.wait(
            tasks, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION
        )
        finished_at, cpu_spent = time.time(), time.process_time() - cpu_started
        for task in done:
            task.result()  # a client that crashed is a bug here: let it surface
        timed_out = bool(pending)
    finally:  # also on cancellation (Ctrl-C): close every connection before leaving
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    answered = [reply for reply in run.replies if reply is not None]
    return LoadResult(
        sent=sum(run.written),
        status_counts=Counter(reply.status for reply in answered),
        latencies=[reply.latency for reply in answered],
        started_at=started_at,
        finished_at=finished_at,
        errors=run.errors,
        replies=run.replies,
        timed_out=timed_out,
        cpu_seconds=cpu_spent,
    )


def run_load_blocking(
    host: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    concurrency: int = 64,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
    timeout: float = 600.0,
) -> LoadResult:
    """`run_load` on a fresh event loop, uvloop when installed (cheaper per request), with
    this process's garbage collector paused: its full collections walk every object the
    bench holds (more once it has imported, say, psycopg for the scale-out run) and stalled
    the client for milliseconds, which the client then timed as the server's latency
    (measured: tidings' p99 22-41 ms with psycopg imported, 12-15 ms without). Reference
    counting still frees what a request leaves behind."""
    coroutine = run_load(host, port, path, bodies, concurrency, content_type, headers, timeout)
    gc.collect()
    gc.disable()
    try:
        try:
            import uvloop
        except ImportError:
            return asyncio.run(coroutine)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coroutine)
    finally:
        gc.enable()
