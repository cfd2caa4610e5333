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
