"""httpcore's network streams on asyncio's own streams, for the sender's connections.

Why not httpcore's default (anyio): for every request, its connection pool asks each idle
connection whether the server closed it, which anyio answers with a `select()` call and some
layers of attribute lookups; with a dozen keep-alive connections to one subscriber that was
most of the sender's time (a profile of 2,000 deliveries to a local receiver). asyncio's event
loop already watches every socket, so here that question costs nothing: a server that closed
the connection has already fed its end of file to the reader.
"""

from __future__ import annotations

import asyncio
import ssl
import typing

import httpcore

__all__ = ["AsyncioStream", "connect"]

_LIMIT = 64 * 1024


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout("timed out reading the answer") from None
        except OSError as error:
            raise httpcore.ReadError(str(error) or type(error).__name__) from None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout("timed out sending the request") from None
        except OSError as error:
            raise httpcore.WriteError(str(error) or type(error).__name__) from None

    async def aclose(self) -> None:
        self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            raise httpcore.ConnectTimeout("timed out in the TLS handshake") from None
        except (OSError, ssl.SSLError) as error:
            raise httpcore.ConnectError(str(error) or type(error).__name__) from None
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":  # asked of idle connections: did the server close it?
            return self._reader.at_eof() or self._reader.exception() is not None
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        return None


async def connect(host: str, port: int, timeout: float | None) -> AsyncioStream:
    """A TCP connection to `host` (an address the guard checked) and `port`."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=_LIMIT)
    except TimeoutError:
        raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
    except OSError as error:
        raise httpcore.ConnectError(str(error) or type(error).__name__) from None
    return AsyncioStream(reader, writer)
