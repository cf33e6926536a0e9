"""The SSRF guard: which addresses count as public, all-or-nothing resolution, connecting to checked IPs."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from ipaddress import IPv4Address, ip_address

import pytest

from ingest.errors import BlockedAddressError, ConnectError, DnsError
from ingest.netguard import AddressGuard, IPAddress, is_public_address, parse_ip_literal, system_resolver

NON_PUBLIC = [
    "127.0.0.1",
    "127.255.0.9",
    "0.0.0.0",
    "0.1.2.3",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "100.127.255.254",
    "192.0.0.8",
    "192.0.2.10",
    "198.18.0.1",
    "198.51.100.7",
    "203.0.113.7",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::127.0.0.1",  # deprecated IPv4-compatible
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "fec0::1",  # site-local
    "ff02::1",
    "100::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::1",  # 6to4 wrapping 127.0.0.1
    "2002:a00:1::1",  # 6to4 wrapping 10.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::1",  # local-use NAT64
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "151.101.1.69",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.1",  # just above CGNAT
    "172.32.0.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:81b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_non_public_addresses_are_refused(address):
    assert is_public_address(ip_address(address)) is False


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    assert is_public_address(ip_address(address)) is True


def test_scoped_link_local_is_refused():
    assert is_public_address(ip_address("fe80::1%eth0")) is False


def fixed_resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str) -> list[IPAddress]:
        if host not in table:
            raise DnsError(host, "no such host", retryable=False)
        return [ip_address(a) for a in table[host]]

    return resolve


def test_any_private_address_among_public_ones_refuses_the_host():
    guard = AddressGuard(resolver=fixed_resolver({"mixed.test": ["93.184.216.34", "10.0.0.5"]}))
    with pytest.raises(BlockedAddressError) as caught:
        guard.resolve("mixed.test")
    assert "10.0.0.5" in str(caught.value)


def test_all_public_addresses_are_returned_in_order_without_duplicates():
    guard = AddressGuard(resolver=fixed_resolver({"cdn.test": ["151.101.1.69", "2a04:4e42::69", "151.101.1.69"]}))
    assert guard.resolve("cdn.test") == (ip_address("151.101.1.69"), ip_address("2a04:4e42::69"))


def test_allow_private_networks_disables_the_check():
    guard = AddressGuard(allow_private_networks=True, resolver=fixed_resolver({"intranet": ["10.1.1.1"]}))
    assert guard.resolve("intranet") == (ip_address("10.1.1.1"),)


def never_resolve(host: str) -> list[IPAddress]:
    raise AssertionError(f"IP literal {host} must not go through the resolver")


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "[::1]", "[fe80::1]"])
def test_ip_literals_are_checked_without_resolving(host):
    with pytest.raises(BlockedAddressError):
        AddressGuard(resolver=never_resolve).resolve(host)


def test_hostname_resolving_to_loopback_is_refused_with_the_system_resolver():
    # localhost comes from /etc/hosts: no network needed.
    with pytest.raises(BlockedAddressError) as caught:
        AddressGuard().resolve("localhost")
    assert caught.value.reason == "blocked_address"


def test_numeric_host_forms_are_judged_by_what_they_resolve_to():
    # getaddrinfo accepts legacy forms like "2130706433" (= 127.0.0.1); the guard must see through them.
    with pytest.raises(BlockedAddressError):
        AddressGuard().resolve("2130706433")


def test_dns_failures_surface_as_dns_errors():
    with pytest.raises(DnsError) as caught:
        AddressGuard(resolver=fixed_resolver({})).resolve("nowhere.test")
    assert caught.value.retryable is False
    with pytest.raises(DnsError):
        system_resolver("")


def test_parse_ip_literal():
    assert parse_ip_literal("[2001:db8::1]") == ip_address("2001:db8::1")
    assert parse_ip_literal("10.0.0.1") == IPv4Address("10.0.0.1")
    assert parse_ip_literal("example.com") is None


# --- connecting ---------------------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock


def simulated_internet(table: dict[str, list[str]], lookups: list[str] | None = None) -> AddressGuard:
    """127.0.0.1 plays a public server; every other loopback address stays private."""
    resolve = fixed_resolver(table)

    def counting(host: str) -> list[IPAddress]:
        if lookups is not None:
            lookups.append(host)
        return resolve(host)

    return AddressGuard(resolver=counting, is_public=lambda a: a == ip_address("127.0.0.1"))


def test_connect_goes_to_the_checked_address_after_a_single_lookup(listener):
    lookups: list[str] = []
    guard = simulated_internet({"news.test": ["127.0.0.1"]}, lookups)
    port = listener.getsockname()[1]
    with guard.connect("news.test", port, timeout=2) as sock:
        assert sock.getpeername() == ("127.0.0.1", port)
    assert lookups == ["news.test"]


def test_rebinding_to_a_private_address_is_caught_on_the_next_connection(listener):
    answers = iter([["127.0.0.1"], ["127.0.0.2"]])
    guard = AddressGuard(
        resolver=lambda host: [ip_address(a) for a in next(answers)],
        is_public=lambda a: a == ip_address("127.0.0.1"),
    )
    port = listener.getsockname()[1]
    guard.connect("rebind.test", port, timeout=2).close()
    with pytest.raises(BlockedAddressError):
        guard.connect("rebind.test", port, timeout=2)


def test_connect_falls_back_to_the_next_checked_address(listener):
    # 127.0.0.2 is not listening on this port (the listener is bound to 127.0.0.1 only): refused, then next.
    guard = AddressGuard(allow_private_networks=True, resolver=fixed_resolver({"two.test": ["127.0.0.2", "127.0.0.1"]}))
    port = listener.getsockname()[1]
    with guard.connect("two.test", port, timeout=2) as sock:
        assert sock.getpeername()[0] == "127.0.0.1"


def test_connect_refused_everywhere_is_a_retryable_connect_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    guard = AddressGuard(allow_private_networks=True)
    with pytest.raises(ConnectError) as caught:
        guard.connect("127.0.0.1", port, timeout=2)
    assert caught.value.retryable is True


def test_blocked_connect_never_opens_a_socket(listener):
    listener.settimeout(0.2)
    with pytest.raises(BlockedAddressError):
        AddressGuard().connect("127.0.0.1", listener.getsockname()[1], timeout=2)
    with pytest.raises(TimeoutError):
        listener.accept()
