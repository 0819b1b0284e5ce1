"""Which addresses a subscriber URL may reach: the rules of the SSRF guard. Pure.

A subscriber URL is given by whoever holds an API token, and tidings POSTs to it from inside
the network it runs in. So every address a URL resolves to is checked, and loopback, private,
link-local, shared (CGNAT), multicast, reserved and cloud-metadata addresses are refused,
whatever their spelling: IPv4-mapped and IPv4-embedding IPv6 forms are checked as the IPv4
address they carry, and a host like `2130706433` or `0177.0.0.1` is read as the IPv4 address
the system resolver would make of it. `TIDINGS_OUTBOUND_ALLOWED_HOSTS` (host names, addresses
or CIDRs) exempts internal receivers and tests.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

__all__ = ["AddressPolicy", "IPAddress", "literal_address", "refusal"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud instance-metadata endpoints (AWS, GCP, Azure, OpenStack: 169.254.169.254; AWS IPv6:
# fd00:ec2::254; Alibaba: 100.100.100.200; Oracle: 192.0.0.192). Each is in a class refused
# anyway; naming them gives the clearer reason.
_METADATA = {
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible
    (::a.b.c.d), 6to4 (2002:aabb:ccdd::) or NAT64 (64:ff9b::a.b.c.d)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    packed = address.packed
    if address in _NAT64 or (packed[:12] == bytes(12) and int(address) > 1):
        return ipaddress.IPv4Address(packed[12:])
    return None


def refusal(address: IPAddress) -> str | None:
    """Why tidings will not send to this address, or None when it is a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = refusal(embedded)
            return f"{reason} (as {embedded} inside {address})" if reason else None
    if address in _METADATA:
        return "a cloud metadata address"
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT,
         "a shared (CGNAT) address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )  # fmt: skip
    for refused, reason in checks:
        if refused:
            return reason
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as an address stands for, in every spelling the system
    resolver accepts for IPv4 (`127.1`, `2130706433`, `0x7f.0.0.1`, `0177.0.0.1`) and IPv6
    (with or without brackets); None for a host name."""
    text = host.strip().strip("[]")
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        pass
    if not text or not all(part for part in text.split(".")):
        return None
    try:  # inet_aton parses only; it never asks a resolver
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


@dataclass(frozen=True)
class AddressPolicy:
    """The refusal rules plus the operator's exemptions."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, allowed: str) -> AddressPolicy:
        """From `TIDINGS_OUTBOUND_ALLOWED_HOSTS`: comma-separated host names, addresses or
        CIDRs (`receiver.internal, 10.0.0.0/8, 127.0.0.1`).

        Raises:
            ValueError: an entry is neither a host name nor an address or network.
        """
        hosts: set[str] = set()
        networks: list[Network] = []
        for raw in allowed.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if "/" in entry or " " in entry:
                raise ValueError(f"{raw.strip()!r} is neither a host name nor an address or CIDR")
            literal = literal_address(entry)
            if literal is not None:
                networks.append(ipaddress.ip_network(literal))
            else:
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def host_allowed(self, host: str) -> bool:
        """The operator listed this host name itself: whatever it resolves to is allowed."""
        return host.strip().strip("[]").lower().rstrip(".") in self.hosts

    def check(self, host: str, address: IPAddress) -> str | None:
        """Why `host`, resolved to `address`, must not be sent to; None when it may."""
        if self.host_allowed(host) or any(address in net for net in self.networks):
            return None
        reason = refusal(address)
        if reason is None:
            return None
        shown = host if str(address) == host.strip("[]") else f"{host} ({address})"
        return f"{shown} is {reason}; list it in TIDINGS_OUTBOUND_ALLOWED_HOSTS to allow it"
