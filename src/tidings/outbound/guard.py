"""The SSRF guard at the edge: a subscriber URL is checked when it is given, and every
connection the sender opens is checked again, to the address it actually connects to.

Checking the URL once is not enough: a name can resolve to a public address when it is
checked and to a private one a minute later (DNS rebinding). So the sender's connections go
through `GuardedResolver`, which resolves the host itself and refuses if any address it gets
is refused (`domain.addresses`); aiohttp then connects to the checked addresses only. TLS
still verifies the certificate against the host name, and the Host header stays the name,
because aiohttp takes both from the URL, not from the socket.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from tidings.domain.addresses import AddressPolicy, IPAddress, literal_address
from tidings.domain.errors import Invalid

__all__ = [
    "GuardedResolver",
    "RefusedAddress",
    "check_literal",
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


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for the sender's connections: resolves a host, refuses it when any
    address it gets is refused, and hands aiohttp only the checked addresses to connect to.
    aiohttp asks it for every new connection (its DNS cache is off) but never for a literal
    address, which `check_literal` covers."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await _resolved(host, port)
        if not self._policy.host_allowed(host):
            for address in addresses:
                reason = self._policy.check(host, address)
                if reason is not None:
                    raise RefusedAddress(reason)
        if not addresses:
            raise OSError(f"cannot resolve {host!r}")
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


async def _resolved(host: str, port: int) -> list[IPAddress]:
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise OSError(f"cannot resolve {host!r}: {error}") from None
    return _addresses(info[4][0] for info in infos)


def check_literal(url: str, policy: AddressPolicy) -> None:
    """Refuse a URL whose host is an address (in any spelling aiohttp reads as one) the
    policy refuses; a name is checked by `GuardedResolver` when it is connected to."""
    host = urlsplit(url).hostname or ""
    address = literal_address(host)
    if address is None or policy.host_allowed(host):
        return
    reason = policy.check(host, address)
    if reason is not None:
        raise RefusedAddress(reason)
