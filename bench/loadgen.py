"""A keep-alive HTTP/1.1 load generator on raw asyncio streams, for loopback benchmarks.

Why our own: on a 2-core machine an HTTP client library's per-request overhead (httpx,
aiohttp) would make the load generator the bottleneck instead of the server under test. Here
every request is prebuilt bytes, each of `concurrency` connections sends one request at a time
and reads the whole reply before the next, and a reply is parsed only as far as needed.

Each body is sent exactly once (never retried: a retry could store a webhook twice and blur the
ledger). A connection the server closes is reopened; a request that loses its connection
before the whole reply arrived is counted as unanswered and as an error.
"""

from __future__ import annotations

import asyncio
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


async def _read_reply(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body, and whether the connection may be reused."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > _MAX_HEAD_BYTES:
        raise _BadReply("reply head too large")
    lines = head[:-4].split(b"\r\n")
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
    if chunked:
        body = await _read_chunked(reader)
    elif length is not None:
        body = await reader.readexactly(length)
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:  # no framing: the body runs to the end of the connection
        body = await reader.read()
        keep_alive = False
    return status, body, keep_alive


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


class _Run:
    """State shared by the client tasks of one run (all on one event loop, so no locks)."""

    def __init__(self, host: str, port: int, requests: list[bytes]) -> None:
        self.host = host
        self.port = port
        self.requests = requests
        self.jobs: Iterator[int] = iter(range(len(requests)))
        self.replies: list[Reply | None] = [None] * len(requests)
        self.written = [False] * len(requests)
        self.errors = 0

    async def client(self) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            for index in self.jobs:
                reader, writer = await self._one(index, reader, writer)
        finally:
            if writer is not None:
                writer.close()

    async def _one(
        self,
        index: int,
        reader: asyncio.StreamReader | None,
        writer: asyncio.StreamWriter | None,
    ) -> tuple[asyncio.StreamReader | None, asyncio.StreamWriter | None]:
        """Send request `index`, on the open connection or a new one; the connection to reuse."""
        started = time.perf_counter()
        while reader is None or writer is None:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.errors += 1  # refused or reset on connect: nothing was sent, try again
                await asyncio.sleep(_CONNECT_RETRY_SECONDS)
                started = time.perf_counter()
        try:
            writer.write(self.requests[index])
            self.written[index] = True
            status, body, keep_alive = await _read_reply(reader)
        except (
            OSError,
            EOFError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
            _BadReply,
        ):
            self.errors += 1
            writer.close()
            return None, None
        self.replies[index] = Reply(status, body, time.perf_counter() - started)
        if not keep_alive:
            writer.close()
            return None, None
        return reader, writer


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
    started_at = time.time()
    tasks = [asyncio.create_task(run.client()) for _ in range(max(1, concurrency))]
    try:
        done, pending = await asyncio.wait(
            tasks, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION
        )
        finished_at = time.time()
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
    """`run_load` on a fresh event loop, uvloop when installed (cheaper per request)."""
    coroutine = run_load(host, port, path, bodies, concurrency, content_type, headers, timeout)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)
