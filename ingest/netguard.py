"""SSRF guard: only talk to public internet addresses, and connect to exactly the address that was checked.

Feed and article URLs come from the open web (feeds list links, pages redirect anywhere), so a hostile
publisher could point us at ``http://169.254.169.254/`` (cloud metadata), ``localhost`` admin ports or the
internal network. Checking the URL's host is not enough: a name can resolve to several addresses (one
private among public ones) and can resolve differently a second later (DNS rebinding). So the guard resolves
once, refuses if ANY resolved address is non-public, and hands out a socket connected to one of those very
addresses; the HTTP layer never resolves the name itself.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from ingest.errors import BlockedAddressError, ConnectError, DnsError, FetchTimeout

IPAddress = IPv4Address | IPv6Address
Resolver = Callable[[str], Sequence[IPAddress]]
"""Maps a host name to its addresses; raises :class:`DnsError` when it cannot."""

# Explicit lists rather than relying only on ``ipaddress.is_global``: its tables changed between Python
# patch releases and they let multicast through. Anything here is never a legitimate news server.
_BLOCKED_V4: tuple[IPv4Network, ...] = tuple(
    IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network", 0.0.0.0 reaches localhost on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata endpoints
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes broadcast
    )
)
_BLOCKED_V6: tuple[IPv6Network, ...] = tuple(
    IPv6Network(net)
    for net in (
        "::/96",  # unspecified, loopback, deprecated IPv4-compatible addresses
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments: Teredo, ORCHID, benchmarking...
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)
_NAT64_WELL_KNOWN = IPv6Network("64:ff9b::/96")


def is_public_address(address: IPAddress) -> bool:
    """Whether ``address`` is a globally routable unicast address a public web server could use.

    Addresses that embed an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged by the embedded address, since
    that is where packets end up. Teredo is refused outright: its endpoint is the tunnel client, not a server.
    """
    if isinstance(address, IPv6Address):
        if address.scope_id:
            return False
        mapped = address.ipv4_mapped
        if mapped is not None:
            return is_public_address(mapped)
        if address in _NAT64_WELL_KNOWN:
            return is_public_address(IPv4Address(int(address) & 0xFFFFFFFF))
        if address.teredo is not None:
            return False
        embedded = address.sixtofour
        if embedded is not None and not is_public_address(embedded):
            return False
        if any(address in net for net in _BLOCKED_V6):
            return False
    elif any(address in net for net in _BLOCKED_V4):
        return False
    return address.is_global and not (
        address.is_multicast or address.is_private or address.is_reserved or address.is_unspecified
    )


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address if ``host`` is an IP literal (brackets allowed for IPv6), else None."""
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


_PERMANENT_GAI_ERRORS = frozenset(
    code for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None)) if code is not None
)


def system_resolver(host: str) -> tuple[IPAddress, ...]:
    """Resolve ``host`` with the system resolver (getaddrinfo), keeping its preference order.

    getaddrinfo cannot be interrupted, so a hung lookup is bounded by the resolver's own timeouts
    (resolv.conf ``timeout``/``attempts``), not by the HTTP budget.
    """
    if not host or len(host) > 253:
        raise DnsError(host, "host name is empty or too long", retryable=False)
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        permanent = exc.errno in _PERMANENT_GAI_ERRORS
        raise DnsError(host, f"cannot resolve host: {exc.strerror or exc}", retryable=not permanent) from exc
    except (UnicodeError, ValueError) as exc:
        raise DnsError(host, f"invalid host name: {exc}", retryable=False) from exc
    addresses: list[IPAddress] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        literal = str(sockaddr[0])
        if family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3]:
            literal = f"{literal.split('%')[0]}%{sockaddr[3]}"
        address = ipaddress.ip_address(literal)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise DnsError(host, "host name has no IPv4 or IPv6 address", retryable=False)
    return tuple(addresses)


@dataclass(frozen=True)
class AddressGuard:
    """Resolves hosts, refuses non-public addresses, and connects only to addresses it has checked.

    ``resolver`` and ``is_public`` are injectable so tests (and unusual deployments) can simulate public
    hosts on loopback without weakening the real predicate.
    """

    allow_private_networks: bool = False
    resolver: Resolver = system_resolver
    is_public: Callable[[IPAddress], bool] = is_public_address

    def check(self, host: str, address: IPAddress) -> None:
        """Raise :class:`BlockedAddressError` unless ``address`` may be contacted."""
        if not self.allow_private_networks and not self.is_public(address):
            shown = host if str(address) == host else f"{host} ({address})"
            raise BlockedAddressError(host, f"refusing to connect to non-public address {shown}")

    def resolve(self, host: str) -> tuple[IPAddress, ...]:
        """Every address of ``host`` after checking all of them; one bad address refuses the whole host.

        All-or-nothing because a resolver that mixes a private address in can otherwise win the race for
        which address gets used.
        """
        literal = parse_ip_literal(host)
        addresses = (literal,) if literal is not None else _coerce(self.resolver(host))
        if not addresses:
            raise DnsError(host, "host name has no address", retryable=False)
        for address in addresses:
            self.check(host, address)
        return addresses

    def connect(self, host: str, port: int, timeout: float | None) -> socket.socket:
        """A TCP socket connected to a checked address of ``host``.

        Families are interleaved and each attempt gets a fair share of ``timeout``, so one unreachable
        address (typically broken IPv6) cannot eat the whole connect budget.
        """
        addresses = _interleave_families(self.resolve(host))
        deadline = None if timeout is None else time.monotonic() + timeout
        last_error: OSError = TimeoutError()
        for index, address in enumerate(addresses):
            attempt_timeout: float | None = None
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    last_error = TimeoutError()
                    break
                attempt_timeout = remaining / (len(addresses) - index)
            try:
                return _connect_to(address, port, attempt_timeout)
            except OSError as exc:
                last_error = exc
        if isinstance(last_error, TimeoutError):
            raise FetchTimeout(host, f"connect to {host}:{port} timed out") from last_error
        reason = last_error.strerror or str(last_error)
        raise ConnectError(host, f"cannot connect to {host}:{port}: {reason}") from last_error


def _coerce(addresses: Iterable[IPAddress | str]) -> tuple[IPAddress, ...]:
    unique: list[IPAddress] = []
    for raw in addresses:
        address = raw if isinstance(raw, IPv4Address | IPv6Address) else ipaddress.ip_address(raw)
        if address not in unique:
            unique.append(address)
    return tuple(unique)


def _interleave_families(addresses: Sequence[IPAddress]) -> list[IPAddress]:
    """Alternate families starting with the resolver's first choice (RFC 8305 address ordering)."""
    if not addresses:
        return []
    first_family = type(addresses[0])
    preferred = [a for a in addresses if isinstance(a, first_family)]
    other = [a for a in addresses if not isinstance(a, first_family)]
    ordered: list[IPAddress] = []
    for index in range(max(len(preferred), len(other))):
        ordered.extend(group[index] for group in (preferred, other) if index < len(group))
    return ordered


def _connect_to(address: IPAddress, port: int, timeout: float | None) -> socket.socket:
    # AI_NUMERICHOST: turn the literal into a sockaddr (with IPv6 scope) without any DNS lookup.
    family, sock_type, proto, _canon, sockaddr = socket.getaddrinfo(
        str(address), port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
    )[0]
    sock = socket.socket(family, sock_type, proto)
    try:
        sock.settimeout(timeout)
        sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock
