"""The SSRF guard at the edge: a subscriber URL is checked when it is given, and every
connection the sender opens is checked again, to the address it actually connects to.

Checking the URL once is not enough: a name can resolve to a public address when it is
checked and to a private one a minute later (DNS rebinding). So the sender's connections go
through `GuardedBackend`, which resolves the host itself, refuses if any address it gets is
refused (`domain.addresses`), and connects to the checked address; TLS still verifies the
certificate against the host name, and the Host header stays the name, because httpcore takes
both from the URL, not from the socket.
"""

from __future__ import annotations

import asyncio
import socket
import typing
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

import httpcore
import httpx

from tidings.domain.addresses import AddressPolicy, IPAddress, literal_address
from tidings.domain.errors import Invalid
from tidings.outbound.streams import connect

__all__ = [
    "GuardedBackend",
    "GuardedTransport",
    "RefusedAddress",
    "check_url",
    "resolve",
]

Resolve = Callable[[str, int], Sequence[IPAddress]]


class RefusedAddress(Invalid):
    """A subscriber URL, or the address it resolves to, that tidings will not send to."""


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for `host` (a literal in any spelling is read
    as the address it stands for). Raises RefusedAddress when it resolves to nothing."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise RefusedAddress(f"cannot resolve {host!r}: {error}") from None
    return _addresses(info[4][0] for info in infos)


def _addresses(values: Iterable[object]) -> list[IPAddress]:
    found: list[IPAddress] = []
    for value in values:
        address = literal_address(str(value))
        if address is not None and address not in found:
            found.append(address)
    return found


def check_url(url: str, policy: AddressPolicy, resolver: Resolve = resolve) -> None:
    """Refuse a subscriber URL that is not http(s), or whose host resolves to an address the
    policy refuses.

    Raises:
        RefusedAddress: with one line that says what is wrong and how to allow it.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise RefusedAddress(f"{url!r} is not a URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedAddress(f"{url!r} is not an http:// or https:// URL with a host")
    host = parts.hostname
    if policy.host_allowed(host):
        return
    literal = literal_address(host)
    addresses = (
        [literal]
        if literal is not None
        else resolver(host, port or (443 if parts.scheme == "https" else 80))
    )
    if not addresses:
        raise RefusedAddress(f"cannot resolve {host!r}")
    for address in addresses:
        reason = policy.check(host, address)
        if reason is not None:
            raise RefusedAddress(reason)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving and checking every host before connecting to the
    checked address itself (on asyncio's streams, `outbound.streams`)."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        literal = literal_address(host)
        if literal is not None:
            return [literal]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {error}") from None
        return _addresses(info[4][0] for info in infos)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._addresses(host, port)
        if not self._policy.host_allowed(host):
            for address in addresses:
                reason = self._policy.check(host, address)
                if reason is not None:
                    raise RefusedAddress(reason)
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host!r}")
        error: Exception | None = None
        for address in addresses:
            try:
                return await connect(str(address), port, timeout)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as failed:
                error = failed
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("subscriber URLs cannot name a unix socket")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose connections go through `GuardedBackend` (no proxies from the
    environment, no redirects: the sender never follows one)."""

    def __init__(self, policy: AddressPolicy, max_connections: int, keepalive: int) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=keepalive,
            keepalive_expiry=30.0,
            network_backend=GuardedBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await self._pool.handle_async_request(core)
        except httpcore.TimeoutException as error:
            raise httpx.TimeoutException(str(error) or "timed out", request=request) from None
        except httpcore.NetworkError as error:
            raise httpx.NetworkError(str(error) or type(error).__name__, request=request) from None
        except httpcore.ProtocolError as error:
            raise httpx.RemoteProtocolError(str(error), request=request) from None
        assert isinstance(response.stream, typing.AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Stream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _Stream(httpx.AsyncByteStream):
    def __init__(self, inner: typing.AsyncIterable[bytes]) -> None:
        self._inner = inner

    async def __aiter__(self) -> typing.AsyncIterator[bytes]:
        try:
            async for part in self._inner:
                yield part
        except httpcore.TimeoutException as error:
            raise httpx.ReadTimeout(str(error) or "timed out") from None
        except (httpcore.NetworkError, httpcore.ProtocolError) as error:
            raise httpx.ReadError(str(error) or type(error).__name__) from None

    async def aclose(self) -> None:
        closer = getattr(self._inner, "aclose", None)
        if closer is not None:
            await closer()
