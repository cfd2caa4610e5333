"""Scope: which targets an installation may scan at all, checked before any job starts."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from scanners.errors import TargetError
from scanners.targets import IPNetwork, Target, TargetKind, normalize_hostname


@dataclass(frozen=True, slots=True)
class Scope:
    """Allowed domains (each with all its subdomains) and allowed IP networks.

    An empty scope allows nothing: a missing setting must fail closed, not open.
    """

    domains: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Read comma- or whitespace-separated entries: `example.com, 10.0.0.0/8 ::1`.

        Raises ValueError naming the first bad entry. A network with host bits set
        (`10.0.0.1/8`) is refused rather than widened: in a scope a typo must not grant more.
        """
        domains: list[str] = []
        networks: list[IPNetwork] = []
        for entry in re.split(r"[\s,]+", text):
            if not entry:
                continue
            if entry.startswith("*."):
                raise ValueError(
                    f"scope entry {entry!r}: a domain already covers its subdomains;"
                    f" write {entry[2:]!r}"
                )
            if "/" in entry or _is_address(entry):
                try:
                    networks.append(ipaddress.ip_network(entry))
                except ValueError as exc:
                    raise ValueError(f"scope entry {entry!r}: {exc}") from exc
                continue
            try:
                domains.append(normalize_hostname(entry))
            except TargetError as exc:
                raise ValueError(f"scope entry {entry!r}: {exc.reason}") from exc
        return cls(domains=tuple(dict.fromkeys(domains)), networks=tuple(dict.fromkeys(networks)))


def in_scope(target: Target, scope: Scope) -> bool:
    """Whether every address `target` can reach by its own spelling lies inside `scope`.

    Hostnames are judged by name (`a.example.com` is inside `example.com`, `notexample.com`
    is not); what a name resolves to is the resolver's business, not this check's.
    """
    match target.kind:
        case TargetKind.CIDR:
            return _network_in(ipaddress.ip_network(target.host), scope)
        case TargetKind.IP:
            return _address_in(target.host, scope)
        case TargetKind.HOST:
            return _name_in(target.host, scope)
        case TargetKind.URL | TargetKind.ENDPOINT:
            if _is_address(target.host):
                return _address_in(target.host, scope)
            return _name_in(target.host, scope)


def _network_in(network: IPNetwork, scope: Scope) -> bool:
    # subnet_of raises TypeError across IP versions, so only same-version pairs are compared.
    if isinstance(network, ipaddress.IPv4Network):
        return any(
            isinstance(allowed, ipaddress.IPv4Network) and network.subnet_of(allowed)
            for allowed in scope.networks
        )
    return any(
        isinstance(allowed, ipaddress.IPv6Network) and network.subnet_of(allowed)
        for allowed in scope.networks
    )


def _address_in(text: str, scope: Scope) -> bool:
    address = ipaddress.ip_address(text)
    return any(address in network for network in scope.networks)


def _name_in(name: str, scope: Scope) -> bool:
    return any(name == domain or name.endswith(f".{domain}") for domain in scope.domains)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# Addresses a deployment never scans through a name unless its scope names them: what a
# hostile DNS answer would point a scanner at to reach the scanner's own side (the cloud
# metadata service, the host itself, the internal network). Pure.
_NEVER_THROUGH_NAMES: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), why)
    for net, why in (
        ("169.254.169.254/32", "the cloud metadata service"),
        ("fd00:ec2::254/128", "the cloud metadata service"),
        ("100.100.100.200/32", "the cloud metadata service"),
        ("169.254.0.0/16", "link-local"),
        ("fe80::/10", "link-local"),
        ("127.0.0.0/8", "loopback"),
        ("::1/128", "loopback"),
        ("0.0.0.0/8", "this network"),
        ("::/128", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("fc00::/7", "private (unique local)"),
        ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
        ("224.0.0.0/4", "multicast"),
        ("ff00::/8", "multicast"),
        ("240.0.0.0/4", "reserved"),
    )
)


def refused_address(address: str, scope: Scope) -> str:
    """Why a scan may not follow a name to `address`, or "" if it may.

    Private, loopback, link-local (the metadata service included), multicast and reserved
    addresses are refused unless a network of the scope contains them; ::1 counts as
    127.0.0.1 (the same host), and an IPv4-mapped IPv6 address as its IPv4 address.
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    judged = ipaddress.ip_address("127.0.0.1") if ip == ipaddress.ip_address("::1") else ip
    if any(judged in network for network in scope.networks):
        return ""
    for network, why in _NEVER_THROUGH_NAMES:
        if ip.version == network.version and ip in network:
            return f"{address} is {why}, which the scope does not name"
    return ""
