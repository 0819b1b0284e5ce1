"""The SSRF guard's rules, with plain data: every class of internal address is refused, in
every spelling, and the operator's allowances are honoured."""

from __future__ import annotations

import ipaddress

import pytest

from tidings.domain.addresses import AddressPolicy, literal_address, refusal
from tidings.outbound.guard import RefusedAddress, check_url

REFUSED = {
    "loopback v4": ("127.0.0.1", "loopback"),
    "loopback v4 elsewhere in 127/8": ("127.45.6.7", "loopback"),
    "loopback v6": ("::1", "loopback"),
    "unspecified v4": ("0.0.0.0", "unspecified"),  # noqa: S104 - an address refused, not bound
    "unspecified v6": ("::", "unspecified"),
    "private 10/8": ("10.1.2.3", "private"),
    "private 172.16/12": ("172.20.0.5", "private"),
    "private 192.168/16": ("192.168.1.10", "private"),
    "unique local v6": ("fd12:3456:789a::1", "private"),
    "link-local v4": ("169.254.10.20", "link-local"),
    "link-local v6": ("fe80::1", "link-local"),
    "CGNAT": ("100.64.1.1", "CGNAT"),
    "multicast v4": ("224.0.0.251", "multicast"),
    "multicast v6": ("ff02::1", "multicast"),
    "metadata AWS/GCP/Azure": ("169.254.169.254", "metadata"),
    "metadata AWS v6": ("fd00:ec2::254", "metadata"),
    "metadata Alibaba": ("100.100.100.200", "metadata"),
    "reserved 240/4": ("240.0.0.1", "reserved"),
    "broadcast": ("255.255.255.255", ""),
    "documentation": ("192.0.2.10", ""),
    "benchmarking": ("198.18.0.1", ""),
    "IPv4-mapped loopback": ("::ffff:127.0.0.1", "loopback"),
    "IPv4-mapped private": ("::ffff:10.0.0.1", "private"),
    "IPv4-mapped metadata": ("::ffff:169.254.169.254", "metadata"),
    "IPv4-compatible loopback": ("::127.0.0.1", "loopback"),
    "6to4 of private": ("2002:0a00:0001::1", "private"),
    "NAT64 of loopback": ("64:ff9b::7f00:1", "loopback"),
}


@pytest.mark.parametrize(("address", "word"), REFUSED.values(), ids=REFUSED.keys())
def test_internal_addresses_are_refused(address, word):
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None
    assert word.lower() in reason.lower()


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address):
    assert refusal(ipaddress.ip_address(address)) is None


SPELLINGS = {
    "decimal": ("2130706433", "127.0.0.1"),
    "octal": ("0177.0.0.1", "127.0.0.1"),
    "hex": ("0x7f.0.0.1", "127.0.0.1"),
    "short": ("127.1", "127.0.0.1"),
    "octal private": ("012.0.0.1", "10.0.0.1"),
    "decimal metadata": ("2852039166", "169.254.169.254"),
    "bracketed v6": ("[::1]", "::1"),
    "v6 with zone": ("fe80::1%eth0", "fe80::1"),
}


@pytest.mark.parametrize(("host", "address"), SPELLINGS.values(), ids=SPELLINGS.keys())
def test_every_spelling_of_an_address_is_read_as_that_address(host, address):
    assert literal_address(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["example.com", "receiver.internal", "1.2.3.example", ""])
def test_host_names_are_not_addresses(host):
    assert literal_address(host) is None


def test_allowed_hosts_and_networks_exempt_only_what_they_name():
    policy = AddressPolicy.parse("receiver.internal, 10.0.0.0/8, 127.0.0.1,[::1]")
    loopback = ipaddress.ip_address("127.0.0.1")
    assert policy.check("receiver.internal", ipaddress.ip_address("192.168.0.9")) is None
    assert policy.check("RECEIVER.internal.", ipaddress.ip_address("192.168.0.9")) is None
    assert policy.check("anything", ipaddress.ip_address("10.9.8.7")) is None
    assert policy.check("127.0.0.1", loopback) is None
    assert policy.check("::1", ipaddress.ip_address("::1")) is None
    refused = policy.check("other.example", ipaddress.ip_address("192.168.0.9"))
    assert refused is not None
    assert "other.example (192.168.0.9) is a private address" in refused
    assert "TIDINGS_OUTBOUND_ALLOWED_HOSTS" in refused
    assert policy.check("127.0.0.2", ipaddress.ip_address("127.0.0.2")) is not None


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "not a host", "a/b"])
def test_an_allowance_that_names_nothing_is_refused(entry):
    with pytest.raises(ValueError, match="neither a host name"):
        AddressPolicy.parse(entry)


def test_a_name_is_checked_by_what_it_resolves_to():
    with pytest.raises(RefusedAddress, match=r"localhost \(.*\) is a loopback address"):
        check_url("http://localhost:8080/hooks", AddressPolicy())
    check_url("http://localhost:8080/hooks", AddressPolicy.parse("localhost"))
    with pytest.raises(RefusedAddress, match="cannot resolve"):  # no resolver asked outside
        check_url("https://receiver.example/hooks", AddressPolicy(), resolver=lambda h, p: [])
    with pytest.raises(RefusedAddress, match="private"):
        check_url(
            "https://receiver.example/hooks",
            AddressPolicy(),
            resolver=lambda h, p: [
                ipaddress.ip_address("93.184.215.14"),
                ipaddress.ip_address("10.0.0.1"),
            ],
        )


def test_a_public_address_passes_without_asking_a_resolver():
    check_url("https://93.184.215.14/hooks", AddressPolicy(), resolver=_no_resolver)


def _no_resolver(host: str, port: int) -> list:
    raise AssertionError("an address needs no resolver")
