"""uvicorn's HTTP protocol with each connection's writes of one event-loop turn sent together.

uvicorn writes a response's head and its body separately, and uvloop sends each write at once:
two system calls per answer, and the client wakes up twice. An intake answer is a few dozen
bytes, so under a burst those calls were a fifth of the serving thread's time. Here writes
made during one turn of the loop are joined and sent once, at the end of that turn; nothing
waits longer than that, and closing a connection sends what is pending first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tidings.dashboard.live import LIVE_PATH

__all__ = ["CoalescingHttpToolsProtocol", "CoalescingTransport"]


# Pending bytes past this go out at once, so a large or streamed answer reaches the real
# transport, and its flow control, without waiting for the end of the turn.
_FLUSH_AT = 64 * 1024


class CoalescingTransport:
    """A transport whose writes in one loop turn reach the real one as a single write."""

    __slots__ = ("_loop", "_pending", "_pending_size", "_real")

    def __init__(self, real: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._real = real
        self._loop = loop
        self._pending: list[bytes] = []
        self._pending_size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))
        self._pending_size += len(data)
        if self._pending_size >= _FLUSH_AT:
            self.flush()

    def writelines(self, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        """Send what is pending now (a closed connection drops it, as its own write would)."""
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        if not self._real.is_closing():
            self._real.write(data)

    def get_write_buffer_size(self) -> int:
        return self._real.get_write_buffer_size() + self._pending_size

    def write_eof(self) -> None:
        self.flush()
        self._real.write_eof()

    def close(self) -> None:
        self.flush()
        self._real.close()

    def abort(self) -> None:
        self._pending.clear()  # an abort discards what is buffered, ours included
        self._pending_size = 0
        self._real.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """What `tidings serve` gives uvicorn as its `http` protocol."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        real = cast(asyncio.Transport, transport)
        super().connection_made(cast(asyncio.Transport, CoalescingTransport(real, self.loop)))

    def shutdown(self) -> None:
        """A dashboard's live stream (server-sent events) never ends by itself, and uvicorn's
        graceful shutdown waits for every open response: close it, and the browser reconnects
        to whichever server is up."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and self._live_stream():
            self.transport.close()
            return
        super().shutdown()

    def _live_stream(self) -> bool:
        scope = getattr(self, "scope", None)
        return scope is not None and scope.get("path") == LIVE_PATH
